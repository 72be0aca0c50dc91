package sdbx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File types of FileEntry.Type.
const (
	FileTypeFile    = "file"
	FileTypeDir     = "dir"
	FileTypeSymlink = "symlink"
	FileTypeOther   = "other"
)

// FileEntry describes a file or directory of a sandbox.
type FileEntry struct {
	Name string `json:"name"`
	// Path is absolute, inside the sandbox.
	Path string `json:"path"`
	// Type is FileTypeFile, FileTypeDir, FileTypeSymlink or FileTypeOther.
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is the permission bits in octal, e.g. "0644".
	Mode       string    `json:"mode"`
	ModifiedAt time.Time `json:"modifiedAt"`
}

// FileList is the content of a directory, sorted by name.
type FileList struct {
	Path    string      `json:"path"`
	Entries []FileEntry `json:"entries"`
}

// FileOption adds an optional behaviour to WriteFile.
type FileOption func(*fileOptions)

type fileOptions struct {
	createParents bool
}

// CreateParents makes WriteFile create the missing parent directories of
// the path.
func CreateParents() FileOption {
	return func(o *fileOptions) { o.createParents = true }
}

// WriteFile writes what content yields to the absolute path in sandbox
// sandboxID and returns the new entry. content is streamed as it is read,
// never held whole (up to 10 GiB); the write is atomic, and a content that
// fails part way leaves the file as it was. WriteFile does not close
// content, and does not read it after it returns (except for a Read that
// was already in progress, when the server answered before the end of the
// content, e.g. with an error).
//
// An *os.File (positioned where the upload starts), *bytes.Reader,
// *bytes.Buffer or *strings.Reader is sent with its length; other readers
// are sent chunked. Config.Timeout bounds only the wait for the answer once
// all of content was sent; the transfer itself is bounded by ctx.
//
// A relative path or one with a NUL fails with a *SandboxError matching
// ErrInvalidArgument, a missing parent (without CreateParents) with
// ErrNotFound, a directory at path with ErrConflict, content that does
// not fit the sandbox's disk quota (Resources.DiskMB) or a full file
// system with ErrResourceExhausted (delete files first). An error of
// content itself is returned wrapped (it matches none of the kinds).
// WriteFile is never retried automatically.
func (c *Client) WriteFile(ctx context.Context, sandboxID, path string, content io.Reader, opts ...FileOption) (*FileEntry, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var o fileOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if content == nil {
		content = strings.NewReader("")
	}
	q := url.Values{"path": {path}}
	if o.createParents {
		q.Set("createParents", "true")
	}
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	up := &upload{r: content, timeout: c.timeout, cancel: cancel}
	defer up.finish()
	length := contentLength(content)
	if length == 0 {
		up.sent() // nothing to send: the answer is due at once
	}
	r := &request{
		method: http.MethodPut,
		path:   []string{"sandboxes", sandboxID, "files"},
		query:  q,
		// The transport may close the body it was given; the caller's
		// content is never closed.
		content:       up,
		contentLength: length,
		kind:          opSandbox, sandboxID: sandboxID,
	}
	var e FileEntry
	err := c.attempt(sendCtx, r, nil, &e)
	if err == nil {
		return &e, nil
	}
	if rerr := up.readError(); rerr != nil {
		return nil, fmt.Errorf("%s: reading content: %w", r.op(), rerr)
	}
	if sendCtx.Err() != nil {
		return nil, c.contextError(ctx, r.op(), c.timeout)
	}
	return nil, err
}

// upload is the body of WriteFile. It records a failure of the caller's
// reader, starts the timeout of the answer once the content was read to
// its end, and stops reading the caller's reader once WriteFile returns.
type upload struct {
	r       io.Reader
	timeout time.Duration
	cancel  func()

	mu    sync.Mutex
	err   error       // the reader's first error other than io.EOF
	timer *time.Timer // runs from the end of the content
	done  bool        // WriteFile returned
}

func (u *upload) Read(p []byte) (int, error) {
	u.mu.Lock()
	done := u.done
	u.mu.Unlock()
	if done {
		return 0, errors.New("upload finished")
	}
	n, err := u.r.Read(p)
	if err != nil {
		u.mu.Lock()
		if err != io.EOF && u.err == nil {
			u.err = err
		}
		u.mu.Unlock()
		if err == io.EOF {
			u.sent()
		}
	}
	return n, err
}

