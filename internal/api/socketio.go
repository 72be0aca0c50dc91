package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// authTimeout bounds the API key check of a Socket.IO handshake.
const authTimeout = 10 * time.Second

// maxStreamIDLen is the longest client-chosen id (streamId, watchId), in
// characters.
const maxStreamIDLen = 128

// checkClientID checks a client-chosen id, the payload's field named field.
func checkClientID(field, id string) error {
	if n := utf8.RuneCountInString(id); n < 1 || n > maxStreamIDLen {
		return invalidf("field %q: must be 1-%d characters, got %d", field, maxStreamIDLen, n)
	}
	return nil
}

// socketServer is the Socket.IO v4 transport.
//
// The library runs one socket's event handlers one at a time, so every
// request runs in its own goroutine (owned by the Handler) and acks when it
// is done; requests of one socket therefore run concurrently. When a socket
// disconnects, its requests' contexts are cancelled (a running command is
// killed, a creation is abandoned) and their acks are dropped.
type socketServer struct {
	h       *Handler
	io      *socket.Server
	handler http.Handler
	gates   connectGates

	mu    sync.Mutex
	byKey map[string]map[*session]bool // open sessions per API key id
}

func (s *socketServer) track(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey == nil {
		s.byKey = map[string]map[*session]bool{}
	}
	if s.byKey[sess.principal.KeyID] == nil {
		s.byKey[sess.principal.KeyID] = map[*session]bool{}
	}
	s.byKey[sess.principal.KeyID][sess] = true
}

func (s *socketServer) untrack(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byKey[sess.principal.KeyID], sess)
	if len(s.byKey[sess.principal.KeyID]) == 0 {
		delete(s.byKey, sess.principal.KeyID)
	}
}

func (s *socketServer) disconnectKey(keyID string) {
	s.mu.Lock()
	var open []*session
	for sess := range s.byKey[keyID] {
		open = append(open, sess)
	}
	s.mu.Unlock()
	for _, sess := range open {
		sess.cancel()
		sess.sock.Disconnect(true)
	}
}

func newSocketServer(h *Handler) *socketServer {
	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetMaxHttpBufferSize(h.limits.MaxMessageBytes)
	opts.SetParser(newAttachmentParser())
	s := &socketServer{h: h, io: socket.NewServer(nil, opts)}
	s.io.Use(s.authenticate)
	_ = s.io.On("connection", s.onConnection)
	s.handler = s.io.ServeHandler(nil)
	// After the library's own listener, which sets the connection up.
	_ = s.io.Engine().On("connection", s.gates.onEngineConnection)
	return s
}

// close disconnects every client.
func (s *socketServer) close() {
	s.io.Close(nil)
}

// authenticate is the handshake middleware: auth.apiKey must be a valid
// key. A refusal reaches the client as connect_error with
// err.data = {code, message}.
func (s *socketServer) authenticate(sock *socket.Socket, next func(*socket.ExtendedError)) {
	var p auth.Principal
	var err error
	switch key := sock.Handshake().Auth["apiKey"].(type) {
	case string:
		ctx, cancel := context.WithTimeout(s.h.ctx, authTimeout)
		p, err = s.h.authenticate(ctx, key)
		cancel()
	case nil:
		err = errMissingKey
	default:
		err = fmt.Errorf("handshake auth.apiKey: expected a string: %w", errdefs.ErrUnauthenticated)
	}
	if err != nil {
		s.h.logError("socket.io handshake", "", err)
		we := toWireError(err)
		data := map[string]any{"code": we.Code, "message": we.Message}
		if we.RetryAfterMs != nil {
			data["retryAfterMs"] = *we.RetryAfterMs
		}
		next(socket.NewExtendedError(we.Message, data))
		return
	}
	sock.SetData(p)
	next(nil)
}

// operation serves one request event; its result is the ack's data.
type operation func(ctx context.Context, c *call) (any, error)

// call is one request in flight.
type call struct {
	payload []byte // the payload object as JSON
	// data is the binary "data" field of a file:upload:chunk payload.
	data []byte
	// sandboxID is set by the operation once known, for logs.
	sandboxID string
}

// session is one connected socket.
type session struct {
	h         *Handler
	sock      *socket.Socket
	principal auth.Principal
	window    *sendWindow

	// ctx is cancelled when the socket disconnects or the Handler closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	streams  map[string]bool               // streamIds of commands in flight
	attached map[string]*follower          // output followers (socketio_procs.go)
	watches  map[string]context.CancelFunc // directory watches by watchId (socketio_watch.go)

	xfer transfers // chunked uploads and downloads (socketio_transfer.go)
}

