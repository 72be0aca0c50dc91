package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// PTYService is the optional ability of a Service to run terminal
// sessions (sandbox.Service has it); without it the terminal routes and
// events answer unavailable.
type PTYService interface {
	CreatePTY(ctx context.Context, tenant, sandboxID string, req sandbox.PTYRequest) (sandbox.Process, error)
	ListPTYs(ctx context.Context, tenant, sandboxID string) ([]sandbox.Process, error)
	PTYOutput(ctx context.Context, tenant, sandboxID, ptyID string, offset int64, follow bool, onChunk func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error)
	PTYInput(ctx context.Context, tenant, sandboxID, ptyID string, data []byte) (sandbox.Process, error)
	ResizePTY(ctx context.Context, tenant, sandboxID, ptyID string, cols, rows int) (sandbox.Process, error)
	SignalPTY(ctx context.Context, tenant, sandboxID, ptyID, signal string) (sandbox.Process, error)
	KillPTY(ctx context.Context, tenant, sandboxID, ptyID string) (sandbox.Process, error)
}

var _ PTYService = (*sandbox.Service)(nil)

// ptys returns the service's terminal ability.
func (h *Handler) ptys() (PTYService, error) {
	if p, ok := h.svc.(PTYService); ok {
		return p, nil
	}
	return nil, fmt.Errorf("terminal sessions are not supported by this server: %w", errdefs.ErrUnavailable)
}

// wsMaxMessage bounds one WebSocket message a client sends.
const wsMaxMessage = 1 << 20

// ptyControl is a text (JSON) frame of the terminal WebSocket, both ways.
type ptyControl struct {
	Type string `json:"type"`
	// resize (client)
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
	// signal (client)
	Signal string `json:"signal,omitempty"`
	// input (client; text instead of a binary frame)
	Data string `json:"data,omitempty"`
	// ready, offset, exit (server)
	PTY      *sandbox.Process `json:"pty,omitempty"`
	Offset   *int64           `json:"offset,omitempty"`
	Lost     int64            `json:"lost,omitempty"`
	ExitCode *int             `json:"exitCode,omitempty"`
	End      *int64           `json:"end,omitempty"`
	Error    *wireError       `json:"error,omitempty"`
}

// authedKeyInQuery is authed that also takes the key from ?key= (a
// browser cannot set headers on a WebSocket).
func (h *Handler) authedKeyInQuery(fn authedFunc) http.Handler {
	inner := h.authed(fn)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k := r.URL.Query().Get("key"); k != "" && r.Header.Get("Authorization") == "" && r.Header.Get("X-API-Key") == "" {
			r = r.Clone(r.Context())
			r.Header.Set("X-API-Key", k)
		}
		inner.ServeHTTP(w, r)
	})
}

// ptyQuery is what GET .../pty asks for: a new session, or (ptyId) an
// existing one from offset.
func ptyQuery(r *http.Request) (req sandbox.PTYRequest, ptyID string, offset int64, err error) {
	q := r.URL.Query()
	ptyID = q.Get("ptyId")
	num := func(name string) (int64, error) {
		v := q.Get(name)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, invalidf("query %q: %q is not an integer", name, v)
		}
		return n, nil
	}
	if offset, err = num("offset"); err != nil {
		return req, "", 0, err
	}
	if offset < 0 {
		return req, "", 0, invalidf("query \"offset\": must not be negative, got %d", offset)
	}
	if ptyID != "" {
		return req, ptyID, offset, nil
	}
	cols, err := num("cols")
	if err != nil {
		return req, "", 0, err
	}
	rows, err := num("rows")
	if err != nil {
		return req, "", 0, err
	}
	if q.Has("cols") != q.Has("rows") {
		return req, "", 0, invalidf("query: give both cols and rows, or neither")
	}
	if q.Has("cols") {
		if err := sandbox.CheckTermSize(int(cols), int(rows), false); err != nil {
			return req, "", 0, err
		}
	}
	req = sandbox.PTYRequest{Command: q.Get("command"), Args: q["arg"], Cwd: q.Get("cwd"), Cols: int(cols), Rows: int(rows)}
	for _, kv := range q["env"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return req, "", 0, invalidf("query \"env\": %q is not NAME=VALUE", kv)
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	return req, "", 0, nil
}

