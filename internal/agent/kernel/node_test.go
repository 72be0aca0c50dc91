package kernel

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sdbx/sdbx/internal/agentproto"
)

func TestJavaScriptRuns(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguageJavaScript)
	// Each step runs in the same context, in order.
	steps := []struct {
		name  string
		code  string
		trace []string
	}{
		{"let", "let x = 1", nil},
		{"let again", "let x = 2\nx", []string{"display:2"}},
		{"let a third time", "let x = 3; console.log(x)", []string{"stdout:3"}},
		{"const rerun", "const c = {a: 1}\nc", []string{"display:{ a: 1 }"}},
		{"const rerun again", "const c = [1]\nc", []string{"display:[ 1 ]"}},
		{"const destructuring", "const {p, q: [r]} = {p: 1, q: [2]}\np + r", []string{"display:3"}},
		{"let without value", "let u\nu", nil},
		{"class rerun", "class K { v() { return 7 } }\nnew K().v()", []string{"display:7"}},
		{"class rerun again", "class K { v() { return 8 } }\nnew K().v()", []string{"display:8"}},
		{"function persists", "function f(a) { return a * 2 }", nil},
		{"function used", "f(21)", []string{"display:42"}},
		{"var", "var v = 5", nil},
		{"state across runs", "x + v", []string{"display:8"}},
		{"string result", "'s' + 1", []string{"display:'s1'"}},
		{"undefined shows nothing", "undefined", nil},
		{"console.log result is undefined", "console.log('a', 1)", []string{"stdout:a 1"}},
		{"console.error", "console.error('bad thing')", []string{"stderr:bad thing"}},
		{"process.stdout", "process.stdout.write('no newline')", []string{"stdout:no newline", "display:true"}},
		{"top-level await", "await new Promise(r => setTimeout(r, 10))\n'awaited'", []string{"display:'awaited'"}},
		{"await value", "const w = await Promise.resolve(40)\nw + 2", []string{"display:42"}},
		{"await declarations are global", "var av = await 1; let al = await 2; function af() { return av + al }", nil},
		{"after await", "af()", []string{"display:3"}},
		{"for await", "let s = 0\nfor await (const n of [1, 2]) s += n\ns", []string{"display:3"}},
		{"require builtin", "require('fs').existsSync('/')", []string{"display:true"}},
		{"display", "display({a: 1}); 5", []string{"display:{ a: 1 }", "display:5"}},
		{"blank", "// only a comment", nil},
	}
	for _, st := range steps {
		r := execute(t, m, id, st.code, 0)
		if r.err != nil || len(r.exceptions()) > 0 {
			t.Fatalf("%s: %q: %v", st.name, st.code, r)
		}
		if got := r.trace(); !slices.Equal(got, st.trace) {
			t.Errorf("%s: %q: trace %q, want %q", st.name, st.code, got, st.trace)
		}
	}
	if r := mustRun(t, m, id, "1"); r.done.ExecutionCount != len(steps)+1 || !r.done.StateKept {
		t.Errorf("done = %+v", r.done)
	}
}

func TestJavaScriptErrors(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguageJavaScript)
	tests := []errorCase{
		{"thrown error", "const a = 1\nthrow new TypeError('boom')", "TypeError", "boom", []string{"TypeError: boom", "<cell-"}},
		{"error in a function", "function g() {\n  null.x\n}\ng()", "TypeError", "Cannot read properties of null (reading 'x')", []string{"at g (<cell-", ":2:"}},
		{"syntax error", "let = = 1", "SyntaxError", "", []string{"<cell-"}},
		{"reference error", "nope + 1", "ReferenceError", "nope is not defined", []string{"nope is not defined"}},
		{"async rejection", "await Promise.reject(new RangeError('late'))", "RangeError", "late", []string{"RangeError: late"}},
		{"thrown string", "throw 'plain'", "Error", "plain", []string{"Uncaught 'plain'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execute(t, m, id, tt.code, 0)
			checkException(t, r, tt, "sdbx-driver", "node:vm")
		})
	}
	if r := mustRun(t, m, id, "'alive'"); !slices.Equal(r.trace(), []string{"display:'alive'"}) {
		t.Errorf("after errors: %v", r)
	}
}

func TestJavaScriptRequireFromCwd(t *testing.T) {
	t.Parallel()
	needLanguage(t, agentproto.LanguageJavaScript)
	cwd := filepath.Join(t.TempDir(), "proj")
	mod := filepath.Join(cwd, "node_modules", "greet")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "index.js"), []byte("module.exports = (n) => 'hello ' + n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cwd, "local.js"), []byte("exports.v = 41\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t)
	if _, err := m.Create(context.Background(), agentproto.ContextCreateRequest{ID: "js-cwd", Language: agentproto.LanguageJavaScript, Cwd: cwd, Env: testEnv()}); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, m, "js-cwd", "const greet = require('greet')\ngreet('sdbx') + ' ' + (require('./local').v + 1) + ' ' + process.cwd()")
	if got, want := r.trace(), []string{"display:'hello sdbx 42 " + cwd + "'"}; !slices.Equal(got, want) {
		t.Errorf("trace %q, want %q", got, want)
	}
}
