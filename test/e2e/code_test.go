package e2e

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// quickStartCode is the seed README's Quick Start code exactly as its JS
// template literal holds it: a leading newline and two-space indentation.
const quickStartCode = "\n  print(\"Hello from sandbox!\")\n  x = 10 + 20\n  print(f\"Result: {x}\")\n"

// runCode runs code and fails the test on an error of the call.
func runCode(t *testing.T, c *sdbx.Client, sandboxID, code string, opts ...sdbx.CodeOption) *sdbx.ExecutionResult {
	t.Helper()
	res, err := c.RunCode(t.Context(), sandboxID, code, opts...)
	if err != nil {
		t.Fatalf("RunCode(%q): %v", code, err)
	}
	return res
}

// mainResult returns the text of the result marked IsMainResult, and
// whether there is one.
func mainResult(res *sdbx.ExecutionResult) (sdbx.Result, bool) {
	for _, r := range res.Execution.Results {
		if r.IsMainResult {
			return r, true
		}
	}
	return sdbx.Result{}, false
}

// TestCodePythonDefaultContext walks through issue B on one python sandbox:
// the Quick Start, state in the default context, results, exceptions, live
// streaming and timeouts. The steps share the default context, so they run
// in order.
func TestCodePythonDefaultContext(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})

	t.Run("quick start", func(t *testing.T) {
		var streamed []string
		res := runCode(t, c, sb.ID, quickStartCode, sdbx.OnStdout(func(l sdbx.OutputLine) { streamed = append(streamed, l.Line) }))
		want := []string{"Hello from sandbox!", "Result: 30"}
		if !reflect.DeepEqual(res.Execution.Logs.Stdout, want) || !reflect.DeepEqual(streamed, want) {
			t.Fatalf("stdout = %q, streamed %q; want %q", res.Execution.Logs.Stdout, streamed, want)
		}
		if res.Execution.Error != nil || len(res.Execution.Logs.Stderr) != 0 {
			t.Fatalf("execution = %+v", res.Execution)
		}
		md := res.Metadata
		if md.SandboxID != sb.ID || md.Language != sdbx.LanguagePython || !strings.HasPrefix(md.ContextID, "ctx-") {
			t.Fatalf("metadata = %+v", md)
		}
	})

	t.Run("state survives between runs", func(t *testing.T) {
		first := runCode(t, c, sb.ID, "x = 10")
		res := runCode(t, c, sb.ID, "print(x)")
		if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"10"}) {
			t.Fatalf("print(x) = %q, want [10]", res.Execution.Logs.Stdout)
		}
		if res.Metadata.ContextID != first.Metadata.ContextID || res.Execution.ExecutionCount <= first.Execution.ExecutionCount {
			t.Fatalf("runs went to contexts %s (#%d) and %s (#%d); want the same default context, counting up",
				first.Metadata.ContextID, first.Execution.ExecutionCount, res.Metadata.ContextID, res.Execution.ExecutionCount)
		}
		list, err := c.ListContexts(t.Context(), sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(cc sdbx.CodeContext) bool { return cc.ID == res.Metadata.ContextID })
		if i < 0 || !list[i].Default || list[i].Language != sdbx.LanguagePython {
			t.Fatalf("contexts = %+v; want the run's context listed as the python default", list)
		}
	})

	t.Run("trailing expression", func(t *testing.T) {
		var streamed []sdbx.Result
		res := runCode(t, c, sb.ID, "y = x * 3\ny", sdbx.OnResult(func(r sdbx.Result) { streamed = append(streamed, r) }))
		r, ok := mainResult(res)
		if !ok || r.Text != "30" || len(res.Execution.Logs.Stdout) != 0 {
			t.Fatalf("results = %+v, stdout %q; want the main result 30", res.Execution.Results, res.Execution.Logs.Stdout)
		}
		if len(streamed) != 1 || streamed[0].Text != "30" {
			t.Fatalf("OnResult saw %+v", streamed)
		}
		// A trailing semicolon suppresses the value, as in Jupyter.
		res = runCode(t, c, sb.ID, "y;")
		if len(res.Execution.Results) != 0 {
			t.Fatalf("y; gave results %+v, want none", res.Execution.Results)
		}
		res = runCode(t, c, sb.ID, "print('before')\ndisplay('shown')\n'last'")
		var texts []string
		for _, r := range res.Execution.Results {
			texts = append(texts, fmt.Sprintf("%s/%v", r.Text, r.IsMainResult))
		}
		if !reflect.DeepEqual(texts, []string{"'shown'/false", "'last'/true"}) {
			t.Fatalf("results = %q", texts)
		}
	})

	t.Run("exception", func(t *testing.T) {
		var raised []sdbx.ExecutionError
		code := "def divide(a):\n    return a / 0\n\nprint('about to fail')\ndivide(x)\nprint('never')"
		res := runCode(t, c, sb.ID, code, sdbx.OnError(func(e sdbx.ExecutionError) { raised = append(raised, e) }))
		ee := res.Execution.Error
		if ee == nil || ee.Name != "ZeroDivisionError" || ee.Value != "division by zero" {
			t.Fatalf("error = %+v, want ZeroDivisionError: division by zero", ee)
		}
		for _, want := range []string{"Traceback", "divide(x)", "return a / 0", "ZeroDivisionError: division by zero"} {
			if !strings.Contains(ee.Traceback, want) {
				t.Errorf("traceback lacks %q:\n%s", want, ee.Traceback)
			}
		}
		if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"about to fail"}) {
			t.Fatalf("stdout = %q", res.Execution.Logs.Stdout)
		}
		if len(raised) != 1 || raised[0] != *ee {
			t.Fatalf("OnError saw %+v, want %+v", raised, *ee)
		}
		// The context lives on.
		if res := runCode(t, c, sb.ID, "print(x)"); !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"10"}) {
			t.Fatalf("after the exception: %q", res.Execution.Logs.Stdout)
		}
	})

	t.Run("first line streamed before the code ends", func(t *testing.T) {
		// The code waits for a file that the test writes only once it has
		// seen the first line: a client that got lines only at the end
		// would wait until the run's timeout.
		gate := "/tmp/e2e-gate-" + RandomKey()[10:20]
		code := fmt.Sprintf("import os, time\nprint('waiting', flush=True)\n"+
			"while not os.path.exists(%q):\n    time.sleep(0.02)\nprint('released')", gate)
		var lines []string
		var writeErr error
		res, err := c.RunCode(t.Context(), sb.ID, code, sdbx.Timeout(60*time.Second),
			sdbx.OnStdout(func(l sdbx.OutputLine) {
				// Callbacks run on RunCode's goroutine, one at a time.
				lines = append(lines, l.Line)
				if l.Line == "waiting" {
					_, writeErr = c.WriteFile(t.Context(), sb.ID, gate, strings.NewReader("go"))
				}
			}))
		if writeErr != nil {
			t.Fatalf("WriteFile(gate): %v", writeErr)
		}
		if err != nil {
			t.Fatalf("RunCode: %v (streamed %q)", err, lines)
		}
		if want := []string{"waiting", "released"}; !reflect.DeepEqual(lines, want) || !reflect.DeepEqual(res.Execution.Logs.Stdout, want) {
			t.Fatalf("streamed %q, logs %q; want %q", lines, res.Execution.Logs.Stdout, want)
		}
	})

	t.Run("timeout keeps the state", func(t *testing.T) {
		runCode(t, c, sb.ID, "kept = 'still here'")
		var lines []string
		_, err := c.RunCode(t.Context(), sb.ID, "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.05)",
			sdbx.Timeout(time.Second), sdbx.OnStdout(func(l sdbx.OutputLine) { lines = append(lines, l.Line) }))
		var te *sdbx.TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, sdbx.ErrTimeout) {
			t.Fatalf("RunCode past its timeout = %v (%T), want *TimeoutError", err, err)
		}
		if !strings.Contains(te.Message, "state was kept") {
			t.Fatalf("timeout message %q does not say the state was kept", te.Message)
		}
		if !reflect.DeepEqual(lines, []string{"looping"}) {
			t.Fatalf("streamed before the timeout: %q", lines)
		}
		res := runCode(t, c, sb.ID, "print(kept, x)")
		if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"still here 10"}) {
			t.Fatalf("after the timeout: %q, want the variables kept", res.Execution.Logs.Stdout)
		}
		// A silent run past its timeout gets the same error.
		_, err = c.RunCode(t.Context(), sb.ID, "import time\ntime.sleep(30)", sdbx.Timeout(500*time.Millisecond))
		if !errors.As(err, &te) || !strings.Contains(te.Message, "state was kept") {
			t.Fatalf("silent run past its timeout = %v (%T)", err, err)
		}
	})

	t.Run("env applies to one run", func(t *testing.T) {
		code := "import os\nprint(os.environ.get('RUN_VAR', 'unset'))"
		res := runCode(t, c, sb.ID, code, sdbx.Env(map[string]string{"RUN_VAR": "set for this run"}))
		if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"set for this run"}) {
			t.Fatalf("with env: %q", res.Execution.Logs.Stdout)
		}
		if res := runCode(t, c, sb.ID, code); !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"unset"}) {
			t.Fatalf("next run: %q, want the variable gone", res.Execution.Logs.Stdout)
		}
	})
}

