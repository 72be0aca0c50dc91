package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// dirWatcher is the optional ability of a Service to watch directories
// (sandbox.Service has it).
type dirWatcher interface {
	WatchDir(ctx context.Context, tenant, sandboxID, path string, opts sandbox.WatchOptions) (*sandbox.Watch, error)
}

var _ dirWatcher = (*sandbox.Service)(nil)

// watchLine is one change of a watch, on both transports (Socket.IO adds
// the watchId).
type watchLine struct {
	WatchID   string `json:"watchId,omitempty"`
	Type      string `json:"type"`
	Path      string `json:"path,omitempty"`
	OldPath   string `json:"oldPath,omitempty"`
	IsDir     bool   `json:"isDir"`
	Timestamp int64  `json:"timestamp"`
}

func toWatchLine(watchID string, ev sandbox.WatchEvent) watchLine {
	return watchLine{WatchID: watchID, Type: ev.Type, Path: ev.Path, OldPath: ev.OldPath, IsDir: ev.IsDir, Timestamp: ev.Timestamp.UnixMilli()}
}

// startWatch starts a watch through the service's optional ability.
func (h *Handler) startWatch(ctx context.Context, tenant, id, path string, recursive bool) (*sandbox.Watch, error) {
	ws, ok := h.svc.(dirWatcher)
	if !ok {
		return nil, fmt.Errorf("watching directories is not available on this server: %w", errdefs.ErrUnavailable)
	}
	return ws.WatchDir(ctx, tenant, id, path, sandbox.WatchOptions{Recursive: recursive})
}

// watchDir serves GET .../files/watch?path=P&recursive=true: an NDJSON
// stream of changes whose 200 status is sent once the watch is in place.
// It ends when the client leaves, after the "deleted" line of the watched
// directory itself, or with an {"type":"error"} line (the sandbox was
// deleted).
func (h *Handler) watchDir(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	path, recursive, err := pathAndFlag(r.URL, "recursive")
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	watch, err := h.startWatch(r.Context(), p.Tenant, id, path, recursive)
	if err != nil {
		h.writeError(w, r, id, err)
		return
	}
	defer watch.Close()
	s := newNDJSONStream(w, r)
	defer s.close()
	s.open()
	for {
		ev, err := watch.Next()
		switch {
		case err == nil:
			s.send(toWatchLine("", ev))
			continue
		case errors.Is(err, io.EOF) || r.Context().Err() != nil:
		default:
			h.logError(opName(r), id, err)
			s.send(ndjsonError{Type: "error", Error: toWireError(err)})
		}
		return
	}
}
