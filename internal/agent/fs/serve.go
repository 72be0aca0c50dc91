package fs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// IsOp reports whether op is one of the file ops.
func IsOp(op string) bool {
	switch op {
	case agentproto.OpFileWrite, agentproto.OpFileRead, agentproto.OpFileStat, agentproto.OpFileList,
		agentproto.OpFileRemove, agentproto.OpFileMkdir, agentproto.OpFileRename, agentproto.OpFileExists:
		return true
	}
	return false
}

// CheckRequest validates the request of the file op op. Paths are checked
// by the operations themselves.
func CheckRequest(op string, req *agentproto.FileRequest) error {
	if !IsOp(op) {
		return fmt.Errorf("op: %q is not a file op: %w", op, errdefs.ErrInvalidArgument)
	}
	if req == nil {
		return fmt.Errorf("file: missing for op %q: %w", op, errdefs.ErrInvalidArgument)
	}
	return nil
}

// listBatchBytes bounds the encoded entries of one EventFileEntries line
// (one entry adds at most ~30 KiB more), far below the clients' line limit.
const listBatchBytes = 256 << 10

// Serve answers one file request (see agentproto's file ops): r is what
// the client sends after its request line (the content of a write), w
// the connection to answer on. It returns after the final event, or when
// the client is gone; ending ctx must close the connection (the agent
// does), which ends a transfer in progress.
func (f *FS) Serve(ctx context.Context, op string, req *agentproto.FileRequest, r io.Reader, w io.Writer) {
	if err := CheckRequest(op, req); err != nil {
		_ = sendError(w, err)
		return
	}
	switch op {
	case agentproto.OpFileWrite:
		f.serveWrite(ctx, req, r, w)
	case agentproto.OpFileRead:
		f.serveRead(ctx, req, w)
	case agentproto.OpFileStat:
		e, err := f.Stat(ctx, req.Path)
		_ = sendEntry(w, e, err)
	case agentproto.OpFileMkdir:
		e, err := f.Mkdir(ctx, req.Path, req.CreateParents, req.Mode)
		_ = sendEntry(w, e, err)
	case agentproto.OpFileRename:
		e, err := f.Rename(ctx, req.Path, req.To, RenameOptions{Overwrite: req.Overwrite, CreateParents: req.CreateParents})
		_ = sendEntry(w, e, err)
	case agentproto.OpFileRemove:
		if err := f.Remove(ctx, req.Path, req.Recursive); err != nil {
			_ = sendError(w, err)
			return
		}
		_ = send(w, agentproto.Event{Type: agentproto.EventFileEnd})
	case agentproto.OpFileExists:
		ok, err := f.Exists(ctx, req.Path)
		if err != nil {
			_ = sendError(w, err)
			return
		}
		_ = send(w, agentproto.Event{Type: agentproto.EventFileExists, Exists: ok})
	case agentproto.OpFileList:
		f.serveList(ctx, req, w)
	}
}

// serveWrite reads the content chunks into Write. When Write fails for a
// reason other than the stream, it answers at once and then reads the
// remaining chunks, so the client never writes into a closed connection
// (which could lose the answer on TCP).
func (f *FS) serveWrite(ctx context.Context, req *agentproto.FileRequest, r io.Reader, w io.Writer) {
	cr := agentproto.NewChunkReader(r)
	e, err := f.Write(ctx, req.Path, cr, WriteOptions{CreateParents: req.CreateParents, Mode: req.Mode})
	var ce *ContentError
	if errors.As(err, &ce) {
		if errors.Is(ce.Err, agentproto.ErrChunkTooLarge) {
			_ = sendError(w, fmt.Errorf("write %s: %v: %w", req.Path, ce.Err, errdefs.ErrInvalidArgument))
		}
		// Otherwise the client went away: nobody to answer.
		return
	}
	if err != nil {
		if sendError(w, err) == nil {
			drain(cr)
		}
		return
	}
	_ = sendEntry(w, e, nil)
}

// drain reads and discards the rest of a chunk stream.
func drain(cr *agentproto.ChunkReader) {
	buf := make([]byte, agentproto.ChunkSize)
	for {
		if _, err := cr.Read(buf); err != nil {
			return
		}
	}
}