func (s *socketServer) onConnection(args ...any) {
	sock, ok := args[0].(*socket.Socket)
	if !ok {
		return
	}
	p, _ := sock.Data().(auth.Principal)
	sess := &session{
		h:         s.h,
		sock:      sock,
		principal: p,
		window:    newSendWindow(sock.Conn(), s.h.limits.StreamWindowBytes),
		streams:   map[string]bool{},
	}
	sess.ctx, sess.cancel = context.WithCancel(s.h.ctx)
	s.track(sess)
	_ = sock.On("disconnect", func(...any) {
		sess.cancel()
		s.untrack(sess)
		sess.xfer.closeAll()
	})

	ops := sess.operations()
	for event, op := range ops {
		_ = sock.On(event, func(args ...any) { sess.dispatch(event, op, args) })
	}
	sock.OnAny(func(args ...any) {
		event, _ := args[0].(string)
		if _, known := ops[event]; known {
			return
		}
		if ack, _ := splitAck(args[1:]); ack != nil {
			replyError(ack, invalidf("event %q: unknown", event))
		}
	})
	// The library has recorded the socket by now: let its packets in.
	s.gates.open(sock.Conn())
}

func (sess *session) operations() map[string]operation {
	return map[string]operation{
		"sandbox:create":  sess.createSandbox,
		"sandbox:list":    sess.listSandboxes,
		"sandbox:get":     sess.getSandbox,
		"sandbox:delete":  sess.deleteSandbox,
		"terminal:run":    sess.runCommand,
		"template:list":   sess.listTemplates,
		"template:get":    sess.getTemplate,
		"template:create": sess.createTemplate,
		"template:delete": sess.deleteTemplate,
		"code:run":        sess.runCode,
		"context:create":  sess.createContext,
		"context:list":    sess.listContexts,
		"context:delete":  sess.deleteContext,
		"batch:run":       sess.runBatch,
		"file:write":      sess.writeFile,
		"file:read":       sess.readFile,
		"file:delete":     sess.deleteFile,
		"file:list":       sess.listFiles,
		"file:stat":       sess.statFile,
		"file:mkdir":      sess.makeDir,
		"file:move":       sess.moveFile,
		"file:exists":     sess.fileExists,
		"process:start":   sess.startProcess,
		"process:list":    sess.listProcesses,
		"process:read":    sess.readProcess,
		"process:attach":  sess.attachProcess,
		"process:detach":  sess.detachProcess,
		"process:stdin":   sess.processStdin,
		"process:signal":  sess.signalProcess,
		"process:kill":    sess.killProcess,
		"pty:create":      sess.createPTY,
		"pty:list":        sess.listPTYs,
		"pty:attach":      sess.attachPTY,
		"pty:detach":      sess.detachPTY,
		"pty:input":       sess.ptyInput,
		"pty:resize":      sess.resizePTY,
		"pty:signal":      sess.signalPTY,
		"pty:kill":        sess.killPTY,
		"template:logs":   sess.getTemplateLogs,
		// Directory watches (socketio_watch.go).
		"file:watch":   sess.watchDir,
		"file:unwatch": sess.unwatchDir,
		// Chunked transfers (socketio_transfer.go).
		"file:upload:begin":   sess.beginUpload,
		"file:upload:chunk":   sess.uploadChunk,
		"file:upload:end":     sess.endUpload,
		"file:upload:abort":   sess.abortUpload,
		"file:download:begin": sess.beginDownload,
		"file:download:chunk": sess.downloadChunk,
		"file:download:end":   sess.endDownload,
	}
}

// payloadLimit is the largest payload (as JSON) event may carry: file:write
// may fill a whole message, every other event is held to MaxBodyBytes.
func (h *Handler) payloadLimit(event string) int64 {
	if event == "file:write" {
		return h.limits.MaxMessageBytes
	}
	return h.limits.MaxBodyBytes
}

// dispatch starts one request. A request without an ack callback is
// ignored: it could not be answered.
func (sess *session) dispatch(event string, op operation, args []any) {
	ack, args := splitAck(args)
	if ack == nil {
		sess.h.logger.Debug("socket.io event without ack ignored", slog.String("op", event))
		return
	}
	if err := sess.h.rate.Allow(sess.principal.KeyID); err != nil {
		replyError(ack, err)
		return
	}
	args, data := binaryData(event, args)
	payload, err := payloadJSON(args)
	if err == nil && int64(len(payload)) > sess.h.payloadLimit(event) {
		err = invalidf("payload: larger than %d bytes", sess.h.payloadLimit(event))
	}
	if err != nil {
		sess.h.logError(event, "", err)
		replyError(ack, err)
		return
	}
	c := &call{payload: payload, data: data}
	started := sess.h.spawn(func() {
		data, err := op(sess.ctx, c)
		if err != nil {
			sess.h.logError(event, c.sandboxID, err)
			replyError(ack, err)
			return
		}
		if bin, ok := data.(binaryAck); ok {
			ack([]any{map[string]any{"ok": true, "data": map[string]any(bin)}}, nil)
			return
		}
		ack([]any{ackJSON{OK: true, Data: data}}, nil)
	})
	if !started {
		replyError(ack, fmt.Errorf("server shutting down: %w", errdefs.ErrUnavailable))
	}
}

