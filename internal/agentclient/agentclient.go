// Package agentclient is the server's client for the sdbx agent protocol
// (package agentproto): it opens connections through a Dialer, sends
// requests and turns the agent's events into callbacks, a final event and
// errors of the errdefs kinds. A client made by NewPooled keeps a few
// connections open between requests (agentproto keep-alive); one made by
// New uses a connection per request.
package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// maxEventLine bounds one event line: an output line of
// agentproto.MaxLine bytes may grow sixfold when JSON escapes it.
const maxEventLine = 6*agentproto.MaxLine + 4096

// eventBuffer is the read buffer of a connection (it stays with a kept
// connection). Most answers are a few short lines; readLine joins longer
// ones. (64 KiB per request was once most of the server's allocations
// under load.)
const eventBuffer = 4096

// Dialer opens a new connection to one agent (for example a runtime
// driver's Dial bound to a sandbox id).
type Dialer func(ctx context.Context) (net.Conn, error)

// Client talks to one agent. It is safe for concurrent use; a connection
// carries one request at a time, so concurrent requests use separate
// connections.
type Client struct {
	dial Dialer
	// maxIdle bounds the connections kept open between requests; 0
	// means none (a connection per request).
	maxIdle int

	// idleTimeout closes a connection that idled this long in the pool.
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   []*agentConn // kept-alive connections, most recent last
	closed bool         // set by Close: no more connections are kept
	pruner *time.Timer  // closes idle connections past idleTimeout; nil when none idle

	lines sync.Pool // *bytes.Buffer for request lines (see lineBuf)
}

// New returns a client that reaches its agent through dial, with a new
// connection for every request.
func New(dial Dialer) *Client { return &Client{dial: dial} }

// NewPooled returns a client that reaches its agent through dial and keeps
// up to maxIdle connections open between requests: ping, exec and the
// context ops reuse them when the agent supports keep-alive (an older
// agent closes each connection, and the client simply dials again).
// Close the client when its agent goes away.
func NewPooled(dial Dialer, maxIdle int) *Client {
	return &Client{dial: dial, maxIdle: max(maxIdle, 0), idleTimeout: DefaultIdleTimeout}
}

// DefaultIdleTimeout is how long a pooled connection may idle before the
// client closes it, so that sandboxes nobody uses hold no connections.
const DefaultIdleTimeout = 90 * time.Second

// SetIdleTimeout changes how long a pooled connection may idle (d > 0).
// Call it before the client's first request.
func (c *Client) SetIdleTimeout(d time.Duration) {
	if d > 0 {
		c.idleTimeout = d
	}
}

// Ping checks that the agent answers and returns its version.
//
// Errors wrap errdefs.ErrUnavailable when the agent cannot be reached or
// the connection breaks, errdefs.ErrTimeout when ctx's deadline passes,
// and the kind of the agent's error event otherwise.
func (c *Client) Ping(ctx context.Context) (string, error) {
	ev, err := c.do(ctx, agentproto.Request{Op: agentproto.OpPing}, nil)
	if err != nil {
		return "", fmt.Errorf("agent ping: %w", err)
	}
	if ev.Type != agentproto.EventPong {
		return "", unexpected(agentproto.OpPing, ev)
	}
	return ev.Version, nil
}

// Exec runs a command in the agent. onEvent (which may be nil) is called
// for every started, stdout and stderr event, in order, from the calling
// goroutine; a slow onEvent slows the command down rather than buffering
// its output. Exec returns the final exit event; a non-zero exit code is
// not an error.
//
// Errors wrap the kind of the agent's error event (errdefs.ErrNotFound for
// a missing executable or working directory, errdefs.ErrInvalidArgument for
// a malformed request, ...) with the agent's message;
// errdefs.ErrUnavailable when the agent cannot be reached or the connection
// breaks before the final event; errdefs.ErrTimeout (and
// context.DeadlineExceeded) when ctx's deadline passes, and
// context.Canceled when ctx is cancelled. Ending ctx closes the connection,
// which makes the agent kill the command's process group.
func (c *Client) Exec(ctx context.Context, req agentproto.ExecRequest, onEvent func(agentproto.Event)) (agentproto.Event, error) {
	ev, err := c.do(ctx, agentproto.Request{Op: agentproto.OpExec, Exec: &req}, onEvent)
	if err != nil {
		return agentproto.Event{}, fmt.Errorf("agent exec: %w", err)
	}
	if ev.Type != agentproto.EventExit {
		return agentproto.Event{}, unexpected(agentproto.OpExec, ev)
	}
	return ev, nil
}

// do runs ping or exec: started and output events go to onEvent, the
// exit or pong event is returned.
func (c *Client) do(ctx context.Context, req agentproto.Request, onEvent func(agentproto.Event)) (agentproto.Event, error) {
	final := func(t string) bool { return t == agentproto.EventExit || t == agentproto.EventPong }
	streamed := func(t string) bool {
		return t == agentproto.EventStarted || t == agentproto.EventStdout || t == agentproto.EventStderr
	}
	return c.roundTrip(ctx, req, maxEventLine, final, streamed, onEvent)
}

// unexpected is the error of a final event that op does not end with.
func unexpected(op string, ev agentproto.Event) error {
	return fmt.Errorf("agent %s: unexpected final event %q: %w", op, ev.Type, errdefs.ErrInternal)
}

// readLine appends the next line of br (without its newline) to buf. A
// line longer than limit is a protocol failure: the error wraps
// errdefs.ErrInternal.
func readLine(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > limit {
			return buf, fmt.Errorf("event line longer than %d bytes: %w", limit, errdefs.ErrInternal)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return buf, io.ErrUnexpectedEOF
		default:
			return buf, err
		}
	}
}

// readLineInPlace is readLine for a line that is used up before the next
// read from br: when the whole line already sits in br's buffer (the
// usual case) it is returned in place, without a copy.
func readLineInPlace(br *bufio.Reader, limit int) ([]byte, error) {
	if _, err := br.Peek(1); err != nil {
		// What readLine answers for a read that fails before any byte.
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b, _ := br.Peek(br.Buffered())
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < limit {
		_, _ = br.Discard(i + 1)
		return b[:i], nil
	}
	return readLine(br, nil, limit)
}

// broken explains a failed read or write: ctx's end when it caused it,
// else an unavailable agent.
func broken(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctxError(ctx.Err())
	}
	return fmt.Errorf("%s: connection to agent broke before the final event: %v: %w", what, err, errdefs.ErrUnavailable)
}

// ctxError wraps a context error; a passed deadline is a timeout.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", errdefs.ErrTimeout, err)
	}
	return err
}

// AgentError is an error event sent by the agent. It wraps the errdefs
// sentinel of its code, so errors.Is(err, errdefs.ErrNotFound) works.
type AgentError struct {
	Code    string // errdefs wire code
	Message string // the agent's explanation
}

func (e *AgentError) Error() string { return e.Message }

// Unwrap returns the errdefs sentinel of the error's code.
func (e *AgentError) Unwrap() error { return errdefs.FromCode(e.Code) }
