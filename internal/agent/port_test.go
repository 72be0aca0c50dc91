package agent_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agentproto"
)

func TestPortConnectMalformed(t *testing.T) {
	ta := startAgent(t, agent.ReapChildren)
	for _, tt := range []struct{ raw, message string }{
		{`{"op":"port.connect"}`, "port: missing"},
		{`{"op":"port.connect","port":{"port":0}}`, "port 0"},
		{`{"op":"port.connect","port":{"port":70000}}`, "port 70000"},
		{`{"op":"port.connect","port":{"port":"80"}}`, "request"},
	} {
		events := rawRequest(t, ta.sock, []byte(tt.raw+"\n"))
		if len(events) != 1 || events[0].Type != agentproto.EventError || events[0].ErrCode != "invalid_argument" ||
			!strings.Contains(events[0].Message, tt.message) {
			t.Errorf("%s: got %+v, want one invalid_argument naming %q", tt.raw, events, tt.message)
		}
	}
}

// Bytes sent in the same write as the request line reach the port: the
// agent's buffered reader is part of the pipe.
func TestPortConnectRaw(t *testing.T) {
	ta := startAgent(t, agent.ReapChildren)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	defer func() {
		ln.Close()
		<-served
	}()
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	conn, err := net.Dial("unix", ta.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if _, err := fmt.Fprintf(conn, `{"op":"port.connect","port":{"port":%d}}`+"\nearly bytes", port); err != nil {
		t.Fatal(err)
	}
	conn.(*net.UnixConn).CloseWrite()
	br := bufio.NewReader(conn)
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var ev agentproto.Event
	if err := json.Unmarshal(line, &ev); err != nil || ev.Type != agentproto.EventPortConnected {
		t.Fatalf("answer %q (%v), want connected", line, err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "early bytes" {
		t.Fatalf("echo %q (%v), want %q", rest, err, "early bytes")
	}
}
