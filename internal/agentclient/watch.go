package agentclient

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// WatchDir starts watching the directory req.Path (req.Recursive applies)
// and returns once the agent's watch is in place. Ending ctx or calling
// Close ends the watch. Errors are those of the file ops (not_found,
// conflict "not a directory", ...).
func (c *Client) WatchDir(ctx context.Context, req agentproto.FileRequest) (*DirWatch, error) {
	fc, err := c.startFile(ctx, agentproto.OpFileWatch, req)
	if err != nil {
		return nil, err
	}
	ev, err := fc.next()
	if err == nil && ev.Type != agentproto.EventFileWatching {
		err = fmt.Errorf("agent %s: unexpected event %q: %w", agentproto.OpFileWatch, ev.Type, errdefs.ErrInternal)
	}
	if err != nil {
		fc.close()
		return nil, err
	}
	return &DirWatch{fc: fc}, nil
}

// DirWatch is a watch in progress. Next is not safe for concurrent use;
// Close may be called from any goroutine.
type DirWatch struct {
	fc   *fileConn
	once sync.Once
}

// Next returns the next change. It returns io.EOF after the watched
// directory went away (its "deleted" change came before), the agent's
// error, or an unavailable error when the connection broke (the sandbox
// stopped, Close was called, ctx ended).
func (w *DirWatch) Next() (agentproto.Change, error) {
	for {
		ev, err := w.fc.next()
		if err != nil {
			return agentproto.Change{}, err
		}
		switch ev.Type {
		case agentproto.EventFileChange:
			if ev.Change != nil {
				return *ev.Change, nil
			}
		case agentproto.EventFileEnd:
			return agentproto.Change{}, io.EOF
		}
		// An event type from a newer agent: skip it.
	}
}

// Close ends the watch.
func (w *DirWatch) Close() { w.once.Do(w.fc.close) }
