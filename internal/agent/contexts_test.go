package agent_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agent/procfs"
	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// contextEnv is the environment of test contexts: Debian's interpreters.
func contextEnv() map[string]string {
	return map[string]string{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
}

func needInterpreter(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/" + name); err != nil {
		t.Skipf("/usr/bin/%s not installed", name)
	}
}

// codeRun is what one ExecContext produced.
type codeRun struct {
	mu     sync.Mutex
	events []agentproto.Event
	done   agentproto.ContextDone
	err    error
}

func (r *codeRun) trace() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
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

func runCode(ctx context.Context, c *agentclient.Client, id, code string, timeoutMs int64) *codeRun {
	r := &codeRun{}
	r.done, r.err = c.ExecContext(ctx, agentproto.ContextExecRequest{ID: id, Code: code, TimeoutMs: timeoutMs}, func(ev agentproto.Event) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	})
	return r
}

func TestContextOps(t *testing.T) {
	needInterpreter(t, "python3")
	for _, mode := range []agent.ReapMode{agent.ReapChildren, agent.ReapAll} {
		t.Run(mode.String(), func(t *testing.T) {
			ta := startAgent(t, mode)
			ctx := context.Background()
			c := ta.client
			info, err := c.CreateContext(ctx, agentproto.ContextCreateRequest{ID: "ctx-a", Language: agentproto.LanguagePython, Env: contextEnv()})
			if err != nil {
				t.Fatal(err)
			}
			if info.ID != "ctx-a" || info.Cwd != ta.cwd || info.Pid <= 0 {
				t.Errorf("info = %+v, want cwd %s", info, ta.cwd)
			}
			if _, err := c.CreateContext(ctx, agentproto.ContextCreateRequest{ID: "ctx-a", Language: agentproto.LanguagePython, Env: contextEnv()}); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("second create = %v, want conflict", err)
			}
			if r := runCode(ctx, c, "ctx-a", "x = 10", 0); r.err != nil || len(r.trace()) != 0 || r.done.ExecutionCount != 1 {
				t.Fatalf("x = 10: %+v", r)
			}
			r := runCode(ctx, c, "ctx-a", "print(x)\ndisplay({'text/plain': 'h', 'text/html': '<b>&</b>'}, raw=True)\n1/0", 0)
			if got, want := r.trace(), []string{"stdout:10", "display:h", "exception:ZeroDivisionError"}; r.err != nil || !slices.Equal(got, want) {
				t.Fatalf("trace = %q (%v), want %q", got, r.err, want)
			}
			if html := r.events[1].Result.HTML; html != "<b>&</b>" {
				t.Errorf("html = %q", html)
			}
			if tb := r.events[2].Exception.Traceback; !strings.Contains(tb, "1/0") {
				t.Errorf("traceback = %q", tb)
			}
			if r.done.ExecutionCount != 2 || !r.done.StateKept || r.done.TimedOut {
				t.Errorf("done = %+v", r.done)
			}
			// A result far longer than an output line.
			big := runCode(ctx, c, "ctx-a", "display({'text/plain': 'big', 'image/png': 'A' * 3_000_000}, raw=True)", 0)
			if big.err != nil || len(big.events) != 1 || len(big.events[0].Result.PNG) != 3_000_000 {
				t.Errorf("big result: %v, %d events", big.err, len(big.events))
			}
			list, err := c.ListContexts(ctx)
			if err != nil || len(list) != 1 || list[0].ID != "ctx-a" || list[0].ExecutionCount != 3 {
				t.Errorf("list = %+v, %v", list, err)
			}
			if _, err := c.DeleteContext(ctx, "ctx-a"); err != nil {
				t.Fatal(err)
			}
			if r := runCode(ctx, c, "ctx-a", "1", 0); !errors.Is(r.err, errdefs.ErrNotFound) {
				t.Errorf("run after delete: %v", r.err)
			}
			if _, err := c.DeleteContext(ctx, "ctx-a"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("second delete = %v", err)
			}
			if list, err := c.ListContexts(ctx); err != nil || len(list) != 0 {
				t.Errorf("list after delete = %+v, %v", list, err)
			}
			if !processGone(info.Pid) {
				t.Errorf("driver %d survived the delete", info.Pid)
			}
		})
	}
}

