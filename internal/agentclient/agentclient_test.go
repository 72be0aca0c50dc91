package agentclient_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listenTemp listens on a unix socket in a temporary directory (short
// enough for sun_path, unlike t.TempDir()), removed at the end of the test.
func listenTemp(t testing.TB) (string, net.Listener) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdbx-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "a.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return sock, ln
}

// fakeAgent serves each connection on a unix socket with handle, which gets
// the decoded request and the connection to answer on.
type fakeAgent struct {
	sock string
}

func startFake(t *testing.T, handle func(req agentproto.Request, conn net.Conn, br *bufio.Reader)) *fakeAgent {
	t.Helper()
	sock, ln := listenTemp(t)
	serveConns(t, ln, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		if req, ok := readRequest(t, br); ok {
			handle(req, conn, br)
		}
	})
	return &fakeAgent{sock: sock}
}

// serveConns accepts connections on ln until the end of the test and
// serves each in a goroutine of its own with serve, closing it after. At
// the end the listener and the connections still open are closed and the
// goroutines waited for.
func serveConns(tb testing.TB, ln net.Listener, serve func(conn net.Conn)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				serve(conn)
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// readRequest reads and decodes the client's next request line. It
// reports false at the end of the connection and, as a test error, for a
// line that is not JSON.
func readRequest(tb testing.TB, br *bufio.Reader) (agentproto.Request, bool) {
	var req agentproto.Request
	line, err := br.ReadBytes('\n')
	if err != nil {
		return req, false
	}
	if err := json.Unmarshal(line, &req); err != nil {
		tb.Errorf("client sent invalid JSON %q", line)
		return req, false
	}
	return req, true
}

func (f *fakeAgent) client() *agentclient.Client {
	return agentclient.New(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", f.sock)
	})
}

func send(conn net.Conn, events ...agentproto.Event) {
	for _, ev := range events {
		b, _ := json.Marshal(ev)
		_, _ = conn.Write(append(b, '\n'))
	}
}

func TestPing(t *testing.T) {
	f := startFake(t, func(req agentproto.Request, conn net.Conn, _ *bufio.Reader) {
		if req.Op != agentproto.OpPing {
			send(conn, agentproto.Event{Type: agentproto.EventError, ErrCode: "invalid_argument", Message: "op"})
			return
		}
		send(conn, agentproto.Event{Type: agentproto.EventPong, Version: "v9"})
	})
	v, err := f.client().Ping(t.Context())
	if err != nil || v != "v9" {
		t.Fatalf("Ping = %q, %v", v, err)
	}
}

func TestExecEvents(t *testing.T) {
	huge := strings.Repeat("\x01", agentproto.MaxLine) // sixfold when escaped
	want := []agentproto.Event{
		{Type: agentproto.EventStarted, Pid: 42, TS: 1},
		{Type: agentproto.EventStdout, Data: "out 1", TS: 2},
		{Type: agentproto.EventStderr, Data: "err 1", TS: 3},
		{Type: agentproto.EventStdout, Data: huge, TS: 4},
		{Type: agentproto.EventStdout, Data: "out 2", TS: 5},
	}
	var gotReq agentproto.ExecRequest
	f := startFake(t, func(req agentproto.Request, conn net.Conn, _ *bufio.Reader) {
		if req.Exec != nil {
			gotReq = *req.Exec
		}
		send(conn, want[:3]...)
		send(conn, agentproto.Event{Type: "from-the-future", Data: "skip me"})
		send(conn, want[3:]...)
		send(conn, agentproto.Event{Type: agentproto.EventExit, ExitCode: 3, TS: 6})
		send(conn, agentproto.Event{Type: agentproto.EventStdout, Data: "after the end"})
	})
	req := agentproto.ExecRequest{Args: []string{"a", "b"}, Env: map[string]string{"K": "V"}, Cwd: "/w", TimeoutMs: 5}
	var got []agentproto.Event
	exit, err := f.client().Exec(t.Context(), req, func(ev agentproto.Event) { got = append(got, ev) })
	if err != nil {
		t.Fatal(err)
	}
	if exit.Type != agentproto.EventExit || exit.ExitCode != 3 {
		t.Errorf("exit = %+v", exit)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d = %.80v, want %.80v", i, got[i], want[i])
		}
	}
	if fmt.Sprint(gotReq) != fmt.Sprint(req) {
		t.Errorf("agent got request %+v, want %+v", gotReq, req)
	}
}

