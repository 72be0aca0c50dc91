package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	needLanguage(t, agentproto.LanguagePython)
	m := newTestManager(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	id := newContext(t, m, agentproto.LanguagePython)
	tests := []struct {
		name string
		req  agentproto.ContextCreateRequest
		kind error
		msg  string
	}{
		{"empty id", agentproto.ContextCreateRequest{Language: "python"}, errdefs.ErrInvalidArgument, "context.id"},
		{"control character in id", agentproto.ContextCreateRequest{ID: "a\nb", Language: "python"}, errdefs.ErrInvalidArgument, "context.id"},
		{"unknown language", agentproto.ContextCreateRequest{ID: "x", Language: "cobol"}, errdefs.ErrInvalidArgument, "context.language"},
		{"relative cwd", agentproto.ContextCreateRequest{ID: "x", Language: "python", Cwd: "rel"}, errdefs.ErrInvalidArgument, "context.cwd"},
		{"cwd is a file", agentproto.ContextCreateRequest{ID: "x", Language: "python", Cwd: file}, errdefs.ErrInvalidArgument, "context.cwd"},
		{"bad env", agentproto.ContextCreateRequest{ID: "x", Language: "python", Env: map[string]string{"A=B": "c"}}, errdefs.ErrInvalidArgument, "context.env"},
		{"duplicate id", agentproto.ContextCreateRequest{ID: id, Language: "python"}, errdefs.ErrConflict, id},
		{"missing interpreter", agentproto.ContextCreateRequest{ID: "x", Language: "python", Env: map[string]string{"PATH": t.TempDir()}}, errdefs.ErrNotFound, "python3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Create(ctx, tt.req)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Create = %v, want %v naming %q", err, tt.kind, tt.msg)
			}
		})
	}
	if got := m.List(); len(got) != 1 || got[0].ID != id {
		t.Errorf("List = %+v, want only %s", got, id)
	}
}

func TestExecuteErrors(t *testing.T) {
	t.Parallel()
	needLanguage(t, agentproto.LanguagePython)
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	tests := []struct {
		name string
		req  agentproto.ContextExecRequest
		kind error
	}{
		{"unknown context", agentproto.ContextExecRequest{ID: "nope", Code: "1"}, errdefs.ErrNotFound},
		{"empty id", agentproto.ContextExecRequest{Code: "1"}, errdefs.ErrInvalidArgument},
		{"negative timeout", agentproto.ContextExecRequest{ID: id, Code: "1", TimeoutMs: -1}, errdefs.ErrInvalidArgument},
		{"bad env", agentproto.ContextExecRequest{ID: id, Code: "1", Env: map[string]string{"": "v"}}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := executeReq(t, m, tt.req); !errors.Is(r.err, tt.kind) {
				t.Errorf("Execute = %v, want %v", r, tt.kind)
			}
		})
	}
	if _, err := m.Delete(context.Background(), "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Delete(nope) = %v, want not found", err)
	}
}

func TestCreateCwdEnvAndList(t *testing.T) {
	t.Parallel()
	needLanguage(t, agentproto.LanguagePython)
	m := newTestManager(t)
	cwd := filepath.Join(t.TempDir(), "a", "b")
	env := testEnv()
	env["CTX_VAR"] = "ctx-value"
	info, err := m.Create(context.Background(), agentproto.ContextCreateRequest{ID: "py-cwd", Language: "python", Cwd: cwd, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "py-cwd" || info.Language != "python" || info.Cwd != cwd || info.Pid <= 0 || info.CreatedAt == 0 {
		t.Errorf("info = %+v", info)
	}
	r := mustRun(t, m, "py-cwd", "import os\nprint(os.getcwd())\nprint(os.environ['CTX_VAR'])\nprint('SDBX_KERNEL_TOKEN' in os.environ)")
	if got, want := r.stdout(), []string{cwd, "ctx-value", "False"}; !slices.Equal(got, want) {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	list := m.List()
	if len(list) != 1 || list[0].ExecutionCount != 1 || list[0].Pid != info.Pid {
		t.Errorf("List = %+v", list)
	}
	if _, err := m.Delete(context.Background(), "py-cwd"); err != nil {
		t.Fatal(err)
	}
	if !processGone(info.Pid) {
		t.Errorf("driver %d still running after delete", info.Pid)
	}
	if got := m.List(); len(got) != 0 {
		t.Errorf("List after delete = %+v", got)
	}
	if r := execute(t, m, "py-cwd", "1", 0); !errors.Is(r.err, errdefs.ErrNotFound) {
		t.Errorf("run after delete = %v", r)
	}
}

func TestPythonTimeoutKeepsState(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	mustRun(t, m, id, "x = 42")
	r := execute(t, m, id, "import time\nprint('start')\ntime.sleep(60)", 300)
	if r.err != nil || !r.done.TimedOut || !r.done.StateKept {
		t.Fatalf("want a timeout with state kept: %v", r)
	}
	if exc := r.exceptions(); len(exc) != 1 || exc[0].Name != "KeyboardInterrupt" || !strings.Contains(exc[0].Traceback, "time.sleep(60)") {
		t.Errorf("exceptions = %+v", exc)
	}
	if got := r.stdout(); !slices.Equal(got, []string{"start"}) {
		t.Errorf("stdout = %q", got)
	}
	if r := mustRun(t, m, id, "print(x)"); !slices.Equal(r.stdout(), []string{"42"}) {
		t.Errorf("after the timeout: %v", r)
	}
}

// TestPythonTimeoutReachesSubprocess: os.system ignores SIGINT in the
// interpreter while it waits, so only the SIGINT to the process group
// stops the shell's child; the code then runs on and the state stays.
func TestPythonTimeoutReachesSubprocess(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	r := execute(t, m, id, "import os\nx = 3\nos.system('sleep 60')\nprint('after', x)", 200)
	if r.err != nil || !r.done.TimedOut || !r.done.StateKept || !slices.Equal(r.stdout(), []string{"after 3"}) {
		t.Fatalf("%v", r)
	}
}

func TestPythonTimeoutIgnoringSIGINTRestarts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		code string
	}{
		// KeyboardInterrupt caught inside the loop, every time.
		{"swallows KeyboardInterrupt", "while True:\n    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass"},
		// SIGINT ignored altogether.
		{"ignores SIGINT", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t)
			id := newContext(t, m, agentproto.LanguagePython)
			mustRun(t, m, id, "x = 42")
			pid := m.List()[0].Pid
			r := execute(t, m, id, tt.code, 200)
			if r.err != nil || !r.done.TimedOut || r.done.StateKept {
				t.Fatalf("want a timeout with state lost: %v", r)
			}
			if !processGone(pid) {
				t.Errorf("old driver %d still running", pid)
			}
			r = execute(t, m, id, "print('fresh')\nx", 0)
			if !slices.Equal(r.stdout(), []string{"fresh"}) || len(r.exceptions()) != 1 || r.exceptions()[0].Name != "NameError" {
				t.Errorf("after the restart: %v", r)
			}
			if r.done.ExecutionCount != 3 {
				t.Errorf("execution count = %d, want 3", r.done.ExecutionCount)
			}
		})
	}
}