func TestCodeContexts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	other := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	ctx := t.Context()

	cwd := "/workspace/ctx-" + RandomKey()[10:18] + "/sub"
	cc, err := c.CreateContext(ctx, sb.ID, sdbx.ContextOptions{Cwd: cwd, Env: map[string]string{"CTX_VAR": "from the context"}})
	if err != nil {
		t.Fatalf("CreateContext: %v", err)
	}
	if cc.SandboxID != sb.ID || cc.Language != sdbx.LanguagePython || cc.Cwd != cwd || cc.Default ||
		cc.EnvVars["CTX_VAR"] != "from the context" || cc.CreatedAt.IsZero() {
		t.Fatalf("context = %+v", cc)
	}
	// The working directory was created, and the env is the context's.
	res := runCode(t, c, sb.ID, "import os\nprint(os.getcwd())\nprint(os.environ['CTX_VAR'])\nv = 'inside'", sdbx.InContext(cc.ID))
	if want := []string{cwd, "from the context"}; !reflect.DeepEqual(res.Execution.Logs.Stdout, want) || res.Metadata.ContextID != cc.ID {
		t.Fatalf("in the context: %q (context %s), want %q", res.Execution.Logs.Stdout, res.Metadata.ContextID, want)
	}
	// Variables are isolated from the default context, both ways.
	res = runCode(t, c, sb.ID, "v")
	if res.Execution.Error == nil || res.Execution.Error.Name != "NameError" {
		t.Fatalf("v in the default context: %+v, want NameError", res.Execution)
	}
	runCode(t, c, sb.ID, "v = 'outside'")
	res = runCode(t, c, sb.ID, "print(v)", sdbx.InContext(cc.ID))
	if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"inside"}) {
		t.Fatalf("v in the context after the default set it: %q", res.Execution.Logs.Stdout)
	}
	res = runCode(t, c, sb.ID, "import os\nprint(os.getcwd(), os.environ.get('CTX_VAR', 'unset'))")
	if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"/workspace unset"}) {
		t.Fatalf("the default context: %q", res.Execution.Logs.Stdout)
	}

	list, err := c.ListContexts(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range list {
		ids = append(ids, fmt.Sprintf("%s/%v", x.ID, x.Default))
	}
	if !slices.Contains(ids, cc.ID+"/false") || len(list) != 2 {
		t.Fatalf("contexts = %q; want %s and the default one", ids, cc.ID)
	}

	// A context of another sandbox is not found here.
	foreign, err := c.CreateContext(ctx, other.ID, sdbx.ContextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RunCode(ctx, sb.ID, "print(1)", sdbx.InContext(foreign.ID))
	if !errors.Is(err, sdbx.ErrNotFound) || !strings.Contains(err.Error(), foreign.ID) {
		t.Fatalf("RunCode with another sandbox's context = %v, want not_found naming it", err)
	}
	// A language that does not match the context is refused.
	_, err = c.RunCode(ctx, sb.ID, "1", sdbx.InContext(cc.ID), sdbx.Language(sdbx.LanguageJavaScript))
	if !errors.Is(err, sdbx.ErrInvalidArgument) {
		t.Fatalf("javascript in a python context = %v, want invalid_argument", err)
	}

	if err := c.DeleteContext(ctx, cc.ID); err != nil {
		t.Fatalf("DeleteContext: %v", err)
	}
	_, err = c.RunCode(ctx, sb.ID, "print(v)", sdbx.InContext(cc.ID))
	var se *sdbx.SandboxError
	if !errors.As(err, &se) || !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("RunCode in a deleted context = %v (%T), want not_found", err, err)
	}
	if err := c.DeleteContext(ctx, cc.ID); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("DeleteContext again = %v, want not_found", err)
	}
	if list, err := c.ListContexts(ctx, sb.ID); err != nil || slices.ContainsFunc(list, func(x sdbx.CodeContext) bool { return x.ID == cc.ID }) {
		t.Fatalf("contexts after delete = %+v, %v", list, err)
	}
	// The default context was not touched.
	if res := runCode(t, c, sb.ID, "print(v)"); !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"outside"}) {
		t.Fatalf("default context after delete: %q", res.Execution.Logs.Stdout)
	}
	if err := c.DeleteContext(ctx, "ctx-doesnotexist"); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("DeleteContext(unknown) = %v", err)
	}
}

