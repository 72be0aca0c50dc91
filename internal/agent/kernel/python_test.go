package kernel

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/agentproto"
)

func TestPythonState(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	r1 := mustRun(t, m, id, "x = 10")
	if len(r1.events) != 0 {
		t.Errorf("x = 10 produced %v", r1)
	}
	r2 := mustRun(t, m, id, "print(x)")
	if got := r2.stdout(); !slices.Equal(got, []string{"10"}) {
		t.Errorf("print(x) stdout = %q, want [10]", got)
	}
	if r1.done.ExecutionCount != 1 || r2.done.ExecutionCount != 2 || !r2.done.StateKept || r2.done.TimedOut {
		t.Errorf("done = %+v then %+v, want counts 1, 2 and state kept", r1.done, r2.done)
	}
}

func TestPythonResults(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	mustRun(t, m, id, `
class Rich:
    def _repr_html_(self):
        return "<b>rich</b>"
    def _repr_markdown_(self):
        return "**rich**"
    def _repr_json_(self):
        return {"k": [1, 2]}
    def _repr_png_(self):
        return b"\x89PNG fake"
    def __repr__(self):
        return "Rich()"

class Bundle:
    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": "B", "text/latex": "$b$", "application/x-custom": {"a": 1}}

class Lying:
    def __getattr__(self, name):
        return lambda *a, **k: "<i>should not be asked</i>"
    def __repr__(self):
        return "Lying()"
`)
	type want struct {
		main  bool
		text  string
		check func(*agentproto.Result) bool
	}
	tests := []struct {
		name string
		code string
		want []want // results in order
	}{
		{"trailing expression", "1 + 1", []want{{main: true, text: "2"}}},
		{"after statements", "y = 3\ny * 2", []want{{main: true, text: "6"}}},
		{"string repr", "'a' + 'b'", []want{{main: true, text: "'ab'"}}},
		{"semicolon suppresses", "1 + 1;", nil},
		{"semicolon and comment", "1 + 1;  # quiet", nil},
		{"semicolon inside a string only", "'a;'", []want{{main: true, text: "'a;'"}}},
		{"None shows nothing", "None", nil},
		{"statement last", "z = 5", nil},
		{"display", "display('a', 1)\n7", []want{{text: "'a'"}, {text: "1"}, {main: true, text: "7"}}},
		{"display raw bundle", `display({"text/plain": "t", "text/html": "<p>h</p>"}, raw=True)`, []want{{text: "t", check: func(r *agentproto.Result) bool { return r.HTML == "<p>h</p>" }}}},
		{"repr methods", "Rich()", []want{{main: true, text: "Rich()", check: func(r *agentproto.Result) bool {
			png, err := base64.StdEncoding.DecodeString(r.PNG)
			return r.HTML == "<b>rich</b>" && r.Markdown == "**rich**" && sameJSON(r.JSON, `{"k":[1,2]}`) && err == nil && bytes.HasPrefix(png, []byte("\x89PNG"))
		}}}},
		{"mimebundle", "Bundle()", []want{{main: true, text: "B", check: func(r *agentproto.Result) bool {
			return r.LaTeX == "$b$" && sameJSON(r.Data["application/x-custom"], `{"a":1}`)
		}}}},
		{"getattr is not asked", "Lying()", []want{{main: true, text: "Lying()", check: func(r *agentproto.Result) bool { return r.HTML == "" }}}},
		{"class is not asked", "Rich", []want{{main: true, text: "<class '__main__.Rich'>", check: func(r *agentproto.Result) bool { return r.HTML == "" }}}},
		{"dedent", "\n    a = 4\n    if a:\n        print(a)\n    a + 1\n", []want{{main: true, text: "5"}}},
		{"top-level await", "import asyncio\nawait asyncio.sleep(0.01)\n'slept'", []want{{main: true, text: "'slept'"}}},
		{"await in trailing expression", "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n    return 9\nawait f()", []want{{main: true, text: "9"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execute(t, m, id, tt.code, 0)
			if r.err != nil || len(r.exceptions()) > 0 {
				t.Fatalf("%v", r)
			}
			got := r.results()
			if len(got) != len(tt.want) {
				t.Fatalf("got %d results, want %d: %v", len(got), len(tt.want), r)
			}
			for i, w := range tt.want {
				if got[i].IsMainResult != w.main || got[i].Text != w.text {
					t.Errorf("result %d = %+v, want main %v text %q", i, got[i], w.main, w.text)
				}
				if w.check != nil && !w.check(got[i]) {
					t.Errorf("result %d = %+v: check failed", i, got[i])
				}
			}
		})
	}
}

func TestPythonErrors(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	tests := []errorCase{
		{"syntax error", "x = 1\ny = (", "SyntaxError", "", []string{`File "<cell-`, "y = ("}},
		{"runtime error", "def f():\n    raise ValueError('bad')\n\nf()", "ValueError", "bad", []string{
			"Traceback (most recent call last):", `File "<cell-`, "line 4", "f()", "line 2, in f", "raise ValueError('bad')", "ValueError: bad",
		}},
		{"zero division", "1/0", "ZeroDivisionError", "division by zero", []string{"1/0", "ZeroDivisionError: division by zero"}},
		{"indented code error", "\n    a = 1\n    a.nope\n", "AttributeError", "'int' object has no attribute 'nope'", []string{"line 3", "a.nope"}},
		{"system exit", "import sys\nsys.exit(3)", "SystemExit", "3", []string{"sys.exit(3)"}},
		{"await error", "import asyncio\nasync def g():\n    raise KeyError('k')\nawait g()", "KeyError", "'k'", []string{"await g()", "raise KeyError('k')"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execute(t, m, id, tt.code, 0)
			checkException(t, r, tt, "sdbx-driver")
			if !r.done.StateKept {
				t.Errorf("done = %+v, want state kept", r.done)
			}
		})
	}
	// The interpreter survives all of that.
	if r := mustRun(t, m, id, "'alive'"); !slices.Equal(r.trace(), []string{"display:'alive'"}) {
		t.Errorf("after errors: %v", r)
	}
}

func TestPythonOutput(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	t.Run("thousand lines in order", func(t *testing.T) {
		r := mustRun(t, m, id, "for i in range(1000):\n    print(i)")
		got := r.stdout()
		if len(got) != 1000 {
			t.Fatalf("got %d lines, want 1000", len(got))
		}
		for i, line := range got {
			if line != strconv.Itoa(i) {
				t.Fatalf("line %d = %q", i, line)
			}
		}
	})
	t.Run("subprocess output in order", func(t *testing.T) {
		r := mustRun(t, m, id, "import os, subprocess\nprint('a')\nos.system('echo hi; echo oops >&2')\nsubprocess.run(['echo', 'sub'])\nprint('b')")
		if got, want := r.stdout(), []string{"a", "hi", "sub", "b"}; !slices.Equal(got, want) {
			t.Errorf("stdout = %q, want %q", got, want)
		}
		if got, want := r.stderr(), []string{"oops"}; !slices.Equal(got, want) {
			t.Errorf("stderr = %q, want %q", got, want)
		}
	})
	t.Run("output before and after results", func(t *testing.T) {
		// stdout and stderr are two pipes: their lines keep their order
		// relative to the results, not to each other.
		r := mustRun(t, m, id, "import sys\nprint('before')\nprint('err', file=sys.stderr)\ndisplay(1)\nprint('after', end='')\nprint('err2', file=sys.stderr)\n2")
		var got []string
		for _, s := range r.trace() {
			if s != "stderr:err" && s != "stderr:err2" {
				got = append(got, s)
			}
		}
		if want := []string{"stdout:before", "display:1", "stdout:after", "display:2"}; !slices.Equal(got, want) {
			t.Errorf("stdout and results = %q, want %q", got, want)
		}
		var errs []string
		for _, s := range r.trace() {
			if s != "stdout:before" && s != "stdout:after" {
				errs = append(errs, s)
			}
		}
		if want := []string{"stderr:err", "display:1", "stderr:err2", "display:2"}; !slices.Equal(errs, want) {
			t.Errorf("stderr and results = %q, want %q", errs, want)
		}
	})
	t.Run("C-level write", func(t *testing.T) {
		r := mustRun(t, m, id, "import os\nos.write(1, b'raw\\n')\nos.write(2, b'rawerr\\n');")
		if !slices.Equal(r.stdout(), []string{"raw"}) || !slices.Equal(r.stderr(), []string{"rawerr"}) {
			t.Errorf("%v", r)
		}
	})
	t.Run("everything written before the end arrives before done", func(t *testing.T) {
		// done comes without sync markers: the agent passes on what the
		// pipes hold when it gets there. Raw writes, a child's output and
		// unterminated lines on both streams, a hundred times over.
		for i := range 100 {
			r := mustRun(t, m, id, fmt.Sprintf("import os, sys\nos.system('echo c%[1]d; printf e%[1]d >&2')\nos.write(1, b'raw%[1]d')\nprint('p%[1]d', end='')\nsys.stderr.write('s%[1]d')", i))
			n := strconv.Itoa(i)
			if got, want := strings.Join(r.stdout(), "|"), "c"+n+"|raw"+n+"p"+n; got != want {
				t.Fatalf("run %d: stdout = %q, want %q", i, got, want)
			}
			if got, want := strings.Join(r.stderr(), "|"), "e"+n+"s"+n; got != want {
				t.Fatalf("run %d: stderr = %q, want %q", i, got, want)
			}
		}
	})
	t.Run("background process does not keep the run busy", func(t *testing.T) {
		r := mustRun(t, m, id, "import os\nos.system('sleep 30 &')\nprint('done')")
		if got := r.stdout(); !slices.Equal(got, []string{"done"}) {
			t.Errorf("stdout = %q", got)
		}
	})
	t.Run("fork runs on as the code only", func(t *testing.T) {
		r := mustRun(t, m, id, "import os\npid = os.fork()\nprint('child' if pid == 0 else 'parent', flush=True)\nif pid:\n    os.waitpid(pid, 0)\n'end'")
		got := r.stdout()
		slices.Sort(got)
		if !slices.Equal(got, []string{"child", "parent"}) || len(r.results()) != 1 {
			t.Errorf("%v", r)
		}
		// Only the driver answers the next runs.
		for i := range 3 {
			if r := mustRun(t, m, id, "os.getpid() == "+strconv.Itoa(m.List()[0].Pid)); !slices.Equal(r.trace(), []string{"display:True"}) {
				t.Errorf("run %d after the fork: %v", i, r)
			}
		}
	})
	t.Run("env for one run", func(t *testing.T) {
		r := executeReq(t, m, agentproto.ContextExecRequest{ID: id, Code: "import os\nprint(os.environ.get('RUN_VAR'))", Env: map[string]string{"RUN_VAR": "v1"}})
		if got := r.stdout(); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("with env: %v", r)
		}
		r = mustRun(t, m, id, "print(os.environ.get('RUN_VAR'))")
		if got := r.stdout(); !slices.Equal(got, []string{"None"}) {
			t.Errorf("after: %v", r)
		}
	})
}

