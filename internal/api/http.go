package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// ndjsonType is the media type of streamed command output.
const ndjsonType = "application/x-ndjson"

// authedFunc is an HTTP handler that runs as an authenticated principal.
type authedFunc func(w http.ResponseWriter, r *http.Request, p auth.Principal)

// routeHTTP registers the /v1 routes. Every path also gets a method-less
// pattern that answers 405 for the methods it does not serve, and "/"
// answers 404, both with the JSON error body.
func (h *Handler) routeHTTP(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/health", h.health)
	mux.Handle("POST /v1/sandboxes", h.authed(h.createSandbox))
	mux.Handle("GET /v1/sandboxes", h.authed(h.listSandboxes))
	mux.Handle("GET /v1/sandboxes/{id}", h.authed(h.getSandbox))
	mux.Handle("DELETE /v1/sandboxes/{id}", h.authed(h.deleteSandbox))
	mux.Handle("POST /v1/sandboxes/{id}/commands", h.authed(h.runCommand))
	mux.Handle("POST /v1/sandboxes/{id}/code", h.authed(h.runCode))
	mux.Handle("POST /v1/sandboxes/{id}/contexts", h.authed(h.createContext))
	mux.Handle("GET /v1/sandboxes/{id}/contexts", h.authed(h.listContexts))
	mux.Handle("DELETE /v1/contexts/{contextId}", h.authed(h.deleteContext))
	mux.Handle("POST /v1/sandboxes/{id}/batch", h.authed(h.runBatch))
	mux.Handle("PUT /v1/sandboxes/{id}/files", h.authed(h.writeFile))
	mux.Handle("GET /v1/sandboxes/{id}/files", h.authed(h.readFile))
	mux.Handle("DELETE /v1/sandboxes/{id}/files", h.authed(h.deleteFile))
	mux.Handle("GET /v1/sandboxes/{id}/files/list", h.authed(h.listFiles))
	mux.Handle("GET /v1/sandboxes/{id}/files/stat", h.authed(h.statFile))
	mux.Handle("POST /v1/sandboxes/{id}/files/mkdir", h.authed(h.makeDir))
	mux.Handle("POST /v1/sandboxes/{id}/files/move", h.authed(h.moveFile))
	mux.Handle("GET /v1/sandboxes/{id}/files/exists", h.authed(h.fileExists))
	mux.Handle("GET /v1/sandboxes/{id}/files/watch", h.authed(h.watchDir))
	mux.Handle("POST /v1/sandboxes/{id}/processes", h.authed(h.startProcess))
	mux.Handle("GET /v1/sandboxes/{id}/processes", h.authed(h.listProcesses))
	mux.Handle("DELETE /v1/sandboxes/{id}/processes/{pid}", h.authed(h.killProcess))
	mux.Handle("GET /v1/sandboxes/{id}/processes/{pid}/output", h.authed(h.processOutput))
	mux.Handle("POST /v1/sandboxes/{id}/processes/{pid}/stdin", h.authed(h.writeProcessStdin))
	mux.Handle("POST /v1/sandboxes/{id}/processes/{pid}/signal", h.authed(h.signalProcess))
	mux.Handle("GET /v1/templates", h.authed(h.listTemplates))
	mux.Handle("POST /v1/templates", h.authed(h.createTemplate))
	mux.Handle("GET /v1/templates/{id}", h.authed(h.getTemplate))
	mux.Handle("GET /v1/templates/{id}/logs", h.authed(h.getTemplateLogs))
	mux.Handle("DELETE /v1/templates/{id}", h.authed(h.deleteTemplate))
	mux.Handle("POST /v1/keys", h.authed(h.createKey))
	mux.Handle("GET /v1/keys", h.authed(h.listKeys))
	mux.Handle("DELETE /v1/keys/{key}", h.authed(h.revokeKey))
	mux.Handle("/v1/sandboxes/{id}/ports/{port}/{path...}", h.authed(h.proxyPort))
	mux.Handle("GET /v1/sandboxes/{id}/pty", h.authedKeyInQuery(h.ptySocket))

	for path, allow := range map[string]string{
		"/v1/health":                                "GET, HEAD",
		"/v1/sandboxes":                             "GET, HEAD, POST",
		"/v1/sandboxes/{id}":                        "GET, HEAD, DELETE",
		"/v1/sandboxes/{id}/commands":               "POST",
		"/v1/sandboxes/{id}/code":                   "POST",
		"/v1/sandboxes/{id}/contexts":               "GET, HEAD, POST",
		"/v1/contexts/{contextId}":                  "DELETE",
		"/v1/sandboxes/{id}/batch":                  "POST",
		"/v1/sandboxes/{id}/files":                  "GET, HEAD, PUT, DELETE",
		"/v1/sandboxes/{id}/files/list":             "GET, HEAD",
		"/v1/sandboxes/{id}/files/stat":             "GET, HEAD",
		"/v1/sandboxes/{id}/files/mkdir":            "POST",
		"/v1/sandboxes/{id}/files/move":             "POST",
		"/v1/sandboxes/{id}/files/exists":           "GET, HEAD",
		"/v1/sandboxes/{id}/processes":              "GET, HEAD, POST",
		"/v1/sandboxes/{id}/processes/{pid}":        "DELETE",
		"/v1/sandboxes/{id}/processes/{pid}/output": "GET, HEAD",
		"/v1/sandboxes/{id}/processes/{pid}/stdin":  "POST",
		"/v1/sandboxes/{id}/processes/{pid}/signal": "POST",
		"/v1/templates":                             "GET, HEAD, POST",
		"/v1/templates/{id}":                        "GET, HEAD, DELETE",
		"/v1/keys":                                  "GET, HEAD, POST",
		"/v1/keys/{key}":                            "DELETE",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			h.writeErrorStatus(w, http.StatusMethodNotAllowed,
				invalidf("method %s: %s only accepts %s", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, "", fmt.Errorf("route %s %s: %w", r.Method, r.URL.Path, errdefs.ErrNotFound))
	})
}

