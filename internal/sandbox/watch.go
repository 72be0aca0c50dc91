package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// MaxWatchesPerSandbox bounds the directory watches open on one sandbox.
const MaxWatchesPerSandbox = 32

// Watch change types (see WatchEvent).
const (
	WatchCreated  = agentproto.ChangeCreated
	WatchModified = agentproto.ChangeModified
	WatchDeleted  = agentproto.ChangeDeleted
	WatchRenamed  = agentproto.ChangeRenamed
	WatchOverflow = agentproto.ChangeOverflow
)

// WatchEvent is one change below a watched directory. Renamed has the new
// Path and the OldPath; Overflow (no path) says changes were lost because
// the client did not keep up.
type WatchEvent struct {
	Type      string
	Path      string
	OldPath   string
	IsDir     bool
	Timestamp time.Time
}

// WatchOptions modify WatchDir.
type WatchOptions struct {
	// Recursive also watches the directories below, including new ones.
	Recursive bool
}

// Watch is a directory watch in progress (see WatchDir).
type Watch struct {
	s       *Service
	id      string
	dw      *agentclient.DirWatch
	ctx     context.Context // ends with the caller's ctx or the sandbox
	release func()
	once    sync.Once
}

// WatchDir starts watching a directory of the sandbox and returns once
// the watch is in place: every change made afterwards is reported by
// Next. The watch ends when ctx ends, Close is called, the directory is
// deleted or the sandbox is deleted.
//
// Errors: errdefs.ErrInvalidArgument for a missing or bad path,
// errdefs.ErrNotFound (no such sandbox or directory), errdefs.ErrConflict
// when the path is not a directory ("not a directory") or the sandbox is
// not running, errdefs.ErrRateLimited when the sandbox has
// MaxWatchesPerSandbox watches open.
func (s *Service) WatchDir(ctx context.Context, tenant, sandboxID, path string, opts WatchOptions) (*Watch, error) {
	if path == "" {
		return nil, invalid("path: required")
	}
	if _, err := s.running(ctx, tenant, sandboxID); err != nil {
		return nil, err
	}
	wctx, release, err := s.trackWatch(ctx, sandboxID)
	if err != nil {
		return nil, err
	}
	dw, err := s.agent(sandboxID).WatchDir(wctx, agentproto.FileRequest{Path: path, Recursive: opts.Recursive})
	if err != nil {
		err = s.watchError(wctx, sandboxID, err)
		release()
		return nil, err
	}
	return &Watch{s: s, id: sandboxID, dw: dw, ctx: wctx, release: release}, nil
}

// Next returns the next change. It returns io.EOF once the watched
// directory is gone (after its "deleted" change), errdefs.ErrConflict
// when the sandbox was deleted, and ctx's error or
// errdefs.ErrUnavailable when the watch ended otherwise.
func (w *Watch) Next() (WatchEvent, error) {
	c, err := w.dw.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return WatchEvent{}, io.EOF
		}
		return WatchEvent{}, w.s.watchError(w.ctx, w.id, err)
	}
	return WatchEvent{Type: c.Type, Path: c.Path, OldPath: c.OldPath, IsDir: c.IsDir, Timestamp: time.UnixMilli(c.TS).UTC()}, nil
}

// Close ends the watch. It is safe to call more than once and
// concurrently with Next (which then fails).
func (w *Watch) Close() {
	w.once.Do(func() {
		w.dw.Close()
		w.release()
	})
}

// watchError explains why a watch ended.
func (s *Service) watchError(ctx context.Context, id string, err error) error {
	if ctx.Err() != nil {
		if err := s.interrupted(id, "the watch was stopped", "while it was watched"); err != nil {
			return err
		}
		return ctx.Err()
	}
	return err
}

// trackWatch counts a watch of the sandbox (up to MaxWatchesPerSandbox)
// without making it "running", and returns a context that also ends when
// the sandbox is deleted.
func (s *Service) trackWatch(ctx context.Context, id string) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.liveFor(id)
	if l.watches >= MaxWatchesPerSandbox {
		return nil, nil, fmt.Errorf("sandbox %s has %d directory watches open, the most it may have; stop one first: %w",
			id, MaxWatchesPerSandbox, errdefs.ErrRateLimited)
	}
	l.watches++
	ctx, cancel := context.WithCancel(ctx)
	return ctx, s.bind(l, ctx, cancel, func() {
		l.watches--
		s.dropLive(id, l)
	}), nil
}