func TestContextBadRequests(t *testing.T) {
	ta := startAgent(t, agent.ReapChildren)
	ctx := context.Background()
	for _, op := range []string{agentproto.OpContextCreate, agentproto.OpContextExec, agentproto.OpContextDelete} {
		conn, err := unixDialer(ta.sock)(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(`{"op":"` + op + `"}` + "\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		conn.Close()
		if got := string(buf[:n]); !strings.Contains(got, `"err":"invalid_argument"`) || !strings.Contains(got, "missing") {
			t.Errorf("%s without payload: %s", op, got)
		}
	}
	if _, err := ta.client.CreateContext(ctx, agentproto.ContextCreateRequest{ID: "x", Language: "cobol"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown language = %v", err)
	}
	if _, err := ta.client.ExecContext(ctx, agentproto.ContextExecRequest{ID: "nope", Code: "1"}, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown context = %v", err)
	}
}

func TestContextCancelAndTimeout(t *testing.T) {
	needInterpreter(t, "python3")
	ta := startAgent(t, agent.ReapChildren)
	c := ta.client
	bg := context.Background()
	if _, err := c.CreateContext(bg, agentproto.ContextCreateRequest{ID: "py", Language: agentproto.LanguagePython, Env: contextEnv()}); err != nil {
		t.Fatal(err)
	}
	runCode(bg, c, "py", "x = 5", 0)

	// The client goes away: the run is interrupted, the state stays.
	ctx, cancel := context.WithCancel(bg)
	r := &codeRun{}
	r.done, r.err = c.ExecContext(ctx, agentproto.ContextExecRequest{ID: "py", Code: "import time\nprint('go', flush=True)\ntime.sleep(60)"}, func(ev agentproto.Event) {
		if ev.Type == agentproto.EventStdout {
			cancel()
		}
	})
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled run = %v", r.err)
	}
	if r := runCode(bg, c, "py", "x", 0); r.err != nil || !slices.Equal(r.trace(), []string{"display:5"}) {
		t.Errorf("after cancel: %q, %v", r.trace(), r.err)
	}

	r = runCode(bg, c, "py", "import time\ntime.sleep(60)", 200)
	if r.err != nil || !r.done.TimedOut || !r.done.StateKept {
		t.Errorf("timeout: %+v, %v", r.done, r.err)
	}
}

func TestContextJavaScript(t *testing.T) {
	needInterpreter(t, "node")
	ta := startAgent(t, agent.ReapAll)
	c := ta.client
	ctx := context.Background()
	if _, err := c.CreateContext(ctx, agentproto.ContextCreateRequest{ID: "js", Language: agentproto.LanguageJavaScript, Env: contextEnv()}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := runCode(ctx, c, "js", "const v = await Promise.resolve(20)\nconsole.error('e'); v + 1", 0)
		if got, want := r.trace(), []string{"stderr:e", "display:21"}; r.err != nil || !slices.Equal(got, want) {
			t.Errorf("run %d: %q, %v", i, got, r.err)
		}
	}
}

// processGone reports whether pid has exited (gone, or a zombie).
func processGone(pid int) bool {
	p, ok := procfs.Stat("/proc", pid)
	return !ok || !p.Live()
}

// BenchmarkContextRoundTrip runs `x += 1` in a Python context through the
// client: connect, request, run, done event.
func BenchmarkContextRoundTrip(b *testing.B) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		b.Skip("/usr/bin/python3 not installed")
	}
	ta := startAgent(b, agent.ReapChildren)
	ctx := context.Background()
	if _, err := ta.client.CreateContext(ctx, agentproto.ContextCreateRequest{ID: "bench", Language: agentproto.LanguagePython, Env: contextEnv()}); err != nil {
		b.Fatal(err)
	}
	if r := runCode(ctx, ta.client, "bench", "x = 0", 0); r.err != nil {
		b.Fatal(r.err)
	}
	req := agentproto.ContextExecRequest{ID: "bench", Code: "x += 1"}
	// A connection per run, and one kept alive between runs.
	kept := agentclient.NewPooled(unixDialer(ta.sock), 1)
	defer kept.Close()
	for _, c := range []struct {
		name   string
		client *agentclient.Client
	}{{"dial", ta.client}, {"kept", kept}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.client.ExecContext(ctx, req, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