// authed wraps fn with API key authentication (Authorization: Bearer, or
// X-API-Key).
func (h *Handler) authed(fn authedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := keyFromRequest(r)
		var p auth.Principal
		if err == nil {
			p, err = h.authenticate(r.Context(), key)
		}
		if err == nil {
			err = h.rate.Allow(p.KeyID)
		}
		if err != nil {
			h.writeError(w, r, "", err)
			return
		}
		fn(w, r, p)
	})
}

// keyFromRequest reads the API key from Authorization (Bearer scheme,
// preferred) or X-API-Key.
func keyFromRequest(r *http.Request) (string, error) {
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, key, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", fmt.Errorf("Authorization header: expected the Bearer scheme: %w", errdefs.ErrUnauthenticated)
		}
		return strings.TrimSpace(key), nil
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key")), nil
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}{"ok", h.version})
}

func (h *Handler) createSandbox(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var body createSandboxBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, "", err)
		return
	}
	sb, err := h.svc.Create(r.Context(), p.Tenant, body.options())
	if err != nil {
		h.writeError(w, r, sb.ID, err)
		return
	}
	writeJSON(w, http.StatusCreated, createdJSON{Sandbox: toSandbox(sb)})
}

func (h *Handler) listSandboxes(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	list, err := h.svc.List(r.Context(), p.Tenant)
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	writeJSON(w, http.StatusOK, sandboxListJSON{Sandboxes: toSandboxes(list)})
}

func (h *Handler) getSandbox(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	sb, err := h.svc.Get(r.Context(), p.Tenant, id)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, toSandbox(sb))
}

func (h *Handler) deleteSandbox(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	if err := h.svc.Delete(r.Context(), p.Tenant, id); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) deleteTemplate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	if err := h.svc.DeleteTemplate(r.Context(), p.Tenant, id); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) listTemplates(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	page, err := intQuery(q.Get("page"), "page", defaultPage)
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	size, err := intQuery(q.Get("pageSize"), "pageSize", defaultPageSize)
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	tp, err := h.svc.Templates(r.Context(), p.Tenant, page, size)
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	writeJSON(w, http.StatusOK, toTemplatePage(tp))
}

// intQuery parses an integer query parameter; empty means def.
func intQuery(v, name string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalidf("query parameter %q: expected an integer, got %q", name, v)
	}
	return n, nil
}

