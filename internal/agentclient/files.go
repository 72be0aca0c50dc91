package agentclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// File operations. Errors of the agent come back as *AgentError with the
// agent's message ("write /workspace: is a directory") and its kind:
// errdefs.ErrNotFound, errdefs.ErrInvalidArgument (bad path or name),
// errdefs.ErrConflict (is a directory, not a directory, already exists,
// directory not empty), errdefs.ErrPermissionDenied. Connection failures
// wrap errdefs.ErrUnavailable, a passed deadline errdefs.ErrTimeout, a
// cancelled ctx context.Canceled; ending ctx closes the connection, which
// makes the agent abandon the operation (a write is then not applied).

// WriteFile streams content into the file req.Path (req.CreateParents and
// req.Mode apply) and returns the new file's entry once the agent has made
// it durable. Memory use is bounded whatever content's length: content is
// sent in chunks of agentproto.ChunkSize bytes. When the agent refuses the
// write before all content is sent (a bad path, a directory in the way),
// WriteFile stops reading content and returns the agent's error.
//
// A content read error aborts the write (the file stays as it was); the
// error wraps it, and errdefs.ErrInvalidArgument when it has no kind.
func (c *Client) WriteFile(ctx context.Context, req agentproto.FileRequest, content io.Reader) (agentproto.FileEntry, error) {
	if content == nil {
		content = eofReader{}
	}
	fc, err := c.startFile(ctx, agentproto.OpFileWrite, req)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	defer fc.close()

	type answer struct {
		ev  agentproto.Event
		err error
	}
	answers := make(chan answer, 1)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		ev, err := fc.final()
		answers <- answer{ev, err}
	}()

	contentErr := fc.sendContent(content, answered)
	if contentErr != nil {
		// Abort: the agent drops the temporary file when the stream breaks.
		fc.conn.Close()
	}
	a := <-answers
	var agentErr *AgentError
	if errors.As(a.err, &agentErr) {
		// The agent's refusal explains more than what followed it.
		return agentproto.FileEntry{}, a.err
	}
	if contentErr != nil {
		if ctx.Err() != nil {
			return agentproto.FileEntry{}, ctxError(ctx.Err())
		}
		if errdefs.Code(contentErr) == "internal" {
			return agentproto.FileEntry{}, fmt.Errorf("write %s: reading the content: %w: %w", req.Path, contentErr, errdefs.ErrInvalidArgument)
		}
		return agentproto.FileEntry{}, fmt.Errorf("write %s: reading the content: %w", req.Path, contentErr)
	}
	if a.err != nil {
		return agentproto.FileEntry{}, a.err
	}
	return entryOf(a.ev, agentproto.OpFileWrite)
}

// eofReader is empty content.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// sendContent sends content as chunks and the empty chunk. It stops early,
// without an error, when the agent answered (answered is closed) or the
// connection broke (the answer, or its absence, tells why). It returns
// content's read error.
func (fc *fileConn) sendContent(content io.Reader, answered <-chan struct{}) error {
	buf := make([]byte, agentproto.ChunkHeaderLen+agentproto.ChunkSize)
	for {
		select {
		case <-answered:
			return nil
		default:
		}
		n, err := io.ReadFull(content, buf[agentproto.ChunkHeaderLen:])
		if n > 0 {
			agentproto.PutChunkHeader(buf, n)
			if _, werr := fc.conn.Write(buf[:agentproto.ChunkHeaderLen+n]); werr != nil {
				return nil
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			agentproto.PutChunkHeader(buf, 0)
			_, _ = fc.conn.Write(buf[:agentproto.ChunkHeaderLen])
			return nil
		default:
			return err
		}
	}
}

// ReadFile opens the file at path for reading (symbolic links followed)
// and returns its entry and a reader of its content, streamed from the
// agent connection. The caller must Close the reader; closing it early
// ends the transfer. The reader returns exactly the entry's Size bytes
// (the size when the file was opened), or fails with a conflict error if
// the file shrank meanwhile; Size is -1 for files of /proc, /sys and the
// like, whose size is only known at their end.
func (c *Client) ReadFile(ctx context.Context, path string) (agentproto.FileEntry, *FileReader, error) {
	fc, err := c.startFile(ctx, agentproto.OpFileRead, agentproto.FileRequest{Path: path})
	if err != nil {
		return agentproto.FileEntry{}, nil, err
	}
	ev, err := fc.next()
	if err == nil && ev.Type != agentproto.EventFileEntry {
		err = fmt.Errorf("agent %s: unexpected event %q: %w", agentproto.OpFileRead, ev.Type, errdefs.ErrInternal)
	}
	if err != nil {
		fc.close()
		return agentproto.FileEntry{}, nil, err
	}
	e, err := entryOf(ev, agentproto.OpFileRead)
	if err != nil {
		fc.close()
		return agentproto.FileEntry{}, nil, err
	}
	return e, &FileReader{fc: fc, cr: agentproto.NewChunkReader(fc.br)}, nil
}

// FileReader streams a file's content from the agent. It is not safe for
// concurrent use.
type FileReader struct {
	fc   *fileConn
	cr   *agentproto.ChunkReader
	err  error // sticky: io.EOF at the end
	once sync.Once
}

var _ io.ReadCloser = (*FileReader)(nil)
var _ io.WriterTo = (*FileReader)(nil)

// Read reads content. It returns io.EOF once the agent has confirmed the
// end of the file, and the agent's error when reading failed part way.
func (r *FileReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.cr.Read(p)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		r.err = r.finish()
	case errors.Is(err, agentproto.ErrChunkTooLarge):
		r.err = fmt.Errorf("agent %s: %w: %w", agentproto.OpFileRead, err, errdefs.ErrInternal)
	default:
		r.err = r.fc.broken("read content", err)
	}
	return n, r.err
}

