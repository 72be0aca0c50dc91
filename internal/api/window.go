package api

import (
	"context"
	"sync"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// sendWindow bounds how much one Socket.IO connection queues for a slow
// client.
//
// Engine.IO keeps packets in an unbounded write buffer until its transport
// is writable again: the websocket has finished writing the previous batch
// (so a client that does not read stalls it through TCP), or the client
// has made its next long-poll request. sendWindow counts the bytes in that
// buffer, from the connection's "packetCreate" and "flush" events, and
// streamed output waits while the count is at or above the limit. The
// limit is soft: a line that starts below it is sent whole, and concurrent
// streams may each add one line.
type sendWindow struct {
	limit int64

	mu      sync.Mutex
	queued  int64
	sizes   map[*packet.Packet]int64 // packets in the write buffer
	changed chan struct{}            // closed (and replaced) when queued shrinks
}

// eventSource is the part of an Engine.IO socket sendWindow listens to.
type eventSource interface {
	On(event types.EventName, listeners ...types.EventListener) error
}

var _ eventSource = engine.Socket(nil)

// newSendWindow starts counting conn's write buffer. Packets created
// earlier are not counted.
func newSendWindow(conn eventSource, limit int64) *sendWindow {
	w := &sendWindow{limit: limit, sizes: map[*packet.Packet]int64{}, changed: make(chan struct{})}
	_ = conn.On("packetCreate", func(args ...any) {
		if p, ok := firstArg[*packet.Packet](args); ok {
			w.add(p)
		}
	})
	_ = conn.On("flush", func(args ...any) {
		if ps, ok := firstArg[[]*packet.Packet](args); ok {
			w.remove(ps)
		}
	})
	// The connection's listeners are dropped with the connection.
	return w
}

func firstArg[T any](args []any) (T, bool) {
	var zero T
	if len(args) == 0 {
		return zero, false
	}
	v, ok := args[0].(T)
	return v, ok
}

// packetSize is the payload length of p, plus one for framing.
func packetSize(p *packet.Packet) int64 {
	if l, ok := p.Data.(interface{ Len() int }); ok {
		return int64(l.Len()) + 1
	}
	return 1
}

func (w *sendWindow) add(p *packet.Packet) {
	n := packetSize(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sizes[p] = n
	w.queued += n
}

func (w *sendWindow) remove(ps []*packet.Packet) {
	w.mu.Lock()
	defer w.mu.Unlock()
	shrunk := false
	for _, p := range ps {
		if n, ok := w.sizes[p]; ok {
			delete(w.sizes, p)
			w.queued -= n
			shrunk = true
		}
	}
	if shrunk {
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// wait returns when the queued bytes are below the limit, or ctx's error
// when ctx ends first.
func (w *sendWindow) wait(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.queued < w.limit {
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// buffered is the number of bytes counted as queued (for tests).
func (w *sendWindow) buffered() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
}
