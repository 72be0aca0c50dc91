package kernel

import (
	"context"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// TestPythonBytecode checks that a context runs precompiled bytecode when
// its cache tag matches the interpreter's, and falls back to compiling
// the source when the tag differs or the bytes are not a code object.
func TestPythonBytecode(t *testing.T) {
	needLanguage(t, agentproto.LanguagePython)
	py, _ := lookPath("python3", testEnv())
	// A marker line that only the bytecode has, then the driver.
	marked, err := compilePython(t.Context(), py, "SDBX_FROM_BYTECODE = True\n"+pythonDriver)
	if err != nil {
		t.Fatal(err)
	}
	real, err := CompilePythonDriver(t.Context(), py)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(real.CacheTag, "cpython-") || len(real.Code) < 1000 {
		t.Fatalf("bytecode: tag %q, %d bytes", real.CacheTag, len(real.Code))
	}
	for _, tc := range []struct {
		name string
		bc   *agentproto.Bytecode
		used bool
	}{
		{"matching tag", marked, true},
		{"real driver", real, false},
		{"other tag", &agentproto.Bytecode{CacheTag: "cpython-27", Code: marked.Code}, false},
		{"not a code object", &agentproto.Bytecode{CacheTag: marked.CacheTag, Code: []byte("i\x07\x00\x00\x00")}, false},
		{"garbage", &agentproto.Bytecode{CacheTag: marked.CacheTag, Code: []byte("\xff\xfe not marshal")}, false},
		{"bad tag", &agentproto.Bytecode{CacheTag: "has space", Code: marked.Code}, false},
		{"none", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestManager(t)
			id := "ctx-bc-" + randomHex(4)
			req := agentproto.ContextCreateRequest{ID: id, Language: agentproto.LanguagePython, Env: testEnv(), Bytecode: tc.bc}
			if _, err := m.Create(context.Background(), req); err != nil {
				t.Fatalf("create: %v", err)
			}
			r := execute(t, m, id, "import sys\ngetattr(sys.modules['_sdbx_driver'], 'SDBX_FROM_BYTECODE', False)", 0)
			if r.err != nil || len(r.results()) != 1 {
				t.Fatalf("run: %v", r)
			}
			if got, want := r.results()[0].Text, map[bool]string{true: "True", false: "False"}[tc.used]; got != want {
				t.Errorf("ran from bytecode: %s, want %s", got, want)
			}
			// Tracebacks still show the cell only, not the driver's frames.
			r = execute(t, m, id, "def f():\n    1/0\nf()", 0)
			ex := r.exceptions()
			if len(ex) != 1 || ex[0].Name != "ZeroDivisionError" || strings.Contains(ex[0].Traceback, "sdbx-driver") {
				t.Errorf("exception: %v", r)
			}
		})
	}
}

// BenchmarkStartPythonBytecode is BenchmarkStartPython with the driver
// precompiled, as the server sends it.
func BenchmarkStartPythonBytecode(b *testing.B) {
	needLanguage(b, agentproto.LanguagePython)
	py, _ := lookPath("python3", testEnv())
	bc, err := CompilePythonDriver(context.Background(), py)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkStartWith(b, agentproto.LanguagePython, bc)
}
