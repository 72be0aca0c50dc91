package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// compileScript compiles the driver read from stdin as the bootstrap
// would and writes the interpreter's cache tag, a newline and the
// marshalled code object.
const compileScript = "import marshal,sys\n" +
	"c=compile(sys.stdin.buffer.read(),'<sdbx-driver>','exec')\n" +
	"sys.stdout.buffer.write(sys.implementation.cache_tag.encode()+b'\\n'+marshal.dumps(c))\n"

// CompilePythonDriver compiles the Python driver with the interpreter at
// python (isolated: no site, no PYTHON* variables) and returns its
// bytecode for ContextCreateRequest.Bytecode. The server calls it once,
// with its own host's interpreter: bytecode is trusted code, so it never
// comes from inside a sandbox.
func CompilePythonDriver(ctx context.Context, python string) (*agentproto.Bytecode, error) {
	return compilePython(ctx, python, pythonDriver)
}

func compilePython(ctx context.Context, python, src string) (*agentproto.Bytecode, error) {
	cmd := exec.CommandContext(ctx, python, "-I", "-S", "-c", compileScript)
	cmd.Stdin = strings.NewReader(src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("compile the python driver with %s: %v: %s: %w", python, err, bytes.TrimSpace(stderr.Bytes()), errdefs.ErrUnavailable)
	}
	tag, code, ok := bytes.Cut(out, []byte("\n"))
	if !ok || !validCacheTag(string(tag)) || len(code) == 0 {
		return nil, fmt.Errorf("compile the python driver with %s: unexpected output: %w", python, errdefs.ErrInternal)
	}
	return &agentproto.Bytecode{CacheTag: string(tag), Code: code}, nil
}