// sent starts the timeout of the answer.
func (u *upload) sent() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.timer == nil && !u.done {
		u.timer = time.AfterFunc(u.timeout, u.cancel)
	}
}

func (u *upload) readError() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *upload) finish() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = true
	if u.timer != nil {
		u.timer.Stop()
	}
}

// contentLength returns the number of bytes r will yield, or -1 when that
// is not known up front.
func contentLength(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }: // *bytes.Reader, *bytes.Buffer, *strings.Reader
		return int64(v.Len())
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil || off > fi.Size() {
			return -1
		}
		return fi.Size() - off
	}
	return -1
}

// FileReader streams the content of a file of a sandbox (see ReadFile).
// Close it when done.
type FileReader struct {
	// Name is the file's name, the last element of its path.
	Name string
	// Size is the file's length in bytes, or -1 when the server does not
	// know it up front (a file of /proc, say).
	Size int64
	// ModifiedAt is when the file was last changed (second precision;
	// zero when the server did not say).
	ModifiedAt time.Time

	op      string
	ctx     context.Context // the caller's
	body    io.ReadCloser
	cancel  func()
	timeout time.Duration
	c       *Client
	closed  atomic.Bool
}

// Read reads the next bytes of the file. A transfer that breaks part way
// fails with a *ConnectionError (never a short file that looks complete).
func (f *FileReader) Read(p []byte) (int, error) {
	n, err := f.body.Read(p)
	switch {
	case err == nil || err == io.EOF:
		return n, err
	case f.closed.Load():
		return n, fs.ErrClosed
	case f.ctx.Err() != nil:
		return n, f.c.contextError(f.ctx, f.op, f.timeout)
	}
	return n, connectionError(f.op+": read content", err)
}

// Close stops the transfer and frees the connection. Reads after Close
// fail with fs.ErrClosed.
func (f *FileReader) Close() error {
	f.closed.Store(true)
	f.cancel()
	return f.body.Close()
}

// ReadFile opens the file at the absolute path in sandbox sandboxID and
// returns a reader that streams its content; the caller closes it. The
// content is never held whole, so files of any size can be read.
// Config.Timeout bounds the wait for the transfer to start (connection
// failures and 503/429 before it are retried); the transfer itself is
// bounded by ctx, which must stay alive while the reader is used.
//
// A missing file fails with a *SandboxError matching ErrNotFound, a
// directory with ErrConflict, a relative path with ErrInvalidArgument.
func (c *Client) ReadFile(ctx context.Context, sandboxID, path string) (*FileReader, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	r := &request{
		method: http.MethodGet,
		path:   []string{"sandboxes", sandboxID, "files"},
		query:  url.Values{"path": {path}},
		accept: "application/octet-stream",
		kind:   opSandbox, sandboxID: sandboxID,
	}
	bodyCtx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(c.timeout, cancel)
	var resp *http.Response
	err := c.retry(ctx, bodyCtx, r, c.timeout, func() error {
		var err error
		resp, err = c.send(bodyCtx, r, nil)
		return err
	})
	if err == nil && !timer.Stop() {
		// The timeout fired just as the answer came.
		resp.Body.Close()
		err = c.contextError(ctx, r.op(), c.timeout)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	f := &FileReader{
		Name: fileName(resp.Header.Get("Content-Disposition"), path),
		Size: resp.ContentLength,
		op:   r.op(), ctx: ctx, body: resp.Body, cancel: cancel, timeout: c.timeout, c: c,
	}
	if f.Size < 0 {
		f.Size = -1
	}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		f.ModifiedAt = t
	}
	return f, nil
}

// fileName is the filename of a Content-Disposition header, or else the
// last element of path.
func fileName(disposition, path string) string {
	if _, params, err := mime.ParseMediaType(disposition); err == nil && params["filename"] != "" {
		return params["filename"]
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}

// DeleteFile removes the file at the absolute path in sandbox sandboxID,
// or a directory: an empty one, or with everything in it when recursive.
// A missing path fails with a *SandboxError matching ErrNotFound; a
// non-empty directory without recursive with ErrConflict.
func (c *Client) DeleteFile(ctx context.Context, sandboxID, path string, recursive bool) error {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return err
	}
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "true")
	}
	r := &request{method: http.MethodDelete, path: []string{"sandboxes", sandboxID, "files"}, query: q, kind: opSandbox, sandboxID: sandboxID}
	return c.call(ctx, r, nil)
}

