package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// Chunked file transfers over Socket.IO (docs/protocol.md, "Chunked
// transfers"): an upload is one service WriteFile fed through a pipe, one
// chunk at a time, so the server holds at most one chunk per upload; a
// download is one OpenFile read a chunk per request. Both stay bound to
// their session: a disconnect aborts them, as does an idle timeout.

// Transfer limits.
const (
	// maxTransfers bounds the uploads plus downloads open on one socket.
	maxTransfers = 16
	// defaultChunk and maxChunk bound a download's chunks.
	defaultChunk = 1 << 20
	maxChunk     = 8 << 20
)

// errUploadAborted is how an aborted upload's content ends.
var errUploadAborted = errors.New("upload aborted")

// binaryAck is an ack's data with binary values ([]byte): the Socket.IO
// encoder finds attachments only in maps, not in structs.
type binaryAck map[string]any

// transfers holds one session's chunked uploads and downloads.
type transfers struct {
	mu        sync.Mutex
	uploads   map[string]*upload
	downloads map[string]*download
	closed    bool // closeAll ran: nothing more is registered
}

func (t *transfers) count() int { return len(t.uploads) + len(t.downloads) }

// addTransfer registers v as (*m)[id], m being one of t's maps, unless
// the connection is gone or already has maxTransfers open.
func addTransfer[T any](t *transfers, m *map[string]*T, id string, v *T) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("connection closed: %w", errdefs.ErrUnavailable)
	}
	if t.count() >= maxTransfers {
		return errTooMany
	}
	if *m == nil {
		*m = map[string]*T{}
	}
	(*m)[id] = v
	return nil
}

// findTransfer returns (*m)[id], or an error naming kind when there is none.
func findTransfer[T any](t *transfers, m *map[string]*T, kind, id string) (*T, error) {
	t.mu.Lock()
	v := (*m)[id]
	t.mu.Unlock()
	if v == nil {
		return nil, noTransfer(kind, id)
	}
	return v, nil
}

// takeTransfer removes and returns (*m)[id] (nil when there is none).
func takeTransfer[T any](t *transfers, m *map[string]*T, id string) *T {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := (*m)[id]
	delete(*m, id)
	return v
}

func (t *transfers) takeUpload(id string) *upload { return takeTransfer(t, &t.uploads, id) }

func (t *transfers) takeDownload(id string) *download { return takeTransfer(t, &t.downloads, id) }

// closeAll aborts every transfer (the socket is gone).
func (t *transfers) closeAll() {
	t.mu.Lock()
	ups, downs := t.uploads, t.downloads
	t.uploads, t.downloads, t.closed = nil, nil, true
	t.mu.Unlock()
	for _, u := range ups {
		u.abort(errUploadAborted)
	}
	for _, d := range downs {
		d.close()
	}
}

// noTransfer is the error for an unknown upload or download id.
func noTransfer(kind, id string) error {
	return fmt.Errorf("%s %q: no such %s in progress on this connection: %w", kind, id, kind, errdefs.ErrNotFound)
}

// errTooMany is the error for a transfer past maxTransfers.
var errTooMany = fmt.Errorf("this connection has %d transfers open, the most it may have: %w", maxTransfers, errdefs.ErrRateLimited)