// binaryData takes the binary "data" field out of a file:upload:chunk
// payload (the only event with a binary attachment); other events'
// arguments are returned as they are.
func binaryData(event string, args []any) ([]any, []byte) {
	if event != "file:upload:chunk" || len(args) != 1 {
		return args, nil
	}
	m, ok := args[0].(map[string]any)
	if !ok {
		return args, nil
	}
	v, present := m["data"]
	if !present {
		return args, nil
	}
	// A value that is not binary is left out (data stays nil): the chunk
	// is then refused, saying data must be a binary attachment.
	// The library makes a new buffer per message: no copy is needed.
	var data []byte
	switch v := v.(type) {
	case interface{ Bytes() []byte }:
		if data = v.Bytes(); data == nil {
			data = []byte{} // an empty attachment
		}
	case []byte:
		if data = v; data == nil {
			data = []byte{}
		}
	}
	rest := make(map[string]any, len(m))
	for k, v := range m {
		if k != "data" {
			rest[k] = v
		}
	}
	return []any{rest}, data
}

// splitAck separates a trailing ack callback from the event arguments.
func splitAck(args []any) (socket.Ack, []any) {
	if n := len(args); n > 0 {
		if ack, ok := args[n-1].(socket.Ack); ok {
			return ack, args[:n-1]
		}
	}
	return nil, args
}

// payloadJSON re-encodes the one payload argument (an object, or nothing)
// as JSON so both transports decode with the same rules.
func payloadJSON(args []any) ([]byte, error) {
	switch len(args) {
	case 0:
		return []byte("{}"), nil
	case 1:
	default:
		return nil, invalidf("payload: expected one object argument, got %d arguments", len(args))
	}
	switch v := args[0].(type) {
	case nil:
		return []byte("{}"), nil
	case map[string]any:
		if path := binaryField("", v); path != "" {
			return nil, invalidf("field %q: binary attachments are not supported; send text, or base64 with encoding \"base64\"", path)
		}
		// Without HTML escaping, so that the size checked against the
		// limits stays close to what the client sent.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, invalidf("payload: cannot be read as JSON")
		}
		return buf.Bytes(), nil
	default:
		return nil, invalidf("payload: expected an object, got %s", jsonKind(normalize(v)))
	}
}

// binaryField returns the path of the first binary value (a Socket.IO
// attachment) in v, or "".
func binaryField(path string, v any) string {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if found := binaryField(p, v[k]); found != "" {
				return found
			}
		}
	case []any:
		for i, e := range v {
			if found := binaryField(path+"["+itoa(i)+"]", e); found != "" {
				return found
			}
		}
	case nil, bool, string, float64:
	default:
		return path
	}
	return ""
}

// normalize maps the decoder's Go values onto JSON kinds for messages.
func normalize(v any) any {
	switch v.(type) {
	case bool, string, float64, []any, map[string]any:
		return v
	default:
		return struct{}{} // binary and the like: "an object"
	}
}

func replyError(ack socket.Ack, err error) {
	we := toWireError(err)
	ack([]any{ackJSON{OK: false, Error: &we}}, nil)
}

func (sess *session) createSandbox(ctx context.Context, c *call) (any, error) {
	var body createSandboxBody
	if err := decodeObject("payload", c.payload, &body); err != nil {
		return nil, err
	}
	sb, err := sess.h.svc.Create(ctx, sess.principal.Tenant, body.options())
	c.sandboxID = sb.ID
	if err != nil {
		return nil, err
	}
	return createdJSON{Sandbox: toSandbox(sb)}, nil
}

func (sess *session) listSandboxes(ctx context.Context, c *call) (any, error) {
	if err := decodeObject("payload", c.payload, &noFields{}); err != nil {
		return nil, err
	}
	list, err := sess.h.svc.List(ctx, sess.principal.Tenant)
	if err != nil {
		return nil, err
	}
	return sandboxListJSON{Sandboxes: toSandboxes(list)}, nil
}

// decodeSandboxRef decodes a {sandboxId} payload.
func (c *call) decodeSandboxRef() (string, error) {
	var ref sandboxRef
	if err := c.decodeSandboxPayload(&ref); err != nil {
		return "", err
	}
	return ref.SandboxID, nil
}

func (sess *session) getSandbox(ctx context.Context, c *call) (any, error) {
	id, err := c.decodeSandboxRef()
	if err != nil {
		return nil, err
	}
	sb, err := sess.h.svc.Get(ctx, sess.principal.Tenant, id)
	if err != nil {
		return nil, err
	}
	return toSandbox(sb), nil
}