func TestCodeJavaScript(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)

	t.Run("nodejs template", func(t *testing.T) {
		sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "nodejs-18"})
		for i := 0; i < 2; i++ {
			// let at the top level may be re-run in the same context.
			res := runCode(t, c, sb.ID, "let a = 1\na + 1")
			if r, ok := mainResult(res); !ok || r.Text != "2" || res.Execution.Error != nil || res.Metadata.Language != sdbx.LanguageJavaScript {
				t.Fatalf("run %d of let a = 1: %+v, %+v", i+1, res.Execution, res.Metadata)
			}
		}
		res := runCode(t, c, sb.ID, "const v = await new Promise((resolve) => setTimeout(() => resolve(a * 42), 10))\nconsole.log(`v=${v}`)\nv")
		if r, ok := mainResult(res); !ok || r.Text != "42" || !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"v=42"}) {
			t.Fatalf("top-level await: %+v", res.Execution)
		}
		res = runCode(t, c, sb.ID, "console.error('to stderr'); console.log('to stdout')")
		if !reflect.DeepEqual(res.Execution.Logs.Stderr, []string{"to stderr"}) || !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"to stdout"}) {
			t.Fatalf("console: %+v", res.Execution.Logs)
		}
		res = runCode(t, c, sb.ID, "throw new TypeError('bad thing')")
		if ee := res.Execution.Error; ee == nil || ee.Name != "TypeError" || ee.Value != "bad thing" || !strings.Contains(ee.Traceback, "bad thing") {
			t.Fatalf("throw: %+v", res.Execution.Error)
		}
	})

	t.Run("javascript in a python sandbox", func(t *testing.T) {
		sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
		res := runCode(t, c, sb.ID, "const doubled = [1, 2].map((x) => x * 2)\nconsole.log(JSON.stringify(doubled))", sdbx.Language(sdbx.LanguageJavaScript))
		if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"[2,4]"}) || res.Metadata.Language != sdbx.LanguageJavaScript {
			t.Fatalf("javascript: %+v %+v", res.Execution, res.Metadata)
		}
		// The python default context is another interpreter.
		res = runCode(t, c, sb.ID, "print(1 + 1)")
		if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"2"}) || res.Metadata.Language != sdbx.LanguagePython {
			t.Fatalf("python after javascript: %+v", res)
		}
	})
}

func TestCodeBatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	ctx := t.Context()

	t.Run("job order and failures", func(t *testing.T) {
		var mu sync.Mutex
		lines := map[string][]string{}
		results, err := c.RunBatch(ctx, sb.ID, []sdbx.BatchJob{
			{ID: "a", Code: "print('a1')\nprint('a2')"},
			{ID: "b", Code: "print('b1')\n1/0"},
			{ID: "c", Code: "x = 3\nprint(x * 2)", Timeout: 30 * time.Second},
			{ID: "d", Code: "import time\ntime.sleep(30)", Timeout: 500 * time.Millisecond},
		}, sdbx.OnStdout(func(l sdbx.OutputLine) {
			mu.Lock()
			lines[l.JobID] = append(lines[l.JobID], l.Line)
			mu.Unlock()
		}))
		if err != nil {
			t.Fatalf("RunBatch: %v", err)
		}
		var got []string
		for _, r := range results {
			got = append(got, fmt.Sprintf("%s:%v", r.JobID, r.Success))
		}
		if want := []string{"a:true", "b:false", "c:true", "d:false"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("results = %q, want %q", got, want)
		}
		if !reflect.DeepEqual(results[0].Execution.Logs.Stdout, []string{"a1", "a2"}) ||
			!reflect.DeepEqual(results[2].Execution.Logs.Stdout, []string{"6"}) {
			t.Fatalf("a = %+v, c = %+v", results[0].Execution, results[2].Execution)
		}
		if b := results[1]; b.Error != "ZeroDivisionError: division by zero" || b.Execution == nil ||
			b.Execution.Error == nil || !reflect.DeepEqual(b.Execution.Logs.Stdout, []string{"b1"}) {
			t.Fatalf("b = %+v", b)
		}
		if d := results[3]; d.Execution != nil || !strings.Contains(d.Error, "timed out") {
			t.Fatalf("d = %+v, want a timeout without execution", d)
		}
		want := map[string][]string{"a": {"a1", "a2"}, "b": {"b1"}, "c": {"6"}}
		if !reflect.DeepEqual(lines, want) {
			t.Fatalf("streamed lines by job = %q, want %q", lines, want)
		}
		// Jobs without a context ran in fresh contexts, deleted afterwards;
		// the default context never saw them.
		// (A sandbox from the warm pool comes with its default context
		// already started; that one may be listed.)
		list, err := c.ListContexts(ctx, sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, cc := range list {
			if !cc.Default {
				t.Fatalf("contexts after the batch = %+v; want no batch context left", list)
			}
		}
	})

	t.Run("priority", func(t *testing.T) {
		// One job at a time: the order in which they append to a file is
		// the order in which they started.
		order := "/tmp/e2e-order-" + RandomKey()[10:18]
		job := func(id string, prio int) sdbx.BatchJob {
			return sdbx.BatchJob{ID: id, Priority: prio, Code: fmt.Sprintf("with open(%q, 'a') as f:\n    f.write(%q + '\\n')", order, id)}
		}
		results, err := c.RunBatch(ctx, sb.ID, []sdbx.BatchJob{job("low", 0), job("high", 10), job("mid", 5), job("low2", 0)}, sdbx.Concurrency(1))
		if err != nil {
			t.Fatalf("RunBatch: %v", err)
		}
		for _, r := range results {
			if !r.Success {
				t.Fatalf("job %s failed: %s", r.JobID, r.Error)
			}
		}
		if got := readAll(t, c, sb.ID, order); got != "high\nmid\nlow\nlow2\n" {
			t.Fatalf("start order = %q, want high, mid, low, low2", got)
		}
		if results[0].JobID != "low" || results[1].JobID != "high" {
			t.Fatalf("results are not in job order: %+v", results)
		}
	})

	t.Run("concurrency", func(t *testing.T) {
		// Each job marks its start and waits for the other's mark: both
		// succeed only when they run at the same time.
		dir := "/tmp/e2e-rv-" + RandomKey()[10:18]
		job := func(me, other string) sdbx.BatchJob {
			code := fmt.Sprintf("import os, time\nos.makedirs(%q, exist_ok=True)\nopen(%q, 'w').close()\n"+
				"deadline = time.time() + 20\nwhile not os.path.exists(%q):\n"+
				"    if time.time() > deadline:\n        raise TimeoutError('the other job never started')\n"+
				"    time.sleep(0.02)\nprint('met')", dir, dir+"/"+me, dir+"/"+other)
			return sdbx.BatchJob{ID: me, Code: code, Timeout: 40 * time.Second}
		}
		results, err := c.RunBatch(ctx, sb.ID, []sdbx.BatchJob{job("p", "q"), job("q", "p")}, sdbx.Concurrency(2))
		if err != nil {
			t.Fatalf("RunBatch: %v", err)
		}
		for _, r := range results {
			if !r.Success || !reflect.DeepEqual(r.Execution.Logs.Stdout, []string{"met"}) {
				t.Fatalf("job %s: %+v (%s)", r.JobID, r.Execution, r.Error)
			}
		}
	})

	t.Run("in a context", func(t *testing.T) {
		cc, err := c.CreateContext(ctx, sb.ID, sdbx.ContextOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.DeleteContext(ctx, cc.ID)
		runCode(t, c, sb.ID, "shared = 41", sdbx.InContext(cc.ID))
		results, err := c.RunBatch(ctx, sb.ID, []sdbx.BatchJob{{ID: "j", Code: "print(shared + 1)", Context: cc.ID}})
		if err != nil || !results[0].Success || !reflect.DeepEqual(results[0].Execution.Logs.Stdout, []string{"42"}) {
			t.Fatalf("batch job in a context = %+v, %v", results, err)
		}
	})
}

// readAll reads a whole (small) file of a sandbox.
func readAll(t *testing.T, c *sdbx.Client, sandboxID, path string) string {
	t.Helper()
	f, err := c.ReadFile(t.Context(), sandboxID, path)
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(data)
}

func TestCodeBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	ctx := t.Context()

	tests := []struct {
		name string
		call func() error
		want string // in the message
	}{
		{"empty code", func() error { _, err := c.RunCode(ctx, sb.ID, ""); return err }, "code"},
		{"blank code", func() error { _, err := c.RunCode(ctx, sb.ID, " \n\t"); return err }, "code"},
		{"unknown language", func() error { _, err := c.RunCode(ctx, sb.ID, "1", sdbx.Language("cobol")); return err }, `language "cobol"`},
		{"negative timeout", func() error { _, err := c.RunCode(ctx, sb.ID, "1", sdbx.Timeout(-time.Second)); return err }, "timeoutMs"},
		{"bad env name", func() error {
			_, err := c.RunCode(ctx, sb.ID, "1", sdbx.Env(map[string]string{"1BAD": "x"}))
			return err
		}, "1BAD"},
		{"relative context cwd", func() error { _, err := c.CreateContext(ctx, sb.ID, sdbx.ContextOptions{Cwd: "rel"}); return err }, "cwd"},
		{"context language", func() error {
			_, err := c.CreateContext(ctx, sb.ID, sdbx.ContextOptions{Language: "cobol"})
			return err
		}, "cobol"},
		{"no jobs", func() error { _, err := c.RunBatch(ctx, sb.ID, nil); return err }, "jobs"},
		{"repeated job id", func() error {
			_, err := c.RunBatch(ctx, sb.ID, []sdbx.BatchJob{{ID: "a", Code: "1"}, {ID: "a", Code: "2"}})
			return err
		}, "jobs[1]"},
		{"job without code", func() error {
			_, err := c.RunBatch(ctx, sb.ID, []sdbx.BatchJob{{ID: "a", Code: "1"}, {ID: "b"}})
			return err
		}, "jobs[1]"},
		{"concurrency", func() error {
			_, err := c.RunBatch(ctx, sb.ID, []sdbx.BatchJob{{ID: "a", Code: "1"}}, sdbx.Concurrency(17))
			return err
		}, "concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var se *sdbx.SandboxError
			if !errors.As(err, &se) || !errors.Is(err, sdbx.ErrInvalidArgument) || se.StatusCode != http.StatusBadRequest ||
				!strings.Contains(se.Message, tt.want) {
				t.Fatalf("err = %v (%T), want invalid_argument naming %q", err, err, tt.want)
			}
		})
	}

	// What the SDK cannot send: a non-string env value, unknown fields.
	raw := []struct {
		name, path, body, want string
	}{
		{"non-string env", "/code", `{"code":"print(1)","envs":{"A":1}}`, `envs.A`},
		{"unknown field", "/code", `{"code":"print(1)","bogus":true}`, `bogus`},
		{"timeout type", "/code", `{"code":"print(1)","timeoutMs":"soon"}`, `timeoutMs`},
		{"job field", "/batch", `{"jobs":[{"id":"a","code":"1","timeout":1.5}]}`, `jobs[0].timeout`},
		{"context env", "/contexts", `{"envs":{"A":true}}`, `envs.A`},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/sandboxes/"+sb.ID+tt.path, "bearer", tt.body, nil)
			code, msg := errorBody(t, r)
			if r.status != http.StatusBadRequest || code != "invalid_argument" || !strings.Contains(msg, tt.want) {
				t.Fatalf("POST %s %s = %d %s %q, want 400 invalid_argument naming %q", tt.path, tt.body, r.status, code, msg, tt.want)
			}
		})
	}

	// Unknown sandboxes are not found.
	if _, err := c.RunCode(ctx, "sb-doesnotexist", "1"); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("RunCode(unknown sandbox) = %v", err)
	}
	if _, err := c.ListContexts(ctx, "sb-doesnotexist"); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("ListContexts(unknown sandbox) = %v", err)
	}
}