// ptySocket serves GET /v1/sandboxes/{id}/pty: a terminal session over a
// WebSocket (docs/protocol.md, "Terminal sessions").
func (h *Handler) ptySocket(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	svc, err := h.ptys()
	if err == nil && !websocket.IsWebSocketUpgrade(r) {
		err = invalidf("this endpoint needs a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)")
	}
	var req sandbox.PTYRequest
	var ptyID string
	var offset int64
	if err == nil {
		req, ptyID, offset, err = ptyQuery(r)
	}
	var sess sandbox.Process
	created := false
	if err == nil && ptyID == "" {
		sess, err = svc.CreatePTY(r.Context(), p.Tenant, id, req)
		created = err == nil
	} else if err == nil {
		sess, err = ptyStreams(svc).find(r.Context(), p.Tenant, id, ptyID)
	}
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the client.
		if created {
			_, _ = svc.KillPTY(context.WithoutCancel(r.Context()), p.Tenant, id, sess.ID)
		}
		return
	}
	conn.SetReadLimit(wsMaxMessage)
	t := &ptyWS{h: h, svc: svc, tenant: p.Tenant, sandboxID: id, ptyID: sess.ID, conn: conn}
	t.serve(sess, offset)
}

// ptyWS is one terminal WebSocket.
type ptyWS struct {
	h                        *Handler
	svc                      PTYService
	tenant, sandboxID, ptyID string
	conn                     *websocket.Conn
	writeMu                  sync.Mutex
}

func (t *ptyWS) write(kind int, b []byte) error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	_ = t.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return t.conn.WriteMessage(kind, b)
}

func (t *ptyWS) control(c ptyControl) error {
	b, _ := json.Marshal(c)
	return t.write(websocket.TextMessage, b)
}

// serve sends the ready frame, then the output from offset as binary
// frames while the client's frames are applied, until the session exits
// (exit frame, then close) or the client leaves (the session stays).
func (t *ptyWS) serve(sess sandbox.Process, offset int64) {
	defer t.conn.Close()
	ctx, cancel := context.WithCancel(t.h.ctx)
	defer cancel()
	// Handler.Close ends the connection too.
	stop := context.AfterFunc(ctx, func() { t.conn.Close() })
	defer stop()
	if offset > sess.OutputEnd {
		offset = sess.OutputEnd
	}
	if err := t.control(ptyControl{Type: "ready", PTY: &sess, Offset: &offset}); err != nil {
		return
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		t.readLoop(ctx)
	}()
	next := offset
	end, err := t.svc.PTYOutput(ctx, t.tenant, t.sandboxID, t.ptyID, offset, true, func(c sandbox.ProcessChunk) {
		if c.Lost > 0 || c.Offset != next {
			off := c.Offset
			_ = t.control(ptyControl{Type: "offset", Offset: &off, Lost: c.Lost})
		}
		next = c.Offset + int64(len(c.Data))
		if err := t.write(websocket.BinaryMessage, []byte(c.Data)); err != nil {
			cancel()
		}
	})
	switch {
	case ctx.Err() != nil:
		// The client left (or the server closes): the session stays.
	case err != nil:
		we := toWireError(err)
		_ = t.control(ptyControl{Type: "error", Error: &we})
	default:
		e := end.End
		_ = t.control(ptyControl{Type: "exit", ExitCode: end.Process.ExitCode, End: &e})
		t.writeMu.Lock()
		_ = t.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "exited"), time.Now().Add(time.Second))
		t.writeMu.Unlock()
	}
	cancel()
	t.conn.Close()
	<-readDone
}

// readLoop applies the client's frames: binary is input, text is a JSON
// control (resize, signal, kill, input). A failed control is answered
// with an error frame; the connection stays.
func (t *ptyWS) readLoop(ctx context.Context) {
	for {
		kind, b, err := t.conn.ReadMessage()
		if err != nil {
			return
		}
		if kind == websocket.BinaryMessage {
			_, err = t.svc.PTYInput(ctx, t.tenant, t.sandboxID, t.ptyID, b)
		} else {
			err = t.apply(ctx, b)
		}
		if err != nil && ctx.Err() == nil {
			we := toWireError(err)
			_ = t.control(ptyControl{Type: "error", Error: &we})
		}
	}
}

// apply runs one control frame.
func (t *ptyWS) apply(ctx context.Context, b []byte) error {
	var c ptyControl
	if err := json.Unmarshal(b, &c); err != nil {
		return invalidf("control frame: not a JSON object: %v", err)
	}
	var err error
	switch c.Type {
	case "resize":
		_, err = t.svc.ResizePTY(ctx, t.tenant, t.sandboxID, t.ptyID, c.Cols, c.Rows)
	case "signal":
		_, err = t.svc.SignalPTY(ctx, t.tenant, t.sandboxID, t.ptyID, c.Signal)
	case "kill":
		_, err = t.svc.KillPTY(ctx, t.tenant, t.sandboxID, t.ptyID)
	case "input":
		_, err = t.svc.PTYInput(ctx, t.tenant, t.sandboxID, t.ptyID, []byte(c.Data))
	default:
		err = invalidf("control frame: unknown type %q (want resize, signal, kill or input)", c.Type)
	}
	return err
}