// ListFiles lists the directory dir (an absolute path; "" means the
// template's working directory, /workspace) of sandbox sandboxID, sorted by
// name. A missing directory fails with a *SandboxError matching
// ErrNotFound, a file with ErrConflict.
func (c *Client) ListFiles(ctx context.Context, sandboxID, dir string) (*FileList, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	q := url.Values{}
	if dir != "" {
		q.Set("path", dir)
	}
	var l FileList
	r := &request{method: http.MethodGet, path: []string{"sandboxes", sandboxID, "files", "list"}, query: q, kind: opSandbox, sandboxID: sandboxID}
	if err := c.call(ctx, r, &l); err != nil {
		return nil, err
	}
	if l.Entries == nil {
		l.Entries = []FileEntry{}
	}
	return &l, nil
}

// StatFile describes the entry at the absolute path in sandbox sandboxID;
// a symbolic link is described itself (Type FileTypeSymlink). A missing
// path fails with a *SandboxError matching ErrNotFound, a relative path
// with ErrInvalidArgument.
func (c *Client) StatFile(ctx context.Context, sandboxID, path string) (*FileEntry, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var e FileEntry
	r := &request{method: http.MethodGet, path: []string{"sandboxes", sandboxID, "files", "stat"}, query: url.Values{"path": {path}}, kind: opSandbox, sandboxID: sandboxID}
	if err := c.call(ctx, r, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// MakeDir creates the directory at the absolute path in sandbox sandboxID
// and returns its entry. With parents, missing parent directories are
// created too and an existing directory is not an error (like mkdir -p).
// A missing parent without parents fails with a *SandboxError matching
// ErrNotFound; an existing entry (without parents, or a file) with
// ErrConflict.
func (c *Client) MakeDir(ctx context.Context, sandboxID, path string, parents bool) (*FileEntry, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var e FileEntry
	r := &request{
		method: http.MethodPost, path: []string{"sandboxes", sandboxID, "files", "mkdir"},
		body: makeDirBody{Path: path, Parents: parents},
		kind: opSandbox, sandboxID: sandboxID,
	}
	if err := c.call(ctx, r, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

type makeDirBody struct {
	Path    string `json:"path"`
	Parents bool   `json:"parents,omitempty"`
}

// MoveFile renames the entry at from to to (both absolute paths in sandbox
// sandboxID) and returns its entry at to. An existing destination fails
// with a *SandboxError matching ErrConflict unless overwrite is set (a
// directory can replace only an empty directory); a missing source or
// destination directory with ErrNotFound.
func (c *Client) MoveFile(ctx context.Context, sandboxID, from, to string, overwrite bool) (*FileEntry, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var e FileEntry
	r := &request{
		method: http.MethodPost, path: []string{"sandboxes", sandboxID, "files", "move"},
		body: moveFileBody{From: from, To: to, Overwrite: overwrite},
		kind: opSandbox, sandboxID: sandboxID,
	}
	if err := c.call(ctx, r, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

type moveFileBody struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite,omitempty"`
}

// FileExists reports whether the absolute path in sandbox sandboxID
// resolves to an entry (symbolic links followed: a dangling link does not
// exist). A missing path is false, not an error; a relative path fails
// with a *SandboxError matching ErrInvalidArgument.
func (c *Client) FileExists(ctx context.Context, sandboxID, path string) (bool, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return false, err
	}
	var out struct {
		Exists *bool `json:"exists"`
	}
	r := &request{method: http.MethodGet, path: []string{"sandboxes", sandboxID, "files", "exists"}, query: url.Values{"path": {path}}, kind: opSandbox, sandboxID: sandboxID}
	if err := c.call(ctx, r, &out); err != nil {
		return false, err
	}
	if out.Exists == nil {
		return false, &Error{Code: CodeInternal, Message: r.op() + ": response without \"exists\""}
	}
	return *out.Exists, nil
}

var _ io.ReadCloser = (*FileReader)(nil)