// dataScienceSandbox creates a python-data-science sandbox, or skips the
// test when that template is not ready on this machine.
func dataScienceSandbox(t *testing.T, e *testEnv) *sdbx.Sandbox {
	t.Helper()
	tmpl, err := e.client(t).GetTemplate(t.Context(), "python-data-science")
	if errors.Is(err, sdbx.ErrNotFound) || (err == nil && tmpl.Status != "ready") {
		t.Skipf("python-data-science is not ready here (%v, %+v)", err, tmpl)
	}
	if err != nil {
		t.Fatalf("GetTemplate(python-data-science): %v", err)
	}
	return e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-data-science"})
}

func TestCodeDataScience(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := dataScienceSandbox(t, e)
	ctx := t.Context()

	csv := "name,value\na,1\nb,2\nc,3\nd,4\n"
	if _, err := c.WriteFile(ctx, sb.ID, "/workspace/data.csv", strings.NewReader(csv)); err != nil {
		t.Fatalf("WriteFile(data.csv): %v", err)
	}

	t.Run("pandas read_csv and describe", func(t *testing.T) {
		res := runCode(t, c, sb.ID, "import pandas as pd\nprint('Loading data...')\ndf = pd.read_csv('data.csv')\nprint(df.describe())")
		out := strings.Join(res.Execution.Logs.Stdout, "\n")
		if res.Execution.Error != nil || res.Execution.Logs.Stdout[0] != "Loading data..." {
			t.Fatalf("execution = %+v", res.Execution)
		}
		for _, want := range []string{"count", "4.000000", "mean", "2.500000", "max"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe() output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("matplotlib figure is a PNG result", func(t *testing.T) {
		var streamed []sdbx.Result
		res := runCode(t, c, sb.ID, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 5, 6])\nplt.title('e2e')\nplt.show()",
			sdbx.OnResult(func(r sdbx.Result) { streamed = append(streamed, r) }))
		if res.Execution.Error != nil {
			t.Fatalf("error: %+v", res.Execution.Error)
		}
		i := slices.IndexFunc(res.Execution.Results, func(r sdbx.Result) bool { return r.PNG != "" })
		if i < 0 {
			t.Fatalf("no PNG among the results %+v", res.Execution.Results)
		}
		png, err := base64.StdEncoding.DecodeString(res.Execution.Results[i].PNG)
		if err != nil || !strings.HasPrefix(string(png), "\x89PNG\r\n\x1a\n") || len(png) < 1000 {
			t.Fatalf("PNG: %d bytes starting %q, %v", len(png), png[:min(8, len(png))], err)
		}
		if len(streamed) != len(res.Execution.Results) || streamed[i].PNG != res.Execution.Results[i].PNG {
			t.Fatalf("OnResult saw %d results, the result has %d", len(streamed), len(res.Execution.Results))
		}
	})

	t.Run("DataFrame trailing expression has html", func(t *testing.T) {
		res := runCode(t, c, sb.ID, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
		r, ok := mainResult(res)
		if !ok || !strings.Contains(r.HTML, "<table") || !strings.Contains(r.Text, "a") || !slices.Contains(r.Formats(), "text/html") {
			t.Fatalf("main result = %+v", r)
		}
	})
}

// cliStdin runs the built sdbx binary with stdin.
func (e *testEnv) cliStdin(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), e.bin, args...)
	cmd.Env = append(serverEnv(os.Environ()), "SDBX_URL="+e.srv.URL, "SDBX_API_KEY="+e.srv.APIKey)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run sdbx %q: %v", args, err)
	}
	return cliResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}