func TestJavaScriptTimeout(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguageJavaScript)
	mustRun(t, m, id, "let kept = 'yes'")
	tests := []struct {
		name      string
		code      string
		stateKept bool
	}{
		{"synchronous loop", "while (true) {}", true},
		{"pending promise", "await new Promise(() => {})", true},
		{"loop after await", "await null\nwhile (true) {}", false},
	}
	for _, tt := range tests {
		r := execute(t, m, id, tt.code, 200)
		if r.err != nil || !r.done.TimedOut || r.done.StateKept != tt.stateKept {
			t.Errorf("%s: want timeout with state kept %v: %v", tt.name, tt.stateKept, r)
		}
		want := "'yes'"
		if !tt.stateKept {
			want = "undefined"
		}
		if r := mustRun(t, m, id, "typeof kept === 'undefined' ? undefined : kept"); want == "undefined" && len(r.results()) != 0 || want != "undefined" && !slices.Equal(r.trace(), []string{"display:" + want}) {
			t.Errorf("%s: after the timeout: %v", tt.name, r)
		}
	}
}

func TestPythonCrashRestarts(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	mustRun(t, m, id, "x = 1")
	r := execute(t, m, id, "import os\nprint('bye')\nos._exit(3)", 0)
	if r.err != nil || r.done.StateKept || r.done.TimedOut {
		t.Fatalf("want state lost: %v", r)
	}
	exc := r.exceptions()
	if len(exc) != 1 || exc[0].Name != "InterpreterExited" || !strings.Contains(exc[0].Value, "exit status 3") {
		t.Errorf("exceptions = %+v", exc)
	}
	if got := r.stdout(); !slices.Equal(got, []string{"bye"}) {
		t.Errorf("output before the exit = %q", got)
	}
	if got := m.List()[0].Pid; got != 0 {
		t.Errorf("pid after the crash = %d, want 0", got)
	}
	r = execute(t, m, id, "'x' in globals()", 0)
	if !slices.Equal(r.trace(), []string{"display:False"}) || !r.done.StateKept {
		t.Errorf("after the restart: %v", r)
	}
}

func TestPythonDiedBetweenRuns(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	mustRun(t, m, id, "import os, threading, time\nx = 1\nthreading.Thread(target=lambda: (time.sleep(0.05), os._exit(5))).start()")
	for m.List()[0].Pid != 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r := execute(t, m, id, "'x' in globals()", 0)
	if res := r.results(); r.err != nil || r.done.StateKept || len(res) != 1 || res[0].Text != "False" {
		t.Fatalf("want a fresh interpreter and state lost: %v", r)
	}
	if errs := r.stderr(); len(errs) != 1 || !containsAll(errs[0], "had exited", "exit status 5", "state is lost") {
		t.Errorf("stderr = %q", errs)
	}
	if r := mustRun(t, m, id, "1"); !r.done.StateKept {
		t.Errorf("next run: %v", r)
	}
}