func TestPythonPandas(t *testing.T) {
	t.Parallel()
	needPythonModule(t, "pandas")
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	r := mustRun(t, m, id, "import pandas as pd\npd.DataFrame({'alpha': [1, 2], 'beta': ['x', 'y']})")
	res := r.results()
	if len(res) != 1 || !res[0].IsMainResult {
		t.Fatalf("want one main result: %v", r)
	}
	if !containsAll(res[0].HTML, "<table", "alpha", "beta") {
		t.Errorf("html = %q", res[0].HTML)
	}
	if !containsAll(res[0].Text, "alpha", "beta", "x", "y") {
		t.Errorf("text = %q", res[0].Text)
	}
}

func TestPythonMatplotlib(t *testing.T) {
	t.Parallel()
	needPythonModule(t, "matplotlib")
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	isPNG := func(r *agentproto.Result) bool {
		b, err := base64.StdEncoding.DecodeString(r.PNG)
		return err == nil && bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n"))
	}
	r := mustRun(t, m, id, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\nprint('shown')")
	res := r.results()
	if len(res) != 1 || !isPNG(res[0]) || !strings.Contains(res[0].Text, "Figure") || res[0].IsMainResult {
		t.Fatalf("want one image/png result: %v", r)
	}
	if got := r.trace(); got[len(got)-1] != "stdout:shown" {
		t.Errorf("print after show came before the figure: %q", got)
	}
	// show closed it: nothing left for the next run.
	if r := mustRun(t, m, id, "len(plt.get_fignums())"); !slices.Equal(r.trace(), []string{"display:0"}) {
		t.Errorf("open figures after show: %v", r)
	}
	// A figure left open is sent at the end of the run.
	r = mustRun(t, m, id, "fig, ax = plt.subplots()\nax.bar(['a', 'b'], [3, 5]);")
	if res := r.results(); len(res) != 1 || !isPNG(res[0]) {
		t.Errorf("figure left open: %v", r)
	}
	if r := mustRun(t, m, id, "import matplotlib\nmatplotlib.get_backend()"); !slices.Equal(r.trace(), []string{"display:'agg'"}) {
		t.Errorf("backend: %v", r)
	}
}

func TestPythonResultJSON(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	// NaN is not JSON: the form is dropped, the text stays.
	r := mustRun(t, m, id, "class N:\n    def _repr_json_(self):\n        return {'v': float('nan')}\n    def __repr__(self):\n        return 'N'\nN()")
	res := r.results()
	if len(res) != 1 || res[0].Text != "N" || res[0].JSON != nil {
		t.Fatalf("%v", r)
	}
	b, err := json.Marshal(res[0])
	if err != nil || !json.Valid(b) {
		t.Errorf("result does not encode: %v", err)
	}
}

// sameJSON reports whether raw encodes the same value as want.
func sameJSON(raw json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestPythonLazyModules checks that the driver starts without the modules
// it imports only when needed, and that what they serve still works when
// the code itself brings them in: the code's own tracebacks show the
// source of earlier cells and of the running one, and non-ASCII requests
// and results pass through the driver's JSON shortcuts.
func TestPythonLazyModules(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	r := mustRun(t, m, id, "import sys\nprint(sorted(m for m in ('ast', 'json', 'linecache', 'signal', 'traceback', 're', 'enum') if m in sys.modules))")
	if got := r.stdout(); !slices.Equal(got, []string{"[]"}) {
		t.Errorf("modules loaded at start = %q, want none", got)
	}
	mustRun(t, m, id, "def f():\n    raise KeyError('in f')")
	r = mustRun(t, m, id, "import traceback\ntry:\n    f()  # call site\nexcept KeyError:\n    print(traceback.format_exc())")
	if out := strings.Join(r.stdout(), "\n"); !containsAll(out, "f()  # call site", "raise KeyError('in f')", "KeyError: 'in f'") {
		t.Errorf("traceback printed by the code lacks the cells' source:\n%s", out)
	}
	r = mustRun(t, m, id, "s = 'héllo ✓ \\u2028 \"q\"'\nprint(s)\ns")
	if got := r.stdout(); !slices.Equal(got, []string{"héllo ✓ \u2028 \"q\""}) {
		t.Errorf("stdout = %q", got)
	}
	if res := r.results(); len(res) != 1 || res[0].Text != `'héllo ✓ \u2028 "q"'` {
		t.Errorf("results = %v", r)
	}
	r = execute(t, m, id, "raise ValueError('ünïcode')", 0)
	if exc := r.exceptions(); len(exc) != 1 || exc[0].Value != "ünïcode" || !strings.Contains(exc[0].Traceback, "raise ValueError('ünïcode')") {
		t.Errorf("error = %v", r)
	}

	// inspect finds a cell's source too when it is what imports linecache.
	id2 := newContext(t, m, agentproto.LanguagePython)
	mustRun(t, m, id2, "def g():\n    return 'source of g'")
	r = mustRun(t, m, id2, "import inspect\nprint(inspect.getsource(g), end='')")
	if got := r.stdout(); !slices.Equal(got, []string{"def g():", "    return 'source of g'"}) {
		t.Errorf("inspect.getsource = %q", got)
	}
}
