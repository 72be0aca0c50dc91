package agent_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"

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