func TestExecErrors(t *testing.T) {
	tests := []struct {
		name   string
		answer func(conn net.Conn)
		want   error
		msg    string
	}{
		{"agent error", func(conn net.Conn) {
			send(conn, agentproto.Event{Type: agentproto.EventError, ErrCode: "not_found", Message: `executable "x" not found in PATH`})
		}, errdefs.ErrNotFound, `executable "x" not found in PATH`},
		{"agent error after output", func(conn net.Conn) {
			send(conn, agentproto.Event{Type: agentproto.EventStdout, Data: "x"},
				agentproto.Event{Type: agentproto.EventError, ErrCode: "invalid_argument", Message: "exec.args: empty"})
		}, errdefs.ErrInvalidArgument, "exec.args"},
		{"unknown error code", func(conn net.Conn) {
			send(conn, agentproto.Event{Type: agentproto.EventError, ErrCode: "weird", Message: "m"})
		}, errdefs.ErrInternal, "m"},
		{"closed before the final event", func(conn net.Conn) {
			send(conn, agentproto.Event{Type: agentproto.EventStarted, Pid: 1})
		}, errdefs.ErrUnavailable, "broke"},
		{"closed in the middle of a line", func(conn net.Conn) {
			_, _ = io.WriteString(conn, `{"t":"exit","co`)
		}, errdefs.ErrUnavailable, "broke"},
		{"not JSON", func(conn net.Conn) {
			_, _ = io.WriteString(conn, "garbage\n")
		}, errdefs.ErrInternal, "decode event"},
		{"wrong final event", func(conn net.Conn) {
			send(conn, agentproto.Event{Type: agentproto.EventPong})
		}, errdefs.ErrInternal, "unexpected final event"},
		{"line too long", func(conn net.Conn) {
			_, _ = conn.Write([]byte(strings.Repeat("x", 7*agentproto.MaxLine)))
		}, errdefs.ErrInternal, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, func(_ agentproto.Request, conn net.Conn, _ *bufio.Reader) { tt.answer(conn) })
			_, err := f.client().Exec(t.Context(), agentproto.ExecRequest{Args: []string{"x"}}, nil)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Exec = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}

	t.Run("agent error is an AgentError", func(t *testing.T) {
		f := startFake(t, func(_ agentproto.Request, conn net.Conn, _ *bufio.Reader) {
			send(conn, agentproto.Event{Type: agentproto.EventError, ErrCode: "permission_denied", Message: "no"})
		})
		_, err := f.client().Exec(t.Context(), agentproto.ExecRequest{Args: []string{"x"}}, nil)
		var ae *agentclient.AgentError
		if !errors.As(err, &ae) || ae.Code != "permission_denied" || errdefs.Code(err) != "permission_denied" {
			t.Fatalf("Exec = %v (%T), want an AgentError", err, err)
		}
	})
}

func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	missing := agentclient.New(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(dir, "none.sock"))
	})
	if _, err := missing.Ping(t.Context()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Ping to no agent = %v, want ErrUnavailable", err)
	}
	if _, err := missing.Exec(t.Context(), agentproto.ExecRequest{Args: []string{"x"}}, nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Exec to no agent = %v, want ErrUnavailable", err)
	}
	// A dialer's own kind (the runtime does not know the sandbox) wins.
	gone := agentclient.New(func(ctx context.Context) (net.Conn, error) {
		return nil, fmt.Errorf("sandbox sb-1: %w", errdefs.ErrNotFound)
	})
	_, err := gone.Ping(t.Context())
	if errdefs.Code(err) != "not_found" {
		t.Errorf("Ping with a not-found dialer = %v (code %s), want not_found", err, errdefs.Code(err))
	}
}

// TestContextEnds checks that ending ctx returns at once with the right
// kind and closes the connection, which is how the agent learns to kill
// the command.
func TestContextEnds(t *testing.T) {
	for _, tt := range []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 50*time.Millisecond)
		}, errdefs.ErrTimeout},
		{"cancel", context.WithCancel, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			closed := make(chan struct{})
			f := startFake(t, func(_ agentproto.Request, conn net.Conn, br *bufio.Reader) {
				send(conn, agentproto.Event{Type: agentproto.EventStarted, Pid: 7})
				// Like the agent: a read that returns means the client left.
				_, _ = io.Copy(io.Discard, br)
				close(closed)
			})
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			_, err := f.client().Exec(ctx, agentproto.ExecRequest{Args: []string{"sleep"}}, func(ev agentproto.Event) {
				if ev.Type == agentproto.EventStarted && tt.want == context.Canceled {
					cancel()
				}
			})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Exec = %v, want %v", err, tt.want)
			}
			<-closed
		})
	}

	t.Run("already done", func(t *testing.T) {
		dialed := false
		c := agentclient.New(func(ctx context.Context) (net.Conn, error) {
			dialed = true
			return nil, errors.New("unreachable")
		})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Ping(ctx); !errors.Is(err, context.Canceled) || dialed {
			t.Errorf("Ping = %v (dialed %v), want Canceled without dialing", err, dialed)
		}
	})
}