func TestCLICodeAndFiles(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})

	r := e.cli(t, "code", sb.ID, quickStartCode)
	if r.code != 0 || r.stdout != "Hello from sandbox!\nResult: 30\n" || r.stderr != "" {
		t.Fatalf("sdbx code (quick start): %v", r)
	}
	// State survives between invocations: the default context.
	r = e.cli(t, "code", sb.ID, "print(x)\nx * 2")
	if r.code != 0 || r.stdout != "30\n60\n" {
		t.Fatalf("sdbx code (state): %v", r)
	}
	r = e.cliStdin(t, "import sys\nprint('from stdin', file=sys.stderr)\n1/0\n", "code", sb.ID, "-")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "from stdin\nTraceback") || !strings.HasSuffix(r.stderr, "ZeroDivisionError: division by zero\n") {
		t.Fatalf("sdbx code raising: %v; want exit 1 and the traceback on stderr", r)
	}
	r = e.cli(t, "code", "--timeout", "500ms", sb.ID, "import time\ntime.sleep(30)")
	if r.code != 124 || !strings.Contains(r.stderr, "state was kept") {
		t.Fatalf("sdbx code past its timeout: %v; want exit 124", r)
	}

	local := filepath.Join(t.TempDir(), "in.bin")
	content := "line one\n\x00binary\xff\n"
	if err := os.WriteFile(local, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = e.cli(t, "files", "put", "--parents", sb.ID, local, "/workspace/cli/in.bin"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("files put: %v", r)
	}
	if r = e.cliStdin(t, "from stdin\n", "files", "put", sb.ID, "-", "/workspace/cli/stdin.txt"); r.code != 0 {
		t.Fatalf("files put -: %v", r)
	}
	if r = e.cli(t, "files", "cat", sb.ID, "/workspace/cli/in.bin"); r.code != 0 || r.stdout != content {
		t.Fatalf("files cat: %v", r)
	}
	r = e.cli(t, "files", "ls", sb.ID, "/workspace/cli")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 3 ||
		!strings.HasPrefix(lines[1], "file") || !strings.HasSuffix(lines[1], " in.bin") || !strings.HasSuffix(lines[2], " stdin.txt") {
		t.Fatalf("files ls: %v", r)
	}
	out := filepath.Join(t.TempDir(), "out.txt")
	if r = e.cli(t, "files", "get", sb.ID, "/workspace/cli/stdin.txt", out); r.code != 0 {
		t.Fatalf("files get: %v", r)
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != "from stdin\n" {
		t.Fatalf("downloaded %q, %v", got, err)
	}
	if r = e.cli(t, "files", "rm", sb.ID, "/workspace/cli"); r.code != 1 || !strings.Contains(r.stderr, "sdbx: ") {
		t.Fatalf("files rm of a non-empty dir: %v; want exit 1 (conflict)", r)
	}
	if r = e.cli(t, "files", "rm", "-r", sb.ID, "/workspace/cli"); r.code != 0 {
		t.Fatalf("files rm -r: %v", r)
	}
	if r = e.cli(t, "files", "cat", sb.ID, "/workspace/cli/in.bin"); r.code != 3 {
		t.Fatalf("files cat after rm: %v; want exit 3", r)
	}
}

// TestCodeSeesSandboxEnv checks that a sandbox's environment reaches its
// default context also when the sandbox comes from the warm pool (whose
// interpreter may have been started before the sandbox had an environment).
func TestCodeSeesSandboxEnv(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	for i := 0; i < 3; i++ { // more than the pool holds, so pooled and cold ones both run
		sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Env: map[string]string{"SDBX_E2E_ENV": fmt.Sprint("v", i)}})
		res, err := c.RunCode(t.Context(), sb.ID, "import os; print(os.environ.get('SDBX_E2E_ENV'))")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("v", i); len(res.Execution.Logs.Stdout) != 1 || res.Execution.Logs.Stdout[0] != want {
			t.Fatalf("sandbox %d: code sees %q, want %q", i, res.Execution.Logs.Stdout, want)
		}
	}
}
