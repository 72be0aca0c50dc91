package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sdbx/sdbx/internal/agent/procfs"
	"github.com/sdbx/sdbx/internal/agentproto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testEnv is the environment of test contexts: Debian's interpreters
// (with python3-pandas and python3-matplotlib when installed), not those
// of a developer's PATH.
func testEnv() map[string]string {
	return map[string]string{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.TempDir()}
}

// needLanguage skips the test when the language's interpreter is missing.
func needLanguage(t testing.TB, lang string) {
	t.Helper()
	exe := map[string]string{agentproto.LanguagePython: "python3", agentproto.LanguageJavaScript: "node"}[lang]
	if _, err := lookPath(exe, testEnv()); err != nil {
		t.Skipf("%s not installed: %v", exe, err)
	}
}

// needPythonModule skips the test when python3 cannot import mod.
func needPythonModule(t testing.TB, mod string) {
	t.Helper()
	needLanguage(t, agentproto.LanguagePython)
	py, _ := lookPath("python3", testEnv())
	if err := exec.Command(py, "-c", "import "+mod).Run(); err != nil {
		t.Skipf("python3 cannot import %s (apt-get install python3-%s): %v", mod, mod, err)
	}
}

// newTestManager returns a manager that is closed when the test ends.
func newTestManager(t testing.TB) *Manager {
	t.Helper()
	m := NewManager(Options{DefaultCwd: t.TempDir(), InterruptGrace: 200 * time.Millisecond})
	t.Cleanup(m.Close)
	return m
}

// newContext creates a context of lang in m and returns its id.
func newContext(t testing.TB, m *Manager, lang string) string {
	t.Helper()
	needLanguage(t, lang)
	id := "ctx-" + lang + "-" + randomHex(4)
	if _, err := m.Create(context.Background(), agentproto.ContextCreateRequest{ID: id, Language: lang, Env: testEnv()}); err != nil {
		t.Fatalf("create %s context: %v", lang, err)
	}
	return id
}

// run is what one Execute produced.
type run struct {
	mu     sync.Mutex
	events []agentproto.Event
	done   agentproto.ContextDone
	err    error
}

func (r *run) sink(ev agentproto.Event, _ bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// lines returns the data of the events of type typ.
func (r *run) lines(typ string) []string {
	var out []string
	for _, ev := range r.events {
		if ev.Type == typ {
			out = append(out, ev.Data)
		}
	}
	return out
}

func (r *run) stdout() []string { return r.lines(agentproto.EventStdout) }
func (r *run) stderr() []string { return r.lines(agentproto.EventStderr) }

func (r *run) results() []*agentproto.Result {
	var out []*agentproto.Result
	for _, ev := range r.events {
		if ev.Type == agentproto.EventDisplay {
			out = append(out, ev.Result)
		}
	}
	return out
}

func (r *run) exceptions() []*agentproto.Exception {
	var out []*agentproto.Exception
	for _, ev := range r.events {
		if ev.Type == agentproto.EventException {
			out = append(out, ev.Exception)
		}
	}
	return out
}

// trace renders the events compactly, for ordering checks and failures.
func (r *run) trace() []string {
	var out []string
	for _, ev := range r.events {
		switch ev.Type {
		case agentproto.EventDisplay:
			out = append(out, "display:"+ev.Result.Text)
		case agentproto.EventException:
			out = append(out, "exception:"+ev.Exception.Name)
		default:
			out = append(out, ev.Type+":"+ev.Data)
		}
	}
	return out
}

func (r *run) String() string {
	return fmt.Sprintf("events %q, done %+v, err %v", r.trace(), r.done, r.err)
}

// errorCase is code that raises one exception: its name, its value
// (empty: any) and parts its traceback must show.
type errorCase struct {
	name      string
	code      string
	errName   string
	value     string
	traceback []string
}

// checkException checks that r raised exactly the exception of tt, with a
// traceback free of driverMarks (the driver's own frames).
func checkException(t *testing.T, r *run, tt errorCase, driverMarks ...string) {
	t.Helper()
	exc := r.exceptions()
	if r.err != nil || len(exc) != 1 {
		t.Fatalf("want one exception: %v", r)
	}
	e := exc[0]
	if e.Name != tt.errName || (tt.value != "" && e.Value != tt.value) {
		t.Errorf("exception = %s: %q, want %s: %q", e.Name, e.Value, tt.errName, tt.value)
	}
	if !containsAll(e.Traceback, tt.traceback...) {
		t.Errorf("traceback lacks %q:\n%s", tt.traceback, e.Traceback)
	}
	for _, mark := range driverMarks {
		if strings.Contains(e.Traceback, mark) {
			t.Errorf("traceback shows driver frames:\n%s", e.Traceback)
			return
		}
	}
}

// execute runs code in context id.
func execute(t testing.TB, m *Manager, id, code string, timeoutMs int64) *run {
	t.Helper()
	return executeReq(t, m, agentproto.ContextExecRequest{ID: id, Code: code, TimeoutMs: timeoutMs})
}

func executeReq(t testing.TB, m *Manager, req agentproto.ContextExecRequest) *run {
	t.Helper()
	r := &run{}
	r.done, r.err = m.Execute(context.Background(), req, r.sink)
	return r
}

// mustRun runs code and fails the test on an error or exception.
func mustRun(t testing.TB, m *Manager, id, code string) *run {
	t.Helper()
	r := execute(t, m, id, code, 0)
	if r.err != nil || len(r.exceptions()) > 0 {
		t.Fatalf("run %q: %v", code, r)
	}
	return r
}

// processGone reports whether pid has exited (it is gone or a zombie),
// waiting up to a few seconds for the kill to take effect.
func processGone(pid int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p, ok := procfs.Stat("/proc", pid); !ok || !p.Live() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killPids cleans up processes a failed test may have left.
func killPids(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// containsAll reports whether s contains every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
