package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// agentConn is a connection to the agent with its read buffer, which
// stays with it while it idles in a Client's pool.
type agentConn struct {
	net.Conn
	br        *bufio.Reader
	idleSince time.Time // when it went back to the pool
}

// dialAgent opens a new connection. Errors wrap errdefs.ErrUnavailable
// (or are ctx's end) and start with "dial".
func (c *Client) dialAgent(ctx context.Context) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err == nil {
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, ctxError(ctx.Err())
	}
	if errors.Is(err, errdefs.ErrUnavailable) {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return nil, fmt.Errorf("dial: %w: %w", errdefs.ErrUnavailable, err)
}

// dialOp dials a connection of its own for op (a streaming request that
// is not pooled). A failure names op unless it is ctx's.
func (c *Client) dialOp(ctx context.Context, op string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError(err)
	}
	conn, err := c.dialAgent(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("agent %s: %w", op, err)
	}
	return conn, nil
}

// conn returns an idle connection of the pool (reused is set) or a new
// one.
func (c *Client) conn(ctx context.Context) (ac *agentConn, reused bool, err error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		ac = c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
	}
	c.mu.Unlock()
	if ac != nil {
		return ac, true, nil
	}
	conn, err := c.dialAgent(ctx)
	if err != nil {
		return nil, false, err
	}
	return &agentConn{Conn: conn, br: bufio.NewReaderSize(conn, eventBuffer)}, false, nil
}

// put returns a connection whose request is over to the pool, or closes
// it when the pool is full or closed.
func (c *Client) put(ac *agentConn) {
	c.mu.Lock()
	if !c.closed && len(c.idle) < c.maxIdle {
		ac.idleSince = time.Now()
		c.idle = append(c.idle, ac)
		ac = nil
		if c.pruner == nil {
			c.pruner = time.AfterFunc(c.idleTimeout, c.prune)
		}
	}
	c.mu.Unlock()
	if ac != nil {
		ac.Close()
	}
}

// prune closes the connections that idled for idleTimeout and comes back
// when the oldest of the others will have.
func (c *Client) prune() {
	c.mu.Lock()
	cutoff := time.Now().Add(-c.idleTimeout)
	n := 0
	for n < len(c.idle) && !c.idle[n].idleSince.After(cutoff) {
		n++
	}
	old := slices.Clone(c.idle[:n])
	c.idle = slices.Delete(c.idle, 0, n)
	if len(c.idle) > 0 && !c.closed {
		c.pruner.Reset(c.idle[0].idleSince.Sub(cutoff))
	} else {
		c.pruner = nil
	}
	c.mu.Unlock()
	for _, ac := range old {
		ac.Close()
	}
}

// dropIdle closes the idle connections.
func (c *Client) dropIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, ac := range idle {
		ac.Close()
	}
}

// Close closes the client's idle connections; requests in flight finish,
// and their connections are closed instead of kept. The client stays
// usable: later requests open a connection each. Close always returns
// nil.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.pruner != nil {
		c.pruner.Stop()
		c.pruner = nil
	}
	c.mu.Unlock()
	c.dropIdle()
	return nil
}

// IdleConns returns how many connections idle in the client's pool.
func (c *Client) IdleConns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}

// roundTrip sends req and reads its events: those for which streamed
// holds go to onEvent (when not nil), the first for which final holds is
// returned. An error event becomes an *AgentError; events of other types
// (from a newer agent) are skipped. Lines longer than limit are a
// protocol failure. Ending ctx closes the connection, which is the
// protocol's cancellation.
//
// A pooling client asks for keep-alive on the ops that allow it and keeps
// the connection when the agent's final event says so. A kept connection
// that turns out closed by the agent before it answered (an agent that
// restarted, or shut the connection down while it idled) is dropped and
// the request is sent on a new connection: the agent never saw it.
func (c *Client) roundTrip(ctx context.Context, req agentproto.Request, limit int, final, streamed func(string) bool, onEvent func(agentproto.Event)) (agentproto.Event, error) {
	if err := ctx.Err(); err != nil {
		return agentproto.Event{}, ctxError(err)
	}
	req.KeepAlive = c.maxIdle > 0 && agentproto.KeepAliveOp(req.Op)
	buf := c.lineBuf()
	defer c.putLineBuf(buf)
	// Encode writes what json.Marshal gives, and the newline.
	if err := json.NewEncoder(buf).Encode(req); err != nil {
		return agentproto.Event{}, fmt.Errorf("encode request: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	line := buf.Bytes()
	for {
		ac, reused, err := c.conn(ctx)
		if err != nil {
			return agentproto.Event{}, err
		}
		ev, unanswered, err := c.send(ctx, ac, line, limit, final, streamed, onEvent)
		if err != nil && reused && unanswered && ctx.Err() == nil {
			// The other idle connections likely went the same way.
			c.dropIdle()
			continue
		}
		return ev, err
	}
}

// lineBuf returns an empty buffer for a request line.
func (c *Client) lineBuf() *bytes.Buffer {
	if b, ok := c.lines.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

// putLineBuf keeps b for a later request, unless a large request made it
// large.
func (c *Client) putLineBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledLine {
		c.lines.Put(b)
	}
}

// maxPooledLine bounds the request buffers a Client keeps.
const maxPooledLine = 16 << 10

// send runs one request on ac (see roundTrip) and then pools or closes
// ac. unanswered reports a failure before any byte of an answer arrived.
func (c *Client) send(ctx context.Context, ac *agentConn, line []byte, limit int, final, streamed func(string) bool, onEvent func(agentproto.Event)) (ev agentproto.Event, unanswered bool, err error) {
	stop := context.AfterFunc(ctx, func() { ac.Close() })
	keep := false
	defer func() {
		// stop fails when ctx's end closed the connection meanwhile.
		if stop() && keep {
			c.put(ac)
			return
		}
		ac.Close()
	}()

	if _, err := ac.Write(line); err != nil {
		return ev, closedByPeer(err), broken(ctx, "send request", err)
	}
	for first := true; ; first = false {
		buf, err := readLineInPlace(ac.br, limit)
		if err != nil {
			if errors.Is(err, errdefs.ErrInternal) {
				return ev, false, fmt.Errorf("read event: %w", err)
			}
			return ev, first && len(buf) == 0 && closedByPeer(err), broken(ctx, "read event", err)
		}
		if ev, err = decodeEvent(buf); err != nil {
			return ev, false, fmt.Errorf("decode event: %v: %w", err, errdefs.ErrInternal)
		}
		switch {
		case ev.Type == agentproto.EventError:
			// Nothing may follow a final event on a kept connection.
			keep = ev.KeepAlive && ac.br.Buffered() == 0
			return agentproto.Event{}, false, &AgentError{Code: ev.ErrCode, Message: ev.Message}
		case final(ev.Type):
			keep = ev.KeepAlive && ac.br.Buffered() == 0
			return ev, false, nil
		case streamed(ev.Type) && onEvent != nil:
			onEvent(ev)
		}
	}
}

// closedByPeer reports whether err says that the other end had closed the
// connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
