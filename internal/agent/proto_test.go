package agent_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agentproto"
)

// rawRequest sends raw bytes on a new connection and returns every event
// the agent sent before closing it.
func rawRequest(t *testing.T, sock string, raw []byte) []agentproto.Event {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The agent may answer (and close) before reading all of an oversized
	// request, so write concurrently with reading.
	go func() { _, _ = conn.Write(raw) }()
	var events []agentproto.Event
	sc := bufio.NewScanner(conn)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev agentproto.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("agent sent a line that is not JSON: %q", sc.Text())
		}
		events = append(events, ev)
	}
	return events
}

func TestMalformedRequests(t *testing.T) {
	ta := startAgent(t, agent.ReapChildren)
	long := `{"op":"exec","exec":{"args":["echo","` + strings.Repeat("x", agentproto.MaxRequest) + `"]}}` + "\n"
	tests := []struct {
		name    string
		raw     string
		message string // the error must name this field
	}{
		{"bad JSON", "{not json\n", "request"},
		{"JSON of the wrong shape", `{"op":["exec"]}` + "\n", "request"},
		{"unknown op", `{"op":"launch"}` + "\n", `op: unknown op "launch"`},
		{"missing op", `{}` + "\n", "op"},
		{"exec without exec", `{"op":"exec"}` + "\n", "exec"},
		{"empty args", `{"op":"exec","exec":{"args":[]}}` + "\n", "exec.args"},
		{"env name with =", `{"op":"exec","exec":{"args":["true"],"env":{"A=B":"1"}}}` + "\n", "exec.env"},
		{"env name with NUL", `{"op":"exec","exec":{"args":["true"],"env":{"A\u0000":"1"}}}` + "\n", "exec.env"},
		{"args of the wrong type", `{"op":"exec","exec":{"args":"true"}}` + "\n", "request"},
		{"request too long", long, "request: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := rawRequest(t, ta.sock, []byte(tt.raw))
			if len(events) != 1 {
				t.Fatalf("got events %+v, want one error", events)
			}
			ev := events[0]
			if ev.Type != agentproto.EventError || ev.ErrCode != "invalid_argument" || !strings.Contains(ev.Message, tt.message) {
				t.Errorf("got %+v, want invalid_argument naming %q", ev, tt.message)
			}
		})
	}

	t.Run("ping without trailing newline", func(t *testing.T) {
		conn, err := net.Dial("unix", ta.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, `{"op":"ping"}`); err != nil {
			t.Fatal(err)
		}
		conn.(*net.UnixConn).CloseWrite()
		b, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		var ev agentproto.Event
		if err := json.Unmarshal(b, &ev); err != nil || ev.Type != agentproto.EventPong || ev.Version != "test-1" {
			t.Errorf("answer %q (%v), want pong", b, err)
		}
	})

	t.Run("silent client", func(t *testing.T) {
		conn, err := net.Dial("unix", ta.sock)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		// The agent must still serve the next request.
		if _, err := ta.client.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestKeepAliveConnection speaks the protocol by hand on one connection:
// requests that ask for keep-alive get a final event marked so and the
// connection stays open for the next request; a request without it, or
// of an op that ends with its connection, is answered and the connection
// closed.
func TestKeepAliveConnection(t *testing.T) {
	ta := startAgent(t, agent.ReapChildren)
	for _, last := range []string{
		`{"op":"ping"}`,
		`{"op":"file.exists","keepAlive":true,"file":{"path":"/"}}`,
	} {
		conn, err := net.Dial("unix", ta.sock)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		// exchange sends one request line and returns the events up to
		// and including the final one.
		exchange := func(req string, final string) []agentproto.Event {
			t.Helper()
			if _, err := conn.Write([]byte(req + "\n")); err != nil {
				t.Fatalf("send %s: %v", req, err)
			}
			var evs []agentproto.Event
			for {
				line, err := br.ReadBytes('\n')
				if err != nil {
					t.Fatalf("after %s: read: %v (events so far %+v)", req, err, evs)
				}
				var ev agentproto.Event
				if err := json.Unmarshal(line, &ev); err != nil {
					t.Fatalf("agent sent a line that is not JSON: %q", line)
				}
				evs = append(evs, ev)
				if ev.Type == final || ev.Type == agentproto.EventError {
					return evs
				}
			}
		}
		for i := range 3 {
			evs := exchange(`{"op":"ping","keepAlive":true}`, agentproto.EventPong)
			if len(evs) != 1 || !evs[0].KeepAlive {
				t.Fatalf("ping %d on a kept connection = %+v, want a pong marked keepAlive", i, evs)
			}
			evs = exchange(`{"op":"exec","keepAlive":true,"exec":{"args":["/bin/echo","hi"]}}`, agentproto.EventExit)
			exit := evs[len(evs)-1]
			if len(evs) != 3 || evs[1].Data != "hi" || exit.Type != agentproto.EventExit || !exit.KeepAlive {
				t.Fatalf("exec %d on a kept connection = %+v, want started, stdout hi, exit marked keepAlive", i, evs)
			}
			evs = exchange(`{"op":"exec","keepAlive":true,"exec":{"args":["/no/such/program"]}}`, agentproto.EventExit)
			if len(evs) != 1 || evs[0].Type != agentproto.EventError || !evs[0].KeepAlive {
				t.Fatalf("failed exec %d on a kept connection = %+v, want an error marked keepAlive", i, evs)
			}
		}
		final := agentproto.EventPong
		if strings.Contains(last, "file.exists") {
			final = agentproto.EventFileExists
		}
		evs := exchange(last, final)
		if len(evs) != 1 || evs[0].Type != final || evs[0].KeepAlive {
			t.Fatalf("%s = %+v, want a %s not marked keepAlive", last, evs, final)
		}
		if extra, err := br.ReadBytes('\n'); err != io.EOF {
			t.Fatalf("after %s the agent sent %q, %v; want the connection closed", last, extra, err)
		}
		conn.Close()
	}
}

// TestKeepAliveClientLeaves checks that closing a kept-alive connection
// during a request still cancels it: the command's process goes away.
func TestKeepAliveClientLeaves(t *testing.T) {
	ta := startAgent(t, agent.ReapChildren)
	conn, err := net.Dial("unix", ta.sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(`{"op":"exec","keepAlive":true,"exec":{"args":["/bin/sleep","60"]}}` + "\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	var started agentproto.Event
	if err != nil || json.Unmarshal(line, &started) != nil || started.Pid == 0 {
		t.Fatalf("first event = %q, %v; want started with a pid", line, err)
	}
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(started.Pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after its kept-alive connection closed", started.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