func (h *Handler) getTemplate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	t, err := h.svc.Template(r.Context(), p.Tenant, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, "", err)
		return
	}
	writeJSON(w, http.StatusOK, toTemplate(t))
}

// runCommand answers with the CommandResult, or streams NDJSON when the
// client accepts application/x-ndjson.
func (h *Handler) runCommand(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body commandBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	h.serveStreamed(w, r, id, func(send func(any)) (any, error) {
		res, err := h.svc.RunCommand(r.Context(), p.Tenant, id, body.request(), func(o sandbox.Output) {
			send(ndjsonOutput{Type: o.Stream, Line: o.Line, Timestamp: o.Timestamp.UnixMilli()})
		})
		if err != nil {
			return nil, err
		}
		return toCommandResult(res), nil
	})
}

// serveStreamed serves an operation that produces events and then a
// result. By default it answers 200 with the result as JSON. When the
// client accepts application/x-ndjson, every line run sends is streamed
// as produced and the last line is {"type":"result","result":...} or
// {"type":"error","error":{...}}; the 200 status goes out with the first
// line, so an error before any line is an ordinary HTTP error. run may
// call send from several goroutines; send ignores nil lines.
func (h *Handler) serveStreamed(w http.ResponseWriter, r *http.Request, sandboxID string, run func(send func(line any)) (any, error)) {
	// A run may last far longer than a server-wide write timeout allows.
	if hasWriteTimeout(r) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	}

	if !acceptsNDJSON(r) {
		res, err := run(func(any) {})
		if err != nil {
			h.writeError(w, r, sandboxID, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}

	s := &ndjsonStream{w: w, rc: http.NewResponseController(w)}
	defer s.close()
	res, err := run(s.send)
	if !s.finish() {
		// Nothing was streamed yet: the status line is still ours to choose.
		if err != nil {
			h.writeError(w, r, sandboxID, err)
			return
		}
		s.final(nil)
	}
	if err != nil {
		h.logError(opName(r), sandboxID, err)
		s.final(ndjsonError{Type: "error", Error: toWireError(err)})
		return
	}
	s.final(ndjsonResult{Type: "result", Result: res})
}

// newNDJSONStream returns the stream of a long-lived NDJSON answer,
// clearing the server-wide write deadline it would outlast. The caller
// must close it before returning.
func newNDJSONStream(w http.ResponseWriter, r *http.Request) *ndjsonStream {
	rc := http.NewResponseController(w)
	if hasWriteTimeout(r) {
		_ = rc.SetWriteDeadline(time.Time{})
	}
	return &ndjsonStream{w: w, rc: rc}
}

// hasWriteTimeout reports whether the request's server may have set a
// write deadline on the connection (true when the server is unknown).
func hasWriteTimeout(r *http.Request) bool {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	return !ok || srv.WriteTimeout != 0
}

// acceptsNDJSON reports whether the Accept header lists application/x-ndjson.
func acceptsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && mt == ndjsonType && params["q"] != "0" {
				return true
			}
		}
	}
	return false
}

// ndjsonStream writes an operation's events as NDJSON. The 200 status is
// committed with the first line, so an error before any output is still an
// ordinary HTTP error.
//
// Lines are flushed by a flusher goroutine that is woken after each write:
// a lone line leaves at once, while lines written during a flush share the
// next one, so a burst of output costs few writes (no timer is involved).
type ndjsonStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController

	mu      sync.Mutex
	started bool          // the status line has been written
	done    bool          // the operation returned; later lines are dropped
	broken  bool          // a write failed (client gone); later writes are skipped
	kick    chan struct{} // wakes the flusher; nil when it is not running
	stopped chan struct{} // closed when the flusher has returned
}

// send writes one event line (nil is ignored). It is safe for
// concurrent use.
func (s *ndjsonStream) send(line any) {
	if line == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if !s.started {
		s.start()
	}
	s.write(line)
}

// finish stops accepting output and reports whether the stream started.
func (s *ndjsonStream) finish() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	return s.started
}

// final writes the last line (after finish), starting the stream if it
// had not started; nil only starts it.
func (s *ndjsonStream) final(line any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.start()
	}
	if line != nil {
		s.write(line)
	}
}

// open starts the stream and sends its status at once, before any line.
func (s *ndjsonStream) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.start()
	}
	s.flush()
}

