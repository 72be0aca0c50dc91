package api

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// Directory watches over Socket.IO: file:watch starts one (its changes
// come as file:event, each with the watchId), file:unwatch ends it, and
// file:watch:end says that one ended by itself (the directory or the
// sandbox was deleted). A socket's watches end when it disconnects.

type watchPayload struct {
	SandboxID string  `json:"sandboxId"`
	Path      string  `json:"path"`
	Recursive bool    `json:"recursive"`
	WatchID   *string `json:"watchId"`
}

func (p *watchPayload) sandbox() string { return p.SandboxID }

type unwatchPayload struct {
	WatchID string `json:"watchId"`
}

// watchEndJSON is the file:watch:end event.
type watchEndJSON struct {
	WatchID string     `json:"watchId"`
	Error   *wireError `json:"error,omitempty"`
}

// watchDir serves file:watch: the ack {watchId} comes once the watch is in
// place. A client-chosen watchId lets it listen before it asks, like a
// streamId; otherwise the server picks one.
func (sess *session) watchDir(ctx context.Context, c *call) (any, error) {
	var p watchPayload
	if err := c.decodeSandboxPayload(&p); err != nil {
		return nil, err
	}
	if err := requirePath(p.Path); err != nil {
		return nil, err
	}
	var id string
	if p.WatchID != nil {
		id = *p.WatchID
		if err := checkClientID("watchId", id); err != nil {
			return nil, err
		}
	} else {
		var err error
		if id, err = transferID("watch_"); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithCancel(sess.ctx)
	sess.mu.Lock()
	if sess.watches == nil {
		sess.watches = map[string]context.CancelFunc{}
	}
	if _, used := sess.watches[id]; used {
		sess.mu.Unlock()
		cancel()
		return nil, invalidf(`field "watchId": %q is already used by a watch of this connection`, id)
	}
	sess.watches[id] = cancel
	sess.mu.Unlock()
	forget := func() {
		cancel()
		sess.mu.Lock()
		delete(sess.watches, id)
		sess.mu.Unlock()
	}

	w, err := sess.h.startWatch(wctx, sess.principal.Tenant, p.SandboxID, p.Path, p.Recursive)
	if err != nil {
		forget()
		return nil, err
	}
	started := sess.h.spawn(func() {
		defer forget()
		defer w.Close()
		sess.pumpWatch(wctx, id, w)
	})
	if !started {
		w.Close()
		forget()
		return nil, fmt.Errorf("server shutting down: %w", errdefs.ErrUnavailable)
	}
	return map[string]any{"watchId": id}, nil
}

// pumpWatch emits the watch's changes until it ends, then file:watch:end
// unless the client ended it (file:unwatch, disconnect).
func (sess *session) pumpWatch(ctx context.Context, id string, w *sandbox.Watch) {
	stop := context.AfterFunc(ctx, w.Close)
	defer stop()
	for {
		ev, err := w.Next()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			end := watchEndJSON{WatchID: id}
			if !errors.Is(err, io.EOF) {
				we := toWireError(err)
				end.Error = &we
			}
			_ = sess.sock.Emit("file:watch:end", end)
			return
		}
		// Held back while the client does not read: the agent's bounded
		// queue then overflows, and says so.
		if sess.window.wait(ctx) != nil {
			return
		}
		_ = sess.sock.Emit("file:event", toWatchLine(id, ev))
	}
}

// unwatchDir serves file:unwatch {watchId}.
func (sess *session) unwatchDir(ctx context.Context, c *call) (any, error) {
	var p unwatchPayload
	if err := decodeObject("payload", c.payload, &p); err != nil {
		return nil, err
	}
	sess.mu.Lock()
	cancel, ok := sess.watches[p.WatchID]
	sess.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("watch %q: no such watch on this connection: %w", p.WatchID, errdefs.ErrNotFound)
	}
	cancel()
	return emptyJSON{}, nil
}
