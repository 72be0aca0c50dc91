package kernel

import (
	_ "embed" // driver scripts
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sdbx/sdbx/internal/agent/execpath"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

//go:embed python/driver.py
var pythonDriver string

//go:embed node/driver.js
var nodeDriver string

// scriptFD is the descriptor from which a driver's bootstrap reads its
// script (a pipe the agent fills and closes). Sending the script this way
// needs no file in the sandbox and no writable directory.
const scriptFD = 7

// pythonBootstrap reads the driver from scriptFD and runs it as module
// _sdbx_driver (its frames are named <sdbx-driver> in tracebacks). The
// script may start with precompiled bytecode (see scriptPayload), used
// when it was made for this interpreter's cache tag and is a code object.
const pythonBootstrap = "import os,sys\n" +
	"b=[]\n" +
	"while 1:\n" +
	" c=os.read(7,65536)\n" +
	" if not c:break\n" +
	" b.append(c)\n" +
	"os.close(7)\n" +
	"s=b''.join(b)\n" +
	"k=None\n" +
	"if s[:1]==b'\\0':\n" +
	" h,_,s=s[1:].partition(b'\\n')\n" +
	" t,n=h.split(b' ')\n" +
	" n=int(n)\n" +
	" if t.decode()==sys.implementation.cache_tag:\n" +
	"  import marshal\n" +
	"  try:k=marshal.loads(s[:n])\n" +
	"  except Exception:pass\n" +
	"  if type(k).__name__!='code':k=None\n" +
	" s=s[n:]\n" +
	"m=type(sys)('_sdbx_driver')\n" +
	"sys.modules[m.__name__]=m\n" +
	"exec(k or compile(s,'<sdbx-driver>','exec'),m.__dict__)\n"

// scriptPayload is what the agent writes to scriptFD: the driver's
// source, preceded for Python by "\0TAG N\n" and N bytes of marshalled
// code when bc is set (the bootstrap falls back to the source when the
// tag is not its interpreter's).
func (l *language) scriptPayload(bc *agentproto.Bytecode) string {
	if l.name != agentproto.LanguagePython || bc == nil || len(bc.Code) == 0 || !validCacheTag(bc.CacheTag) {
		return l.script
	}
	return "\x00" + bc.CacheTag + " " + strconv.Itoa(len(bc.Code)) + "\n" + string(bc.Code) + l.script
}

// validCacheTag accepts tags like "cpython-311": short, printable, no
// space or newline (they delimit the header).
func validCacheTag(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, r := range t {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}

// nodeBootstrap reads the driver from scriptFD and calls it as a function
// of require. -e code runs as a global script: its names stay inside a
// function so that they do not clash with the code's.
const nodeBootstrap = "(function(){const fs=require('fs');const c=[];const b=Buffer.alloc(65536);" +
	"for(;;){const n=fs.readSync(7,b,0,b.length,null);if(n<=0)break;c.push(Buffer.from(b.subarray(0,n)))}" +
	"fs.closeSync(7);" +
	"require('vm').compileFunction(Buffer.concat(c).toString('utf8'),['require'],{filename:'sdbx-driver.js'})(require)})()"

// language is how to start the driver of one language.
type language struct {
	name   string // agentproto.LanguagePython, ...
	exe    string // interpreter looked up in PATH
	script string // the driver's source
	// args returns the argv after the interpreter's name.
	args []string
}

// languages returns the supported languages; exe overrides come from opts.
func languages(opts Options) map[string]*language {
	py := &language{name: agentproto.LanguagePython, exe: "python3", script: pythonDriver, args: []string{"-c", pythonBootstrap}}
	js := &language{name: agentproto.LanguageJavaScript, exe: "node", script: nodeDriver, args: []string{"--expose-internals", "-e", nodeBootstrap}}
	if opts.Python != "" {
		py.exe = opts.Python
	}
	if opts.Node != "" {
		js.exe = opts.Node
	}
	return map[string]*language{py.name: py, js.name: js}
}

// lookPath finds the interpreter: exe itself when it has a slash, else the
// first executable of that name in the PATH of env.
func lookPath(exe string, env map[string]string) (string, error) {
	if strings.Contains(exe, "/") {
		if err := execpath.Check(exe); err != nil {
			return "", fmt.Errorf("interpreter %q %w", exe, err)
		}
		return exe, nil
	}
	pathEnv, ok := env["PATH"]
	if !ok {
		pathEnv = execpath.DefaultPath
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, exe)
		if execpath.Check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("interpreter %q not found in PATH (is it installed in this sandbox?): %w", exe, errdefs.ErrNotFound)
}

// mimeField returns the Result field for a MIME type of a driver's
// bundle, or nil for types that go to Data.
func mimeField(r *agentproto.Result, mime string) *string {
	switch mime {
	case "text/plain":
		return &r.Text
	case "text/html":
		return &r.HTML
	case "text/markdown":
		return &r.Markdown
	case "image/svg+xml":
		return &r.SVG
	case "image/png":
		return &r.PNG
	case "image/jpeg":
		return &r.JPEG
	case "application/pdf":
		return &r.PDF
	case "text/latex":
		return &r.LaTeX
	case "application/javascript", "text/javascript":
		return &r.JavaScript
	}
	return nil
}

// resultOf turns a driver's MIME bundle into a Result. Values of the
// known textual types must be strings; anything else goes to Data.
func resultOf(bundle map[string]json.RawMessage, main bool) *agentproto.Result {
	r := &agentproto.Result{IsMainResult: main}
	for mime, raw := range bundle {
		if mime == "application/json" {
			r.JSON = raw
			continue
		}
		if field := mimeField(r, mime); field != nil {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				*field = s
				continue
			}
		}
		if r.Data == nil {
			r.Data = make(map[string]json.RawMessage)
		}
		r.Data[mime] = raw
	}
	return r
}