// close stops the flusher and flushes what is left. The handler must not
// return before it.
func (s *ndjsonStream) close() {
	s.mu.Lock()
	kick := s.kick
	s.kick = nil
	s.mu.Unlock()
	if kick == nil {
		return
	}
	close(kick)
	<-s.stopped
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flush()
}

// start writes the headers and the 200 status line and starts the flusher.
// Called with mu held.
func (s *ndjsonStream) start() {
	s.started = true
	hd := s.w.Header()
	hd.Set("Content-Type", ndjsonType)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Accel-Buffering", "no") // ask reverse proxies not to buffer
	s.w.WriteHeader(http.StatusOK)
	s.kick, s.stopped = make(chan struct{}, 1), make(chan struct{})
	go s.flusher(s.kick)
}

func (s *ndjsonStream) flusher(kick <-chan struct{}) {
	defer close(s.stopped)
	for range kick {
		s.mu.Lock()
		s.flush()
		s.mu.Unlock()
	}
}

// write sends one line and wakes the flusher. Called with mu held.
func (s *ndjsonStream) write(v any) {
	if s.broken {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.broken = true
		return
	}
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		s.broken = true
		return
	}
	select {
	case s.kick <- struct{}{}:
	default: // already woken: this line goes with that flush
	}
}

// flush pushes buffered lines to the client. Called with mu held.
func (s *ndjsonStream) flush() {
	if s.broken || !s.started {
		return
	}
	if err := s.rc.Flush(); err != nil {
		s.broken = true
	}
}

// readBody reads a JSON object body of at most MaxBodyBytes into v.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := h.readBodyBytes(w, r)
	if err != nil {
		return err
	}
	return decodeObject("request body", data, v)
}

// readOptionalBody is readBody for operations whose fields are all
// optional: an empty body counts as {}.
func (h *Handler) readOptionalBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := h.readBodyBytes(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return decodeObject("request body", data, v)
}

func (h *Handler) readBodyBytes(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := readAll(http.MaxBytesReader(w, r.Body, h.limits.MaxBodyBytes), r.ContentLength)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, invalidf("request body: larger than %d bytes", h.limits.MaxBodyBytes)
		}
		return nil, invalidf("request body: could not be read")
	}
	return data, nil
}

// readAll is io.ReadAll with a first buffer sized for a body of size
// bytes (the Content-Length, -1 when unknown; at most 64 KiB is reserved
// up front): a small body then costs one small allocation, not 512 bytes
// and a copy.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return io.ReadAll(r)
	}
	// One byte more than the body, so that the read that finds its end
	// needs no larger buffer.
	b := make([]byte, 0, min(size, 64<<10)+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick a larger buffer
		}
	}
}

// writeError answers with err's status and {"error": {...}}.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, sandboxID string, err error) {
	h.logError(opName(r), sandboxID, err)
	h.writeErrorStatus(w, httpStatus(errdefs.Code(err)), err)
}

// writeErrorStatus writes err's body with an explicit status.
func (h *Handler) writeErrorStatus(w http.ResponseWriter, status int, err error) {
	we := toWireError(err)
	switch we.Code {
	case "unauthenticated":
		w.Header().Set("WWW-Authenticate", `Bearer realm="sdbx"`)
	case "rate_limited":
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(retryAfter(err)), 10))
	}
	writeJSON(w, status, struct {
		Error wireError `json:"error"`
	}{we})
}

// opName names a request's operation for logs: its route pattern.
func opName(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method + " " + r.URL.Path
}

// writeJSON writes v as the JSON response body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	// The encoder hands the whole line (v and its newline) to one Write
	// once v is encoded, so the body goes out without being copied; when
	// v cannot be encoded nothing was written yet. (A failed write, the
	// client gone, is not retried.)
	hw := &headerWriter{w: w, status: status}
	if err := json.NewEncoder(hw).Encode(v); err != nil && !hw.wrote {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"internal error"}}` + "\n"))
	}
}

// headerWriter writes the status line before the body's (single) Write.
type headerWriter struct {
	w      http.ResponseWriter
	status int
	wrote  bool
}

func (h *headerWriter) Write(b []byte) (int, error) {
	h.wrote = true
	h.w.WriteHeader(h.status)
	return h.w.Write(b)
}