// serveRead sends the entry, the content in chunks, an empty chunk and the
// final event.
func (f *FS) serveRead(ctx context.Context, req *agentproto.FileRequest, w io.Writer) {
	e, file, err := f.Open(ctx, req.Path)
	if err != nil {
		_ = sendError(w, err)
		return
	}
	defer file.Close()
	if err := sendEntry(w, e, nil); err != nil {
		return
	}
	// A file of known size sends exactly that many bytes, so that the
	// entry's size can be announced (as an HTTP Content-Length) before
	// the content: bytes appended meanwhile are left out, a file that
	// shrank is an error.
	var content io.Reader = file
	left := e.Size
	if left >= 0 {
		content = io.LimitReader(file, left)
	}
	buf := make([]byte, agentproto.ChunkHeaderLen+agentproto.ChunkSize)
	for {
		n, rerr := content.Read(buf[agentproto.ChunkHeaderLen:])
		left -= int64(n)
		if errors.Is(rerr, io.EOF) && e.Size >= 0 && left > 0 {
			rerr = fmt.Errorf("read %s: the file shrank while it was read: %w", e.Path, errdefs.ErrConflict)
		}
		if n > 0 {
			agentproto.PutChunkHeader(buf, n)
			if _, err := w.Write(buf[:agentproto.ChunkHeaderLen+n]); err != nil {
				return // the client went away
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			agentproto.PutChunkHeader(buf, 0)
			if _, err := w.Write(buf[:agentproto.ChunkHeaderLen]); err == nil {
				_ = sendError(w, pathError("read", e.Path, rerr))
			}
			return
		}
	}
	end, _ := json.Marshal(agentproto.Event{Type: agentproto.EventFileEnd})
	msg := make([]byte, agentproto.ChunkHeaderLen, agentproto.ChunkHeaderLen+len(end)+1)
	agentproto.PutChunkHeader(msg, 0)
	_, _ = w.Write(append(append(msg, end...), '\n'))
}

// serveList sends the entries in batches of bounded size, then the final
// event.
func (f *FS) serveList(ctx context.Context, req *agentproto.FileRequest, w io.Writer) {
	entries, err := f.List(ctx, req.Path)
	if err != nil {
		_ = sendError(w, err)
		return
	}
	head := `{"t":"` + agentproto.EventFileEntries + `","entries":[`
	line := []byte(head)
	n := 0
	flush := func() error {
		line = append(line, "]}\n"...)
		_, err := w.Write(line)
		line, n = append(line[:0], head...), 0
		return err
	}
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			_ = sendError(w, fmt.Errorf("list %s: %v: %w", req.Path, err, errdefs.ErrInternal))
			return
		}
		if n > 0 && len(line)+len(b) > listBatchBytes {
			if err := flush(); err != nil {
				return
			}
		}
		if n > 0 {
			line = append(line, ',')
		}
		line = append(line, b...)
		n++
	}
	if n > 0 {
		if err := flush(); err != nil {
			return
		}
	}
	_ = send(w, agentproto.Event{Type: agentproto.EventFileEnd})
}

// sendEntry sends e as the final EventFileEntry, or err as an error.
func sendEntry(w io.Writer, e agentproto.FileEntry, err error) error {
	if err != nil {
		return sendError(w, err)
	}
	return send(w, agentproto.Event{Type: agentproto.EventFileEntry, Entry: &e})
}

// sendError sends err as an EventError. A cancelled operation (the agent
// shutting down) is reported as unavailable.
func sendError(w io.Writer, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%v: the agent is shutting down: %w", err, errdefs.ErrUnavailable)
	}
	return send(w, agentproto.Event{Type: agentproto.EventError, ErrCode: errdefs.Code(err), Message: err.Error()})
}

// send writes ev as one JSON line.
func send(w io.Writer, ev agentproto.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ServeWatch answers file.watch (see agentproto.OpFileWatch): it sends
// EventFileWatching once the watch is in place, then the changes, until
// ctx ends (the caller cancels it when the client goes away) or the
// watched directory is gone (final EventFileEnd).
func (f *FS) ServeWatch(ctx context.Context, req *agentproto.FileRequest, w io.Writer) {
	if req == nil {
		_ = sendError(w, fmt.Errorf("file: missing for op %q: %w", agentproto.OpFileWatch, errdefs.ErrInvalidArgument))
		return
	}
	wt, err := f.Watch(ctx, req.Path, WatchOptions{Recursive: req.Recursive})
	if err != nil {
		_ = sendError(w, err)
		return
	}
	defer wt.Close()
	if err := send(w, agentproto.Event{Type: agentproto.EventFileWatching}); err != nil {
		return
	}
	bw := bufio.NewWriterSize(w, 32*1024)
	for {
		batch, err := wt.Next(ctx)
		for i := range batch {
			line, merr := json.Marshal(agentproto.Event{Type: agentproto.EventFileChange, Change: &batch[i]})
			if merr != nil {
				continue
			}
			if _, werr := bw.Write(append(line, '\n')); werr != nil {
				return
			}
		}
		if ferr := bw.Flush(); ferr != nil {
			return
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			_ = send(w, agentproto.Event{Type: agentproto.EventFileEnd})
			return
		case ctx.Err() != nil:
			return // the client left
		default:
			_ = sendError(w, err)
			return
		}
	}
}