func TestCancelInterrupts(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	mustRun(t, m, id, "x = 7")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	r := &run{}
	go func() {
		<-started
		cancel()
	}()
	r.done, r.err = m.Execute(ctx, agentproto.ContextExecRequest{ID: id, Code: "import time\nprint('go', flush=True)\ntime.sleep(60)"}, func(ev agentproto.Event, more bool) {
		r.sink(ev, more)
		once.Do(func() { close(started) })
	})
	if !errors.Is(r.err, context.Canceled) || !r.done.StateKept {
		t.Fatalf("want cancelled with state kept: %v", r)
	}
	if r := mustRun(t, m, id, "x"); !slices.Equal(r.trace(), []string{"display:7"}) {
		t.Errorf("after cancel: %v", r)
	}
}

func TestRunsQueueInArrivalOrder(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	mustRun(t, m, id, "order = []\nimport time")
	c, err := m.get(id)
	if err != nil {
		t.Fatal(err)
	}
	waiters := func() int {
		c.turn.mu.Lock()
		defer c.turn.mu.Unlock()
		return len(c.turn.waiters)
	}
	const n = 6
	var wg sync.WaitGroup
	runs := make([]*run, n+1)
	start := func(i int, code string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = executeReq(t, m, agentproto.ContextExecRequest{ID: id, Code: code})
		}()
	}
	start(0, "time.sleep(0.3)\norder.append(0)")
	// Each run is queued before the next one is sent.
	for i := 1; i <= n; i++ {
		for waiters() != i-1 || !c.turn.isHeld() {
			time.Sleep(time.Millisecond)
		}
		start(i, fmt.Sprintf("order.append(%d)", i))
	}
	wg.Wait()
	for i, r := range runs {
		if r.err != nil || len(r.exceptions()) > 0 {
			t.Fatalf("run %d: %v", i, r)
		}
	}
	r := mustRun(t, m, id, "order")
	if got, want := r.trace(), []string{"display:[0, 1, 2, 3, 4, 5, 6]"}; !slices.Equal(got, want) {
		t.Errorf("order = %q, want %q", got, want)
	}
}

func TestQueuedRunFailsOnDelete(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	c, _ := m.get(id)
	first := make(chan *run)
	second := make(chan *run)
	go func() { first <- execute(t, m, id, "import time\ntime.sleep(60)", 0) }()
	for !c.turn.isHeld() {
		time.Sleep(time.Millisecond)
	}
	go func() { second <- execute(t, m, id, "1", 0) }()
	for {
		c.turn.mu.Lock()
		n := len(c.turn.waiters)
		c.turn.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := m.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan *run{first, second} {
		if r := <-ch; !errors.Is(r.err, errdefs.ErrNotFound) {
			t.Errorf("run of a deleted context: %v", r)
		}
	}
}

func TestDeleteKillsProcesses(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	id := newContext(t, m, agentproto.LanguagePython)
	driver := m.List()[0].Pid
	r := mustRun(t, m, id, `
import os, subprocess, sys, time
pids = []
# A child of the driver.
pids.append(subprocess.Popen(['sleep', '100']).pid)
# A child in a session of its own.
pids.append(subprocess.Popen(['sleep', '101'], start_new_session=True).pid)
# A background job of a shell that exits at once.
os.system('sleep 102 & echo $! > bg.pid')
pids.append(int(open('bg.pid').read()))
# A daemon: fork, setsid, fork again; the middle process exits.
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        os.execvp('sleep', ['sleep', '103'])
    os._exit(0)
os.close(w)
pids.append(int(os.read(r, 32)))
os.close(r)
print(' '.join(map(str, pids)))
`)
	out := r.stdout()
	if len(out) != 1 {
		t.Fatalf("%v", r)
	}
	var pids []int
	for _, f := range strings.Fields(out[0]) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	t.Cleanup(func() { killPids(pids) })
	if len(pids) != 4 {
		t.Fatalf("pids = %v", pids)
	}
	if _, err := m.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	for i, pid := range append([]int{driver}, pids...) {
		if !processGone(pid) {
			t.Errorf("process %d (#%d) survived the delete", pid, i)
		}
	}
}

func TestCloseStopsEverything(t *testing.T) {
	t.Parallel()
	needLanguage(t, agentproto.LanguagePython)
	m := NewManager(Options{DefaultCwd: t.TempDir()})
	a := newContext(t, m, agentproto.LanguagePython)
	newContext(t, m, agentproto.LanguagePython)
	done := make(chan *run)
	go func() { done <- execute(t, m, a, "import time\ntime.sleep(60)", 0) }()
	c, _ := m.get(a)
	for !c.turn.isHeld() {
		time.Sleep(time.Millisecond)
	}
	pids := []int{m.List()[0].Pid, m.List()[1].Pid}
	m.Close()
	if r := <-done; !errors.Is(r.err, errdefs.ErrNotFound) {
		t.Errorf("run during Close: %v", r)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("driver %d survived Close", pid)
		}
	}
	if _, err := m.Create(context.Background(), agentproto.ContextCreateRequest{ID: "late", Language: "python", Env: testEnv()}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Create after Close = %v", err)
	}
}