func (sess *session) deleteSandbox(ctx context.Context, c *call) (any, error) {
	id, err := c.decodeSandboxRef()
	if err != nil {
		return nil, err
	}
	if err := sess.h.svc.Delete(ctx, sess.principal.Tenant, id); err != nil {
		return nil, err
	}
	return emptyJSON{}, nil
}

func (sess *session) deleteTemplate(ctx context.Context, c *call) (any, error) {
	var ref templateRef
	if err := decodeRef(c, &ref, "templateId", &ref.TemplateID); err != nil {
		return nil, err
	}
	if err := sess.h.svc.DeleteTemplate(ctx, sess.principal.Tenant, ref.TemplateID); err != nil {
		return nil, err
	}
	return emptyJSON{}, nil
}

func (sess *session) listTemplates(ctx context.Context, c *call) (any, error) {
	var q pageQuery
	if err := decodeObject("payload", c.payload, &q); err != nil {
		return nil, err
	}
	page, size := defaultPage, defaultPageSize
	if q.Page != nil {
		page = *q.Page
	}
	if q.PageSize != nil {
		size = *q.PageSize
	}
	tp, err := sess.h.svc.Templates(ctx, sess.principal.Tenant, page, size)
	if err != nil {
		return nil, err
	}
	return toTemplatePage(tp), nil
}

func (sess *session) getTemplate(ctx context.Context, c *call) (any, error) {
	var ref templateRef
	if err := decodeRef(c, &ref, "templateId", &ref.TemplateID); err != nil {
		return nil, err
	}
	t, err := sess.h.svc.Template(ctx, sess.principal.Tenant, ref.TemplateID)
	if err != nil {
		return nil, err
	}
	return toTemplate(t), nil
}

// runCommand serves terminal:run. With a streamId, every output line is
// emitted as stream:output before the ack.
func (sess *session) runCommand(ctx context.Context, c *call) (any, error) {
	var p runPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	em, err := sess.openStream(ctx, p.StreamID)
	if err != nil {
		return nil, err
	}
	defer em.close()
	res, err := sess.h.svc.RunCommand(ctx, sess.principal.Tenant, p.SandboxID, p.request(), func(o sandbox.Output) {
		em.emit("stream:output", func(streamID string) any {
			return streamOutputJSON{StreamID: streamID, Stream: o.Stream, Line: o.Line, Timestamp: o.Timestamp.UnixMilli()}
		})
	})
	if err != nil {
		return nil, err
	}
	return toCommandResult(res), nil
}

// openStream checks and reserves a request's streamId. With no streamId
// the emitter drops everything. The caller closes the emitter when the
// operation has returned, before the ack.
func (sess *session) openStream(ctx context.Context, streamID *string) (*streamEmitter, error) {
	if streamID == nil {
		return &streamEmitter{}, nil
	}
	id := *streamID
	if err := checkClientID("streamId", id); err != nil {
		return nil, err
	}
	if !sess.reserveStream(id) {
		return nil, invalidf(`field "streamId": %q is already used by a request in flight`, id)
	}
	return &streamEmitter{sess: sess, ctx: ctx, streamID: id}, nil
}

func (sess *session) reserveStream(id string) bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.streams[id] {
		return false
	}
	sess.streams[id] = true
	return true
}

func (sess *session) releaseStream(id string) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	delete(sess.streams, id)
}

// streamEmitter sends one request's streamed events (stream:output,
// stream:result, stream:error). Its zero value, for requests without a
// streamId, drops them.
type streamEmitter struct {
	sess     *session
	ctx      context.Context
	streamID string

	mu   sync.Mutex
	done bool // the operation returned: later events would follow the ack
}

// emit sends one event, whose payload build makes for the stream id. It
// is safe for concurrent use. It waits while the connection's send window
// is full (see sendWindow), which holds the operation's output back
// instead of queueing it without bound; when the socket is gone it drops
// the event (the operation is being cancelled).
func (e *streamEmitter) emit(event string, build func(streamID string) any) {
	if e.sess == nil {
		return
	}
	if err := e.sess.window.wait(e.ctx); err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return
	}
	_ = e.sess.sock.Emit(event, build(e.streamID))
}

// code emits a code event (jobID is nil outside batches).
func (e *streamEmitter) code(jobID *string, ev sandbox.CodeEvent) {
	if e.sess == nil {
		return
	}
	event, payload := socketCodeEvent(e.streamID, jobID, ev)
	if event == "" {
		return
	}
	e.emit(event, func(string) any { return payload })
}

// close stops the emitter and frees its streamId.
func (e *streamEmitter) close() {
	if e.sess == nil {
		return
	}
	e.mu.Lock()
	e.done = true
	e.mu.Unlock()
	e.sess.releaseStream(e.streamID)
}
