package sdbx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Watch change types (WatchEvent.Type).
const (
	WatchCreated  = "created"
	WatchModified = "modified" // content or metadata
	WatchDeleted  = "deleted"
	WatchRenamed  = "renamed"  // Path is the new path, OldPath the old one
	WatchOverflow = "overflow" // changes were lost (the client did not keep up); no Path
)

// WatchEvent is one change below a watched directory.
type WatchEvent struct {
	Type      string    `json:"type"`
	Path      string    `json:"path,omitempty"`
	OldPath   string    `json:"oldPath,omitempty"`
	IsDir     bool      `json:"isDir"`
	Timestamp time.Time `json:"-"`
}

// WatchOptions modify WatchDir.
type WatchOptions struct {
	// Recursive also watches every directory below, including new ones.
	Recursive bool
}

// DirWatch is a directory watch in progress (see WatchDir).
type DirWatch struct {
	// Events delivers the changes in order. It is closed when the watch
	// ends: after Close, when ctx ends, after the watched directory's own
	// "deleted" event, or on an error (see Err).
	Events <-chan WatchEvent

	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
	once   sync.Once
}

// Err returns why the watch ended once Events is closed: nil after Close,
// a cancelled ctx or the watched directory's deletion; a *SandboxError
// matching ErrConflict when the sandbox was deleted; a connection error
// when the server went away.
func (w *DirWatch) Err() error {
	<-w.done
	return w.err
}

// Close ends the watch and waits until Events is closed. It is safe to
// call more than once.
func (w *DirWatch) Close() error {
	w.once.Do(w.cancel)
	<-w.done
	return nil
}

// watchLine is one NDJSON line of GET .../files/watch.
type watchLine struct {
	WatchEvent
	TimestampMs int64      `json:"timestamp"`
	Error       *wireError `json:"error"`
}

// WatchDir watches the directory path of sandbox id and returns once the
// watch is in place: every change made after WatchDir returns arrives on
// Events. Read Events promptly: while it is not read, the sandbox keeps
// a bounded queue of changes and then reports an overflow event. A
// sandbox has at most 32 watches open (more fail with a *RateLimitError).
//
// A missing directory fails with a *SandboxError matching ErrNotFound, a
// path that is not a directory with ErrConflict ("not a directory").
func (c *Client) WatchDir(ctx context.Context, id, path string, opts WatchOptions) (*DirWatch, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	q := url.Values{"path": {path}}
	if opts.Recursive {
		q.Set("recursive", "true")
	}
	r := &request{
		method: http.MethodGet, path: []string{"sandboxes", id, "files", "watch"}, query: q,
		accept: ndjson, kind: opSandbox, sandboxID: id,
	}
	wctx, cancel := context.WithCancel(ctx)
	startCtx, stop := context.WithTimeout(wctx, c.timeout)
	// The start is bounded by the timeout; the stream by ctx only.
	var timedOut atomic.Bool
	timer := context.AfterFunc(startCtx, func() {
		if errors.Is(startCtx.Err(), context.DeadlineExceeded) {
			timedOut.Store(true)
			cancel()
		}
	})
	resp, err := c.send(wctx, r, nil)
	timer()
	stop()
	if err != nil {
		cancel()
		if timedOut.Load() || ctx.Err() != nil {
			return nil, c.contextError(ctx, r.op(), c.timeout)
		}
		return nil, err
	}
	events := make(chan WatchEvent)
	w := &DirWatch{Events: events, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(events)
		defer resp.Body.Close()
		w.err = c.readWatch(wctx, r, resp.Body, events)
	}()
	return w, nil
}

// readWatch delivers the stream's events until it ends.
func (c *Client) readWatch(ctx context.Context, r *request, body io.Reader, events chan<- WatchEvent) error {
	dec := json.NewDecoder(body)
	for {
		var l watchLine
		if err := dec.Decode(&l); err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return connectionError(r.op(), err)
		}
		if l.Type == "error" {
			return streamError(r, l.Error)
		}
		ev := l.WatchEvent
		ev.Timestamp = time.UnixMilli(l.TimestampMs).UTC()
		select {
		case events <- ev:
		case <-ctx.Done():
			return nil
		}
	}
}
