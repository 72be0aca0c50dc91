package agentclient_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// countingDialer dials sock and counts the connections it opened.
func countingDialer(sock string, n *atomic.Int64) agentclient.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
}

// openFds returns how many file descriptors this process has open.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitFds waits until this process has want file descriptors open (the
// agent's side of a closed connection closes once it reads EOF) and fails
// t if that does not happen.
func waitFds(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for openFds(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d file descriptors open, want %d as before", openFds(t), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKeepAliveSequential runs many requests one after another through a
// pooled client against a real agent: they share one connection, and
// closing the client leaves no descriptor open on either side.
func TestKeepAliveSequential(t *testing.T) {
	fa := startFileAgent(t, "")
	before := openFds(t)
	var dials atomic.Int64
	c := agentclient.NewPooled(countingDialer(fa.sock, &dials), 4)

	for i := range 30 {
		var out []string
		exit, err := c.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"sh", "-c", fmt.Sprintf("echo run %d; echo err >&2; exit %d", i, i%3)}}, func(ev agentproto.Event) {
			if ev.Type == agentproto.EventStdout {
				out = append(out, ev.Data)
			}
		})
		if err != nil || exit.ExitCode != i%3 || len(out) != 1 || out[0] != fmt.Sprintf("run %d", i) {
			t.Fatalf("run %d: exit %+v, stdout %q, %v", i, exit, out, err)
		}
		if _, err := c.Ping(t.Context()); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if _, err := c.ListContexts(t.Context()); err != nil {
			t.Fatalf("context list %d: %v", i, err)
		}
	}
	// An error event ends a request but keeps the connection.
	if _, err := c.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"no-such-program-xyz"}}, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("exec of a missing program = %v, want not found", err)
	}
	if _, err := c.DeleteContext(t.Context(), "none"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("delete of a missing context = %v, want not found", err)
	}
	if _, err := exec.LookPath("python3"); err == nil {
		if _, err := c.CreateContext(t.Context(), agentproto.ContextCreateRequest{ID: "c1", Language: agentproto.LanguagePython}); err != nil {
			t.Fatalf("create context: %v", err)
		}
		for i := range 20 {
			var out strings.Builder
			done, err := c.ExecContext(t.Context(), agentproto.ContextExecRequest{ID: "c1", Code: fmt.Sprintf("x = %d\nprint(x * 2)", i)}, func(ev agentproto.Event) {
				if ev.Type == agentproto.EventStdout {
					out.WriteString(ev.Data)
				}
			})
			if err != nil || done.TimedOut || out.String() != fmt.Sprint(i*2) {
				t.Fatalf("context run %d: %+v, stdout %q, %v", i, done, out.String(), err)
			}
		}
		if _, err := c.DeleteContext(t.Context(), "c1"); err != nil {
			t.Fatalf("delete context: %v", err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("sequential requests dialed %d connections, want 1", n)
	}
	if n := c.IdleConns(); n != 1 {
		t.Errorf("%d idle connections after sequential requests, want 1", n)
	}
	c.Close()
	if n := c.IdleConns(); n != 0 {
		t.Errorf("%d idle connections after Close, want 0", n)
	}
	waitFds(t, before)

	// A closed client still works, a connection per request.
	if _, err := c.Ping(t.Context()); err != nil {
		t.Fatalf("ping after Close: %v", err)
	}
	if c.IdleConns() != 0 || dials.Load() != 2 {
		t.Errorf("after Close: %d idle, %d dials; want 0 idle, 2 dials", c.IdleConns(), dials.Load())
	}
	waitFds(t, before)
}

// TestKeepAliveConcurrent checks that requests in flight at the same time
// never share a connection: four commands that each wait until all four
// have started can only finish on four connections.
func TestKeepAliveConcurrent(t *testing.T) {
	fa := startFileAgent(t, "")
	before := openFds(t)
	var dials atomic.Int64
	c := agentclient.NewPooled(countingDialer(fa.sock, &dials), 2)
	dir := t.TempDir()
	const n = 4
	script := fmt.Sprintf(`touch %s/$0; while [ "$(ls %s | wc -l)" -lt %d ]; do sleep 0.01; done; echo ok`, dir, dir, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			exit, err := c.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"sh", "-c", script, fmt.Sprint(i)}, TimeoutMs: 60_000}, nil)
			if err != nil || exit.ExitCode != 0 {
				t.Errorf("concurrent run %d: %+v, %v", i, exit, err)
			}
		})
	}
	wg.Wait()
	if got := dials.Load(); got != n {
		t.Errorf("%d concurrent requests dialed %d connections, want %d", n, got, n)
	}
	// The pool keeps at most 2 of them.
	if got := c.IdleConns(); got != 2 {
		t.Errorf("%d idle connections, want the bound 2", got)
	}
	for range 3 {
		if _, err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := dials.Load(); got != n {
		t.Errorf("pings after the runs dialed again (%d dials), want the idle connections reused", got)
	}
	c.Close()
	waitFds(t, before)
}

// keptFake is a fake agent that serves requests on a connection in a loop
// with serve, which returns whether the connection stays open.
func keptFake(t *testing.T, serve func(n int, req agentproto.Request, conn net.Conn) bool) string {
	t.Helper()
	sock, ln := listenTemp(t)
	var served atomic.Int64
	serveConns(t, ln, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			req, ok := readRequest(t, br)
			if !ok || !serve(int(served.Add(1)), req, conn) {
				return
			}
		}
	})
	return sock
}