// transferID returns a fresh id with prefix.
func transferID(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("transfer id: %v: %w", err, errdefs.ErrInternal)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// upload is a chunked upload in progress.
type upload struct {
	id     string
	path   string
	size   int64 // announced size, -1 when not given
	pw     *io.PipeWriter
	cancel context.CancelFunc
	idle   *time.Timer
	done   chan struct{} // closed when WriteFile returned
	entry  sandbox.FileEntry
	err    error // WriteFile's error, set before done is closed

	mu       sync.Mutex // serializes chunks
	turn     *sync.Cond // signalled when next changes or the upload ends
	next     int64      // the seq the next chunk must have
	received int64
	over     bool // ended or aborted: waiting chunks give up
}

// stop ends the content with cause (nothing is written) and waits for
// the sandbox write to end.
func (u *upload) stop(cause error) {
	u.idle.Stop()
	u.pw.CloseWithError(cause)
	u.cancel()
	<-u.done
}

// abort stops the upload and wakes the chunks waiting for their turn.
func (u *upload) abort(cause error) {
	u.stop(cause)
	u.mu.Lock()
	u.over = true
	u.turn.Broadcast()
	u.mu.Unlock()
}

// abortHeld is abort for a caller that holds u.mu.
func (u *upload) abortHeld(cause error) {
	u.stop(cause)
	u.over = true
	u.turn.Broadcast()
}

// maxAhead is how far ahead of the next expected chunk a chunk may
// arrive (a client may send several before their acks; the server
// handles a socket's events concurrently, so they may come out of
// order): it waits for its turn.
const maxAhead = 16

type uploadBeginPayload struct {
	SandboxID     string `json:"sandboxId"`
	Path          string `json:"path"`
	Size          *int64 `json:"size"`
	CreateParents bool   `json:"createParents"`
}

func (p *uploadBeginPayload) sandbox() string { return p.SandboxID }

type uploadRef struct {
	UploadID string `json:"uploadId"`
	Seq      *int64 `json:"seq"` // file:upload:chunk only
}

// beginUpload serves file:upload:begin: it starts the sandbox write and
// answers {uploadId}.
func (sess *session) beginUpload(ctx context.Context, c *call) (any, error) {
	var p uploadBeginPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	size := int64(-1)
	if p.Size != nil {
		if *p.Size < 0 || *p.Size > sess.h.limits.MaxUploadBytes {
			return nil, invalidf(`field "size": must be 0-%d, got %d`, sess.h.limits.MaxUploadBytes, *p.Size)
		}
		size = *p.Size
	}
	// Unknown sandboxes fail here rather than at the first chunk.
	if _, err := sess.h.svc.Get(ctx, sess.principal.Tenant, p.SandboxID); err != nil {
		return nil, err
	}
	id, err := transferID("up_")
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	wctx, cancel := context.WithCancel(sess.ctx)
	u := &upload{id: id, path: p.Path, size: size, pw: pw, cancel: cancel, done: make(chan struct{})}
	u.turn = sync.NewCond(&u.mu)
	idle := sess.h.limits.TransferIdle
	u.idle = time.AfterFunc(idle, func() {
		if sess.xfer.takeUpload(id) != nil {
			u.abort(fmt.Errorf("no chunk for %s: %w", idle, errUploadAborted))
		}
	})
	if err := addTransfer(&sess.xfer, &sess.xfer.uploads, id, u); err != nil {
		u.idle.Stop()
		cancel()
		return nil, err
	}
	started := sess.h.spawn(func() {
		defer close(u.done)
		u.entry, u.err = sess.h.svc.WriteFile(wctx, sess.principal.Tenant, p.SandboxID, p.Path, pr,
			sandbox.WriteFileOptions{CreateParents: p.CreateParents})
		pr.CloseWithError(errUploadAborted) // a chunk still writing fails
	})
	if !started {
		sess.xfer.takeUpload(id)
		u.idle.Stop()
		cancel()
		return nil, fmt.Errorf("server shutting down: %w", errdefs.ErrUnavailable)
	}
	return map[string]any{"uploadId": id}, nil
}

// uploadChunk serves file:upload:chunk {uploadId, seq, data: <binary>}:
// the ack comes once the chunk went on to the sandbox, which paces the
// client.
func (sess *session) uploadChunk(ctx context.Context, c *call) (any, error) {
	var ref uploadRef
	if err := decodeObject("payload", c.payload, &ref); err != nil {
		return nil, err
	}
	if ref.Seq == nil {
		return nil, invalidf(`field "seq": required`)
	}
	if c.data == nil {
		return nil, invalidf(`field "data": required, as a binary attachment (a Buffer, ArrayBuffer or typed array)`)
	}
	u, err := findTransfer(&sess.xfer, &sess.xfer.uploads, "upload", ref.UploadID)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if *ref.Seq < u.next || *ref.Seq >= u.next+maxAhead {
		// The client lost the order: nothing it sends can make the file
		// whole any more.
		if u.over {
			return nil, fmt.Errorf("upload %s has ended: %w", u.id, errdefs.ErrConflict)
		}
		sess.failUpload(u, "chunk out of order")
		return nil, invalidf(`field "seq": expected %d to %d, got %d; the upload was aborted and %s not changed`, u.next, u.next+maxAhead-1, *ref.Seq, u.path)
	}
	for *ref.Seq != u.next && !u.over {
		u.turn.Wait()
	}
	if u.over {
		return nil, fmt.Errorf("upload %s has ended: %w", u.id, errdefs.ErrConflict)
	}
	if u.size >= 0 && u.received+int64(len(c.data)) > u.size {
		sess.failUpload(u, "more bytes than the announced size")
		return nil, invalidf(`upload %s: more than the announced %d bytes; the upload was aborted and %s not changed`, u.id, u.size, u.path)
	}
	u.idle.Reset(sess.h.limits.TransferIdle)
	if _, err := u.pw.Write(c.data); err != nil {
		// The write ended early: the sandbox refused it, or it was aborted.
		sess.xfer.takeUpload(u.id)
		u.abortHeld(errUploadAborted)
		if u.err != nil {
			return nil, u.err
		}
		return nil, fmt.Errorf("upload %s was aborted: %w", u.id, errdefs.ErrConflict)
	}
	u.next++
	u.received += int64(len(c.data))
	u.turn.Broadcast()
	return map[string]any{"received": u.received}, nil
}

// failUpload aborts u and forgets it; the caller holds u.mu.
func (sess *session) failUpload(u *upload, why string) {
	sess.xfer.takeUpload(u.id)
	u.abortHeld(fmt.Errorf("%s: %w", why, errUploadAborted))
}

// takeUploadOf decodes an {uploadId} payload and takes that upload off
// the connection.
func (sess *session) takeUploadOf(c *call) (*upload, error) {
	var ref uploadRef
	if err := decodeObject("payload", c.payload, &ref); err != nil {
		return nil, err
	}
	if u := sess.xfer.takeUpload(ref.UploadID); u != nil {
		return u, nil
	}
	return nil, noTransfer("upload", ref.UploadID)
}

// endUpload serves file:upload:end {uploadId}: the file is committed
// (atomically) and its FileEntry is the answer.
func (sess *session) endUpload(ctx context.Context, c *call) (any, error) {
	u, err := sess.takeUploadOf(c)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.size >= 0 && u.received != u.size {
		u.abortHeld(fmt.Errorf("short upload: %w", errUploadAborted))
		return nil, invalidf(`upload %s: %d bytes received of the announced %d; the upload was aborted and %s not changed`, u.id, u.received, u.size, u.path)
	}
	u.idle.Stop()
	u.pw.Close()
	<-u.done
	u.cancel()
	u.over = true
	u.turn.Broadcast()
	if u.err != nil {
		return nil, u.err
	}
	return toFileEntry(u.entry), nil
}

// abortUpload serves file:upload:abort {uploadId}: nothing is written.
func (sess *session) abortUpload(ctx context.Context, c *call) (any, error) {
	u, err := sess.takeUploadOf(c)
	if err != nil {
		return nil, err
	}
	u.abort(errUploadAborted)
	return emptyJSON{}, nil
}

// download is a chunked download in progress.
type download struct {
	id     string
	rc     io.ReadCloser
	cancel context.CancelFunc
	idle   *time.Timer
	chunk  int

	mu   sync.Mutex
	seq  int64
	eof  bool // the file was read to its end (and closed)
	once sync.Once
}

// release closes the file; the download may still answer pulls.
func (d *download) release() {
	d.once.Do(func() {
		d.rc.Close()
		d.cancel()
	})
}

func (d *download) close() {
	d.idle.Stop()
	d.release()
}

type downloadBeginPayload struct {
	SandboxID string `json:"sandboxId"`
	Path      string `json:"path"`
	ChunkSize int    `json:"chunkSize"`
}

func (p *downloadBeginPayload) sandbox() string { return p.SandboxID }

type downloadRef struct {
	DownloadID string `json:"downloadId"`
}

// beginDownload serves file:download:begin: it opens the file and answers
// {downloadId, size, chunkSize, entry}.
func (sess *session) beginDownload(ctx context.Context, c *call) (any, error) {
	var p downloadBeginPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	chunk := p.ChunkSize
	switch {
	case chunk == 0:
		chunk = defaultChunk
	case chunk < 1 || chunk > maxChunk:
		return nil, invalidf(`field "chunkSize": must be 1-%d, got %d`, maxChunk, chunk)
	}
	id, err := transferID("down_")
	if err != nil {
		return nil, err
	}
	// Checked before the file is opened, and again when it is registered.
	sess.xfer.mu.Lock()
	full := sess.xfer.count() >= maxTransfers
	sess.xfer.mu.Unlock()
	if full {
		return nil, errTooMany
	}
	// The reader lives past this request: its context is the session's.
	dctx, cancel := context.WithCancel(sess.ctx)
	entry, rc, err := sess.h.svc.OpenFile(dctx, sess.principal.Tenant, p.SandboxID, p.Path)
	if err != nil {
		cancel()
		return nil, err
	}
	d := &download{id: id, rc: rc, cancel: cancel, chunk: chunk}
	d.idle = time.AfterFunc(sess.h.limits.TransferIdle, func() {
		if sess.xfer.takeDownload(id) != nil {
			d.close()
		}
	})
	// Checked again: another begin may have taken the last place since.
	if err := addTransfer(&sess.xfer, &sess.xfer.downloads, id, d); err != nil {
		d.close()
		return nil, err
	}
	return map[string]any{"downloadId": id, "size": entry.Size, "chunkSize": chunk, "entry": toFileEntry(entry)}, nil
}

// downloadChunk serves file:download:chunk {downloadId}: the ack carries
// {seq, data: <binary>, eof}. The file is read only as the client asks,
// so a slow client slows the transfer down instead of filling memory.
func (sess *session) downloadChunk(ctx context.Context, c *call) (any, error) {
	var ref downloadRef
	if err := decodeObject("payload", c.payload, &ref); err != nil {
		return nil, err
	}
	d, err := findTransfer(&sess.xfer, &sess.xfer.downloads, "download", ref.DownloadID)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.idle.Reset(sess.h.limits.TransferIdle)
	seq := d.seq
	d.seq++
	if d.eof {
		// A pull sent before the client saw the end: nothing more.
		return binaryAck{"seq": seq, "data": []byte{}, "eof": true}, nil
	}
	buf := make([]byte, d.chunk)
	n, err := io.ReadFull(d.rc, buf)
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !eof {
		sess.xfer.takeDownload(d.id)
		d.close()
		return nil, err
	}
	if eof {
		// The agent connection goes now; the id stays (answering pulls
		// already in flight) until file:download:end or the idle timeout.
		d.eof = true
		d.release()
	}
	return binaryAck{"seq": seq, "data": buf[:n], "eof": eof}, nil
}

// endDownload serves file:download:end {downloadId}: the download stops
// early (ending a finished one is not an error).
func (sess *session) endDownload(ctx context.Context, c *call) (any, error) {
	var ref downloadRef
	if err := decodeObject("payload", c.payload, &ref); err != nil {
		return nil, err
	}
	if d := sess.xfer.takeDownload(ref.DownloadID); d != nil {
		d.close()
	}
	return emptyJSON{}, nil
}