// finish reads the final event after the content: io.EOF, or the error.
func (r *FileReader) finish() error {
	ev, err := r.fc.next()
	if err != nil {
		return err
	}
	if ev.Type != agentproto.EventFileEnd {
		return unexpected(agentproto.OpFileRead, ev)
	}
	return io.EOF
}

// WriteTo copies the content to w in chunk-sized writes.
func (r *FileReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, agentproto.ChunkSize)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// errReaderClosed is returned by a FileReader's Read after Close.
var errReaderClosed = errors.New("file reader closed")

// Close closes the connection; a transfer still going on is abandoned.
// Read then fails.
func (r *FileReader) Close() error {
	r.once.Do(func() {
		r.fc.close()
		if r.err == nil {
			r.err = errReaderClosed
		}
	})
	return nil
}

// StatFile describes the entry at path (a symbolic link itself).
func (c *Client) StatFile(ctx context.Context, path string) (agentproto.FileEntry, error) {
	ev, err := c.fileCall(ctx, agentproto.OpFileStat, agentproto.FileRequest{Path: path}, nil)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	return entryOf(ev, agentproto.OpFileStat)
}

// ListFiles lists the directory at path, sorted by name.
func (c *Client) ListFiles(ctx context.Context, path string) ([]agentproto.FileEntry, error) {
	var entries []agentproto.FileEntry
	ev, err := c.fileCall(ctx, agentproto.OpFileList, agentproto.FileRequest{Path: path}, func(ev agentproto.Event) error {
		if len(entries)+len(ev.Entries) > agentproto.MaxListEntries {
			return fmt.Errorf("agent %s: more than %d entries: %w", agentproto.OpFileList, agentproto.MaxListEntries, errdefs.ErrInternal)
		}
		entries = append(entries, ev.Entries...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ev.Type != agentproto.EventFileEnd {
		return nil, unexpected(agentproto.OpFileList, ev)
	}
	if entries == nil {
		entries = []agentproto.FileEntry{}
	}
	return entries, nil
}

// RemoveFile removes the entry at path; a directory only when empty,
// unless recursive.
func (c *Client) RemoveFile(ctx context.Context, path string, recursive bool) error {
	ev, err := c.fileCall(ctx, agentproto.OpFileRemove, agentproto.FileRequest{Path: path, Recursive: recursive}, nil)
	if err != nil {
		return err
	}
	if ev.Type != agentproto.EventFileEnd {
		return unexpected(agentproto.OpFileRemove, ev)
	}
	return nil
}

// MakeDir creates the directory req.Path (req.CreateParents and req.Mode
// apply) and returns its entry.
func (c *Client) MakeDir(ctx context.Context, req agentproto.FileRequest) (agentproto.FileEntry, error) {
	ev, err := c.fileCall(ctx, agentproto.OpFileMkdir, req, nil)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	return entryOf(ev, agentproto.OpFileMkdir)
}

// MoveFile renames req.Path to req.To (req.Overwrite and
// req.CreateParents apply) and returns the entry at its new path.
func (c *Client) MoveFile(ctx context.Context, req agentproto.FileRequest) (agentproto.FileEntry, error) {
	ev, err := c.fileCall(ctx, agentproto.OpFileRename, req, nil)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	return entryOf(ev, agentproto.OpFileRename)
}

// FileExists reports whether path resolves to an entry (symbolic links
// followed).
func (c *Client) FileExists(ctx context.Context, path string) (bool, error) {
	ev, err := c.fileCall(ctx, agentproto.OpFileExists, agentproto.FileRequest{Path: path}, nil)
	if err != nil {
		return false, err
	}
	if ev.Type != agentproto.EventFileExists {
		return false, unexpected(agentproto.OpFileExists, ev)
	}
	return ev.Exists, nil
}

// fileCall sends a file request without content and returns its final
// event; onBatch (which may be nil) gets each EventFileEntries.
func (c *Client) fileCall(ctx context.Context, op string, req agentproto.FileRequest, onBatch func(agentproto.Event) error) (agentproto.Event, error) {
	fc, err := c.startFile(ctx, op, req)
	if err != nil {
		return agentproto.Event{}, err
	}
	defer fc.close()
	for {
		ev, err := fc.next()
		if err != nil {
			return agentproto.Event{}, err
		}
		if ev.Type == agentproto.EventFileEntries {
			if onBatch != nil {
				if err := onBatch(ev); err != nil {
					return agentproto.Event{}, err
				}
			}
			continue
		}
		if isFileFinal(ev.Type) {
			return ev, nil
		}
		// An event type from a newer agent: skip it.
	}
}

func isFileFinal(t string) bool {
	return t == agentproto.EventFileEntry || t == agentproto.EventFileEnd || t == agentproto.EventFileExists
}

// entryOf returns the entry of a final EventFileEntry.
func entryOf(ev agentproto.Event, op string) (agentproto.FileEntry, error) {
	if ev.Type != agentproto.EventFileEntry || ev.Entry == nil {
		return agentproto.FileEntry{}, unexpected(op, ev)
	}
	return *ev.Entry, nil
}

// fileConn is the connection of one file request.
type fileConn struct {
	ctx  context.Context
	op   string
	conn net.Conn
	br   *bufio.Reader
	stop func() bool
	buf  []byte
}

// startFile dials the agent and sends a file request.
func (c *Client) startFile(ctx context.Context, op string, req agentproto.FileRequest) (*fileConn, error) {
	conn, err := c.dialOp(ctx, op)
	if err != nil {
		return nil, err
	}
	fc := &fileConn{ctx: ctx, op: op, conn: conn, br: bufio.NewReaderSize(conn, 64*1024)}
	// Closing the connection is the protocol's cancellation.
	fc.stop = context.AfterFunc(ctx, func() { conn.Close() })
	line, err := json.Marshal(agentproto.Request{Op: op, File: &req})
	if err != nil {
		fc.close()
		return nil, fmt.Errorf("agent %s: encode request: %v: %w", op, err, errdefs.ErrInvalidArgument)
	}
	if _, err := conn.Write(append(line, '\n')); err != nil {
		fc.close()
		return nil, fc.broken("send request", err)
	}
	return fc, nil
}

// next reads the next event; an error event becomes an *AgentError.
func (fc *fileConn) next() (agentproto.Event, error) {
	var err error
	fc.buf, err = readLine(fc.br, fc.buf[:0], maxEventLine)
	if errors.Is(err, errdefs.ErrInternal) {
		return agentproto.Event{}, fmt.Errorf("agent %s: read event: %w", fc.op, err)
	}
	if err != nil {
		return agentproto.Event{}, fc.broken("read event", err)
	}
	var ev agentproto.Event
	if err := json.Unmarshal(fc.buf, &ev); err != nil {
		return agentproto.Event{}, fmt.Errorf("agent %s: decode event: %v: %w", fc.op, err, errdefs.ErrInternal)
	}
	if ev.Type == agentproto.EventError {
		return agentproto.Event{}, &AgentError{Code: ev.ErrCode, Message: ev.Message}
	}
	return ev, nil
}

// final reads events until a final one (batches are skipped).
func (fc *fileConn) final() (agentproto.Event, error) {
	for {
		ev, err := fc.next()
		if err != nil || isFileFinal(ev.Type) {
			return ev, err
		}
	}
}

// broken explains a failed read or write of the connection.
func (fc *fileConn) broken(what string, err error) error {
	return fmt.Errorf("agent %s: %w", fc.op, broken(fc.ctx, what, err))
}

func (fc *fileConn) close() {
	fc.stop()
	fc.conn.Close()
}