// TestKeepAliveBroken checks the failure cases of a kept connection: a
// connection that breaks during a request fails it with a clear error and
// the next request dials anew; a kept connection the agent closed while
// it idled is replaced without the caller noticing; an agent without
// keep-alive gets a connection per request.
func TestKeepAliveBroken(t *testing.T) {
	t.Run("mid-request", func(t *testing.T) {
		sock := keptFake(t, func(n int, req agentproto.Request, conn net.Conn) bool {
			if !req.KeepAlive {
				t.Errorf("request %d of a pooled client without keepAlive", n)
			}
			if n == 2 {
				// Breaks after the command started.
				send(conn, agentproto.Event{Type: agentproto.EventStarted, Pid: 9})
				return false
			}
			send(conn, agentproto.Event{Type: agentproto.EventExit, KeepAlive: true})
			return true
		})
		var dials atomic.Int64
		c := agentclient.NewPooled(countingDialer(sock, &dials), 4)
		defer c.Close()
		if _, err := c.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"a"}}, nil); err != nil {
			t.Fatal(err)
		}
		_, err := c.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"b"}}, nil)
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "broke before the final event") {
			t.Fatalf("request on a connection that broke = %v, want unavailable naming the broken connection", err)
		}
		if c.IdleConns() != 0 {
			t.Errorf("the broken connection went back to the pool")
		}
		if _, err := c.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"c"}}, nil); err != nil {
			t.Fatalf("request after a broken connection: %v", err)
		}
		if got := dials.Load(); got != 2 {
			t.Errorf("%d dials, want 2 (the request after the break dials anew)", got)
		}
	})

	t.Run("closed while idle", func(t *testing.T) {
		sock := keptFake(t, func(n int, req agentproto.Request, conn net.Conn) bool {
			// Says keep-alive, then closes: like an agent that restarted.
			send(conn, agentproto.Event{Type: agentproto.EventPong, Version: fmt.Sprint(n), KeepAlive: true})
			return n != 1
		})
		var dials atomic.Int64
		c := agentclient.NewPooled(countingDialer(sock, &dials), 4)
		defer c.Close()
		if _, err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Let the fake's close arrive.
		for c.IdleConns() != 1 {
			time.Sleep(time.Millisecond)
		}
		v, err := c.Ping(t.Context())
		if err != nil || v != "2" {
			t.Fatalf("ping after the idle connection closed = %q, %v; want the request sent again on a new connection", v, err)
		}
		if got := dials.Load(); got != 2 {
			t.Errorf("%d dials, want 2", got)
		}
	})

	t.Run("agent without keep-alive", func(t *testing.T) {
		f := startFake(t, func(req agentproto.Request, conn net.Conn, _ *bufio.Reader) {
			send(conn, agentproto.Event{Type: agentproto.EventPong, Version: "old"})
		})
		var dials atomic.Int64
		c := agentclient.NewPooled(countingDialer(f.sock, &dials), 4)
		defer c.Close()
		for range 3 {
			if v, err := c.Ping(t.Context()); err != nil || v != "old" {
				t.Fatalf("ping an old agent = %q, %v", v, err)
			}
		}
		if dials.Load() != 3 || c.IdleConns() != 0 {
			t.Errorf("old agent: %d dials, %d idle; want 3 dials, none kept", dials.Load(), c.IdleConns())
		}
	})

	t.Run("per-request client", func(t *testing.T) {
		sock := keptFake(t, func(n int, req agentproto.Request, conn net.Conn) bool {
			if req.KeepAlive {
				t.Errorf("a client made by New asked for keep-alive")
			}
			send(conn, agentproto.Event{Type: agentproto.EventPong})
			return false
		})
		var dials atomic.Int64
		c := agentclient.New(countingDialer(sock, &dials))
		for range 2 {
			if _, err := c.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if dials.Load() != 2 {
			t.Errorf("%d dials, want 2", dials.Load())
		}
	})
}

// TestKeepAliveIdleTimeout checks that pooled connections are closed once
// they idled for the idle timeout, and that the client dials again after.
func TestKeepAliveIdleTimeout(t *testing.T) {
	fa := startFileAgent(t, "")
	var dials atomic.Int64
	c := agentclient.NewPooled(countingDialer(fa.sock, &dials), 4)
	defer c.Close()
	// Wide enough that a loaded host still sees the two connections
	// expire apart.
	c.SetIdleTimeout(time.Second)

	// Two requests at once leave two idle connections.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := c.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"sleep", "0.2"}}, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := c.IdleConns(); n != 2 {
		t.Fatalf("%d idle connections after two concurrent requests, want 2", n)
	}
	// One is used again at 500 ms: it idles anew, the other one goes.
	time.Sleep(500 * time.Millisecond)
	if _, err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.IdleConns() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.IdleConns(); n != 1 {
		t.Fatalf("%d idle connections after the first one's timeout, want 1", n)
	}
	for c.IdleConns() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.IdleConns(); n != 0 {
		t.Fatalf("%d idle connections after the idle timeout, want 0", n)
	}
	before := dials.Load()
	if _, err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if dials.Load() != before+1 {
		t.Errorf("a request after the pool emptied dialed %d times, want 1", dials.Load()-before)
	}
}
