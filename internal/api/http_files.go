package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// downloadFirstChunk is how much of a download is read before its status
// is sent.
const downloadFirstChunk = 32 << 10

// HTTP handlers of files. Content travels raw (not JSON) and is streamed
// both ways: an upload is handed to the service as the request body
// reader, a download is copied from the service's reader.

// writeFile serves PUT .../files?path=P&createParents=true with the raw
// content as the body.
func (h *Handler) writeFile(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	path, createParents, err := pathAndFlag(r.URL, "createParents")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	limit := h.limits.MaxUploadBytes
	if r.ContentLength > limit {
		h.writeError(w, r, id, invalidf("request body: larger than %d bytes", limit))
		return
	}
	// An upload may take far longer than server-wide timeouts allow.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})

	body := &uploadBody{r: http.MaxBytesReader(w, r.Body, limit)}
	entry, err := h.svc.WriteFile(r.Context(), p.Tenant, id, path, body,
		sandbox.WriteFileOptions{CreateParents: createParents})
	if err != nil {
		if bodyErr := body.failure(limit); bodyErr != nil {
			err = bodyErr // the cause, rather than how the service saw it
		}
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileEntry(entry))
}

// uploadBody is the request body as the service reads it. It remembers a
// read failure so that the client is told about its body (too large, cut
// short) rather than about how the write failed.
type uploadBody struct {
	r io.Reader

	mu  sync.Mutex
	err error // the first read error other than io.EOF
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// failure is the client-facing error of a failed body read, or nil.
func (b *uploadBody) failure(limit int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.err == nil:
		return nil
	case isMaxBytes(b.err):
		return invalidf("request body: larger than %d bytes", limit)
	default:
		return invalidf("request body: could not be read to its end")
	}
}

func isMaxBytes(err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok
}

// readFile serves GET .../files?path=P: the raw bytes, streamed, with
// Content-Length when the entry is a regular file. A failure after the
// status was sent aborts the response, so the client sees a broken
// transfer rather than a short file.
func (h *Handler) readFile(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	q, err := fileQuery(r.URL, "path")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	entry, content, err := h.svc.OpenFile(r.Context(), p.Tenant, id, q.Get("path"))
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	defer content.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})

	// The first bytes are read before the status is chosen, so that a file
	// that cannot be read at all gets an ordinary error.
	first := make([]byte, downloadFirstChunk)
	n, err := io.ReadAtLeast(content, first, 1)
	if err != nil && !errors.Is(err, io.EOF) {
		h.writeError(w, r, id, fmt.Errorf("file %s: reading: %w", q.Get("path"), err))
		return
	}

	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("X-Content-Type-Options", "nosniff")
	if cd := mime.FormatMediaType("attachment", map[string]string{"filename": entry.Name}); entry.Name != "" && cd != "" {
		hd.Set("Content-Disposition", cd)
	}
	if !entry.ModifiedAt.IsZero() {
		hd.Set("Last-Modified", entry.ModifiedAt.UTC().Format(http.TimeFormat))
	}
	sized := entry.Type == sandbox.FileTypeFile && entry.Size >= 0
	if sized {
		hd.Set("Content-Length", strconv.FormatInt(entry.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	written, err := w.Write(first[:n])
	if err == nil {
		err = rc.Flush()
	}
	if err == nil {
		var rest int64
		rest, err = io.Copy(w, content)
		written += int(rest)
	}
	if err == nil && sized && int64(written) != entry.Size {
		err = errors.New("file size changed while it was read")
	}
	if err != nil {
		h.logger.Debug("file download aborted", "op", opName(r), "sandbox_id", id, "bytes", written, "err", err)
		// The documented way to end a response abnormally: the server
		// resets the stream instead of finishing it.
		panic(http.ErrAbortHandler)
	}
}

func (h *Handler) deleteFile(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	path, recursive, err := pathAndFlag(r.URL, "recursive")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	if err := h.svc.DeleteFile(r.Context(), p.Tenant, id, path, recursive); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listFiles serves GET .../files/list?path=D; path is optional.
func (h *Handler) listFiles(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	q, err := queryParams(r.URL, "path")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	list, err := h.svc.ListFiles(r.Context(), p.Tenant, id, q.Get("path"))
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileList(list))
}

// fileQuery is queryParams for routes that need a non-empty "path".
func fileQuery(u *url.URL, allowed ...string) (url.Values, error) {
	q, err := queryParams(u, allowed...)
	if err != nil {
		return nil, err
	}
	if q.Get("path") == "" {
		return nil, invalidf("query parameter %q: required", "path")
	}
	return q, nil
}

// queryParams parses the query, refusing parameters not in allowed and
// parameters given more than once.
func queryParams(u *url.URL, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, invalidf("query: malformed")
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			return nil, invalidf("query parameter %q: unknown (this route takes %s)", name, strings.Join(allowed, ", "))
		}
		if len(q[name]) > 1 {
			return nil, invalidf("query parameter %q: given more than once", name)
		}
	}
	return q, nil
}

// pathAndFlag reads the query of a file route that takes the path
// (required) and the true/false parameter flag, and nothing else.
func pathAndFlag(u *url.URL, flag string) (path string, on bool, err error) {
	q, err := fileQuery(u, "path", flag)
	if err != nil {
		return "", false, err
	}
	on, err = boolParam(q, flag)
	return q.Get("path"), on, err
}

// boolParam reads a true/false query parameter; absent or empty is false.
func boolParam(q url.Values, name string) (bool, error) {
	switch v := q.Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, invalidf("query parameter %q: expected true or false, got %q", name, v)
	}
}

// statFile serves GET .../files/stat?path=P.
func (h *Handler) statFile(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	q, err := fileQuery(r.URL, "path")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	entry, err := h.svc.StatFile(r.Context(), p.Tenant, id, q.Get("path"))
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileEntry(entry))
}

// makeDir serves POST .../files/mkdir with {"path", "parents"}.
func (h *Handler) makeDir(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body makeDirBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	if err := requirePath(body.Path); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	entry, err := h.svc.MakeDir(r.Context(), p.Tenant, id, body.Path, body.Parents)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusCreated, toFileEntry(entry))
}

// moveFile serves POST .../files/move with {"from", "to", "overwrite"}.
func (h *Handler) moveFile(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	var body moveFileBody
	if err := h.readBody(w, r, &body); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	if err := requireMovePaths(body.From, body.To); err != nil {
		h.writeError(w, r, id, err)
		return
	}
	entry, err := h.svc.MoveFile(r.Context(), p.Tenant, id, body.From, body.To, body.Overwrite)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileEntry(entry))
}

// fileExists serves GET .../files/exists?path=P: {"exists": bool}.
func (h *Handler) fileExists(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	q, err := fileQuery(r.URL, "path")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	ok, err := h.svc.FileExists(r.Context(), p.Tenant, id, q.Get("path"))
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, fileExistsJSON{Exists: ok})
}
