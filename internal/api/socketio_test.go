package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// pollClient speaks Engine.IO v4 long-polling and Socket.IO v5 packets by
// hand, so these tests control exactly when the client reads. (The
// official client is exercised by test/e2e/socketio.)
type pollClient struct {
	t    *testing.T
	base string
	sid  string
	hc   *http.Client
	// pending holds Socket.IO packets received but not consumed yet.
	pending []string
	nextAck int
}

func dialPolling(t *testing.T, e *env) *pollClient {
	t.Helper()
	c := &pollClient{t: t, base: e.srv.URL + "/socket.io/?EIO=4&transport=polling", hc: e.srv.Client()}
	body := c.get()
	if !strings.HasPrefix(body, "0") {
		t.Fatalf("open packet %q", body)
	}
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil {
		t.Fatalf("open packet %q: %v", body, err)
	}
	c.sid = open.SID
	t.Cleanup(func() { c.closeQuietly() })
	return c
}

func (c *pollClient) url() string {
	if c.sid == "" {
		return c.base
	}
	return c.base + "&sid=" + c.sid
}

func (c *pollClient) get() string {
	c.t.Helper()
	resp, err := c.hc.Get(c.url())
	if err != nil {
		c.t.Fatalf("poll: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("poll: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// send posts Engine.IO packets.
func (c *pollClient) send(packets ...string) {
	c.t.Helper()
	resp, err := c.hc.Post(c.url(), "text/plain;charset=UTF-8", strings.NewReader(strings.Join(packets, "\x1e")))
	if err != nil {
		c.t.Fatalf("send: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("send: %d %s", resp.StatusCode, b)
	}
}

func (c *pollClient) closeQuietly() {
	if c.sid == "" {
		return
	}
	resp, err := c.hc.Post(c.url(), "text/plain;charset=UTF-8", strings.NewReader("1"))
	if err == nil {
		resp.Body.Close()
	}
	c.sid = ""
}

// next returns the next Socket.IO packet (without the Engine.IO "4"),
// polling as needed and answering pings.
func (c *pollClient) next() string {
	c.t.Helper()
	for len(c.pending) == 0 {
		for p := range strings.SplitSeq(c.get(), "\x1e") {
			switch {
			case p == "2":
				c.send("3")
			case strings.HasPrefix(p, "4"):
				c.pending = append(c.pending, p[1:])
			case p == "6": // noop
			default:
				c.t.Fatalf("unexpected Engine.IO packet %q", p)
			}
		}
	}
	p := c.pending[0]
	c.pending = c.pending[1:]
	return p
}

// connect sends the namespace CONNECT with auth and returns the answer.
func (c *pollClient) connect(auth string) string {
	c.t.Helper()
	c.send("40" + auth)
	return c.next()
}

// emit sends an event with an ack id and returns the id.
func (c *pollClient) emit(event string, payload any) int {
	c.t.Helper()
	id := c.nextAck
	c.nextAck++
	b, err := json.Marshal([]any{event, payload})
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("42" + strconv.Itoa(id) + string(b))
	return id
}

// ack is a decoded acknowledgement.
type ack struct {
	OK    bool           `json:"ok"`
	Data  map[string]any `json:"data"`
	Error *wireError     `json:"error"`
}

// awaitAck reads packets until the ack of id, returning the
// stream:output events seen before it (any other event fails the test).
func (c *pollClient) awaitAck(id int) (ack, []streamOutputJSON) {
	c.t.Helper()
	a, events := c.awaitAckEvents(id)
	var outs []streamOutputJSON
	for _, ev := range events {
		var out streamOutputJSON
		if ev.Name != "stream:output" || json.Unmarshal([]byte(jsonOf(ev.Data)), &out) != nil {
			c.t.Fatalf("unexpected event %s %v", ev.Name, ev.Data)
		}
		outs = append(outs, out)
	}
	return a, outs
}

// call emits event and returns its ack; an event streamed before the ack
// fails the test.
func (c *pollClient) call(event string, payload map[string]any) ack {
	c.t.Helper()
	a, events := c.awaitAckEvents(c.emit(event, payload))
	if len(events) != 0 {
		c.t.Fatalf("%s streamed %v", event, events)
	}
	return a
}

func TestSocketHandshake(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, auth string
		ok         bool
	}{
		{"valid key", `{"apiKey":"` + keyA + `"}`, true},
		{"unknown key", `{"apiKey":"nope"}`, false},
		{"no auth", ``, false},
		{"empty key", `{"apiKey":""}`, false},
		{"key not a string", `{"apiKey":5}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialPolling(t, e)
			got := c.connect(tt.auth)
			if tt.ok {
				if !strings.HasPrefix(got, `0{"sid":`) {
					t.Fatalf("connect answer %q", got)
				}
				return
			}
			if !strings.HasPrefix(got, "4") {
				t.Fatalf("connect answer %q, want CONNECT_ERROR", got)
			}
			var ce struct {
				Message string    `json:"message"`
				Data    wireError `json:"data"`
			}
			if err := json.Unmarshal([]byte(got[1:]), &ce); err != nil {
				t.Fatal(err)
			}
			if ce.Data.Code != "unauthenticated" || ce.Message == "" || ce.Data.Message != ce.Message {
				t.Fatalf("connect error %+v", ce)
			}
		})
	}
}

func TestSocketOperations(t *testing.T) {
	e := newEnv(t)
	c := dialPolling(t, e)
	c.connect(`{"apiKey":"` + keyA + `"}`)

	a, _ := c.awaitAck(c.emit("sandbox:create", map[string]any{"templateId": "python-3-11", "name": "n"}))
	if !a.OK {
		t.Fatalf("create: %+v", a.Error)
	}
	id := a.Data["sandbox"].(map[string]any)["id"].(string)

	a, events := c.awaitAck(c.emit("terminal:run", map[string]any{
		"sandboxId": id, "streamId": "s-1", "command": "echo one; echo two; echo three >&2",
	}))
	if !a.OK || a.Data["exitCode"] != 0.0 {
		t.Fatalf("run: %+v", a)
	}
	var stdout []string
	for _, ev := range events {
		if ev.StreamID != "s-1" || ev.Timestamp == 0 {
			t.Errorf("event %+v", ev)
		}
		if ev.Stream == "stdout" {
			stdout = append(stdout, ev.Line)
		}
	}
	if len(events) != 3 || strings.Join(stdout, ",") != "one,two" {
		t.Fatalf("events %+v", events)
	}

	// Errors, as acks.
	tests := []struct {
		event   string
		payload any
		code    string
		inMsg   string
	}{
		{"sandbox:get", map[string]any{"sandboxId": "sb-none"}, "not_found", "sb-none"},
		{"sandbox:get", map[string]any{}, "invalid_argument", "sandboxId"},
		{"sandbox:get", map[string]any{"sandboxId": id, "x": 1}, "invalid_argument", `"x"`},
		{"sandbox:get", "sb-1", "invalid_argument", "payload"},
		{"sandbox:list", map[string]any{"all": true}, "invalid_argument", `"all"`},
		{"sandbox:create", map[string]any{"templateId": []any{}}, "invalid_argument", "templateId"},
		{"template:list", map[string]any{"page": "1"}, "invalid_argument", "page"},
		{"template:get", map[string]any{}, "invalid_argument", "templateId"},
		{"template:get", map[string]any{"templateId": "tpl-none"}, "not_found", "tpl-none"},
		{"template:delete", map[string]any{}, "invalid_argument", `"templateId": required`},
		{"template:logs", map[string]any{}, "invalid_argument", `"templateId": required`},
		{"terminal:run", map[string]any{"sandboxId": id, "streamId": "", "command": "true"}, "invalid_argument", "streamId"},
		{"terminal:run", map[string]any{"sandboxId": id, "streamId": strings.Repeat("é", 129), "command": "true"}, "invalid_argument", "streamId"},
		{"terminal:run", map[string]any{"sandboxId": id, "streamId": 7, "command": "true"}, "invalid_argument", "streamId"},
		{"terminal:run", map[string]any{"command": "true"}, "invalid_argument", "sandboxId"},
		{"sandbox:launch", map[string]any{}, "invalid_argument", "sandbox:launch"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", i, tt.event), func(t *testing.T) {
			a, _ := c.awaitAck(c.emit(tt.event, tt.payload))
			if a.OK || a.Error == nil || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.inMsg) {
				t.Fatalf("ack %+v %+v, want %s naming %s", a, a.Error, tt.code, tt.inMsg)
			}
		})
	}

	// A 128-character (not byte) streamId is fine.
	a, _ = c.awaitAck(c.emit("terminal:run", map[string]any{"sandboxId": id, "streamId": strings.Repeat("é", 128), "command": "true"}))
	if !a.OK {
		t.Fatalf("128-char streamId: %+v", a.Error)
	}

	a, _ = c.awaitAck(c.emit("sandbox:delete", map[string]any{"sandboxId": id}))
	if !a.OK || len(a.Data) != 0 {
		t.Fatalf("delete: %+v", a)
	}
}

func TestSocketRateLimitedAck(t *testing.T) {
	e := newEnv(t)
	e.svc.Fail = func(op, id string) error {
		return &errdefs.RateLimitError{Msg: "too many requests", RetryAfter: 250 * time.Millisecond}
	}
	c := dialPolling(t, e)
	c.connect(`{"apiKey":"` + keyA + `"}`)
	a, _ := c.awaitAck(c.emit("sandbox:list", nil))
	if a.OK || a.Error.Code != "rate_limited" || a.Error.RetryAfterMs == nil || *a.Error.RetryAfterMs != 250 {
		t.Fatalf("ack %+v", a.Error)
	}
}

func TestSocketDuplicateStreamID(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.svc.Run = func(ctx context.Context, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
		onOutput(out("stdout", req.Command))
		select {
		case <-release:
		case <-ctx.Done():
		}
		return sandbox.CommandResult{}, nil
	}
	c := dialPolling(t, e)
	c.connect(`{"apiKey":"` + keyA + `"}`)
	id := createSandbox(t, e)

	first := c.emit("terminal:run", map[string]any{"sandboxId": id, "streamId": "dup", "command": "first"})
	if p := c.next(); !strings.Contains(p, `"line":"first"`) {
		t.Fatalf("packet %q", p) // the first command is running
	}
	a, _ := c.awaitAck(c.emit("terminal:run", map[string]any{"sandboxId": id, "streamId": "dup", "command": "second"}))
	if a.OK || a.Error.Code != "invalid_argument" || !strings.Contains(a.Error.Message, "dup") {
		t.Fatalf("duplicate streamId: %+v", a.Error)
	}
	close(release)
	if a, _ := c.awaitAck(first); !a.OK {
		t.Fatalf("first: %+v", a.Error)
	}
}

// blockingRun is a Run hook that emits one line and waits for ctx to end.
func blockingRun(started, cancelled chan struct{}) func(context.Context, sandbox.CommandRequest, func(sandbox.Output)) (sandbox.CommandResult, error) {
	return func(ctx context.Context, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
		onOutput(out("stdout", "started"))
		close(started)
		<-ctx.Done()
		close(cancelled)
		return sandbox.CommandResult{}, ctx.Err()
	}
}

func TestSocketDisconnectCancelsCommand(t *testing.T) {
	for _, how := range []string{"namespace disconnect", "transport close"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			started, cancelled := make(chan struct{}), make(chan struct{})
			e.svc.Run = blockingRun(started, cancelled)
			c := dialPolling(t, e)
			c.connect(`{"apiKey":"` + keyA + `"}`)
			c.emit("terminal:run", map[string]any{"sandboxId": createSandbox(t, e), "streamId": "s", "command": "sleep 1000"})
			<-started
			if p := c.next(); !strings.Contains(p, `"line":"started"`) {
				t.Fatalf("packet %q", p)
			}
			if how == "namespace disconnect" {
				c.send("41")
			} else {
				c.closeQuietly()
			}
			<-cancelled
		})
	}
}

func TestCloseCancelsAndWaits(t *testing.T) {
	e := newEnv(t)
	started, cancelled := make(chan struct{}), make(chan struct{})
	e.svc.Run = blockingRun(started, cancelled)
	c := dialPolling(t, e)
	c.connect(`{"apiKey":"` + keyA + `"}`)
	c.emit("terminal:run", map[string]any{"sandboxId": createSandbox(t, e), "command": "sleep 1000"})
	<-started
	if err := e.h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	default:
		t.Fatal("Close returned before the operation ended")
	}
	if err := e.h.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

// TestSocketBackpressure streams far more output than the send window
// holds to a client that reads only when the test says so.
func TestSocketBackpressure(t *testing.T) {
	const window, lines = 4096, 400
	e := newEnvLimits(t, Limits{MaxBodyBytes: 1 << 20, StreamWindowBytes: window})
	var emitted atomic.Int64
	e.svc.Run = func(ctx context.Context, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
		for i := range lines {
			onOutput(out("stdout", fmt.Sprintf("%03d %s", i, strings.Repeat("x", 96))))
			emitted.Add(1)
		}
		return sandbox.CommandResult{}, nil
	}
	c := dialPolling(t, e)
	c.connect(`{"apiKey":"` + keyA + `"}`)
	id := c.emit("terminal:run", map[string]any{"sandboxId": createSandbox(t, e), "streamId": "bp", "command": "x"})

	// Without reads the command gets at most a window's worth of lines
	// (each event is ~190 bytes). Once it is well under way, give it ample
	// chance to overrun.
	maxWithoutReads := int64(window/150 + 2)
	for emitted.Load() < window/300 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := emitted.Load(); n > maxWithoutReads {
		t.Fatalf("%d lines emitted to a client that reads nothing (window allows ~%d)", n, maxWithoutReads)
	}

	a, events := c.awaitAck(id)
	if !a.OK || len(events) != lines {
		t.Fatalf("ack %+v after %d events", a, len(events))
	}
	for i, ev := range events {
		if !strings.HasPrefix(ev.Line, fmt.Sprintf("%03d ", i)) {
			t.Fatalf("event %d is %q", i, ev.Line)
		}
	}
}

func TestSendWindow(t *testing.T) {
	conn := types.NewEventEmitter()
	w := newSendWindow(conn, 10)
	pkt := func(s string) *packet.Packet { return &packet.Packet{Data: types.NewStringBufferString(s)} }
	done, cancel := context.WithCancel(t.Context())
	cancel()

	p1, p2 := pkt("12345"), pkt("1234")
	conn.Emit("packetCreate", p1) // 6 bytes with framing
	if err := w.wait(done); err != nil {
		t.Fatalf("below the limit: %v", err)
	}
	conn.Emit("packetCreate", p2) // 11 bytes
	if err := w.wait(done); err == nil {
		t.Fatal("at the limit, wait returned without a flush")
	}

	released := make(chan error, 1)
	go func() { released <- w.wait(t.Context()) }()
	conn.Emit("flush", []*packet.Packet{p1, pkt("unknown")}) // 5 bytes left
	if err := <-released; err != nil {
		t.Fatalf("after a flush: %v", err)
	}
	if got := w.buffered(); got != 5 {
		t.Fatalf("buffered %d, want 5", got)
	}
	conn.Emit("flush", []*packet.Packet{p2})
	if got := w.buffered(); got != 0 {
		t.Fatalf("buffered %d, want 0", got)
	}
}

func TestConnectGate(t *testing.T) {
	g := &connectGate{closed: make(chan struct{})}
	msg := func(s string) *packet.Packet {
		return &packet.Packet{Type: packet.MESSAGE, Data: types.NewStringBufferString(s)}
	}
	// Other packets leave the gate open.
	g.onPacketCreate(msg(`2["stream:output",{}]`))
	g.onPacketCreate(msg(`4{"message":"no"}`))
	g.onPacketCreate(&packet.Packet{Type: packet.OPEN, Data: types.NewStringBufferString(`{"sid":"x"}`)})
	g.hold() // returns at once

	connectAnswer := msg(`0{"sid":"abc"}`)
	g.onPacketCreate(connectAnswer)
	if connectAnswer.Data.(types.BufferInterface).Len() != len(`0{"sid":"abc"}`) {
		t.Fatal("the gate consumed the packet's data")
	}
	held := make(chan struct{})
	go func() {
		g.hold()
		close(held)
	}()
	select {
	case <-held:
		t.Fatal("data passed before the socket was registered")
	default:
	}
	g.open()
	<-held
	g.hold() // open again
}
