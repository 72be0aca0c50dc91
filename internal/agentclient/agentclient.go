// Package agentclient is the server's client for the sdbx agent protocol
// (package agentproto): it opens one connection per request through a
// Dialer, sends the request and turns the agent's events into callbacks,
// a final event and errors of the errdefs kinds.
package agentclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// maxEventLine bounds one event line: an output line of
// agentproto.MaxLine bytes may grow sixfold when JSON escapes it.
const maxEventLine = 6*agentproto.MaxLine + 4096

// eventBuffer is the read buffer of a request's connection. Most answers
// are a few short lines; readLine joins longer ones. (A buffer per request
// is allocated on the hot path: 64 KiB of it was most of the server's
// allocations under load.)
const eventBuffer = 4096

// Dialer opens a new connection to one agent (for example a runtime
// driver's Dial bound to a sandbox id).
type Dialer func(ctx context.Context) (net.Conn, error)

// Client talks to one agent. It is safe for concurrent use; every call
// uses its own connection.
type Client struct {
	dial Dialer
}

// New returns a client that reaches its agent through dial.
func New(dial Dialer) *Client { return &Client{dial: dial} }

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
		return "", fmt.Errorf("agent ping: unexpected final event %q: %w", ev.Type, errdefs.ErrInternal)
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
		return agentproto.Event{}, fmt.Errorf("agent exec: unexpected final event %q: %w", ev.Type, errdefs.ErrInternal)
	}
	return ev, nil
}

// do sends req on a new connection and reads events until a final one,
// which it returns. An error event becomes an error.
func (c *Client) do(ctx context.Context, req agentproto.Request, onEvent func(agentproto.Event)) (agentproto.Event, error) {
	if err := ctx.Err(); err != nil {
		return agentproto.Event{}, ctxError(err)
	}
	conn, err := c.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return agentproto.Event{}, ctxError(ctx.Err())
		}
		if errors.Is(err, errdefs.ErrUnavailable) {
			return agentproto.Event{}, fmt.Errorf("dial: %w", err)
		}
		return agentproto.Event{}, fmt.Errorf("dial: %w: %w", errdefs.ErrUnavailable, err)
	}
	defer conn.Close()
	// Closing the connection is the protocol's cancellation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	line, err := json.Marshal(req)
	if err != nil {
		return agentproto.Event{}, fmt.Errorf("encode request: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return agentproto.Event{}, broken(ctx, "send request", err)
	}

	br := bufio.NewReaderSize(conn, eventBuffer)
	var buf []byte
	for {
		buf, err = readLine(br, buf[:0], maxEventLine)
		if errors.Is(err, errdefs.ErrInternal) {
			return agentproto.Event{}, fmt.Errorf("read event: %w", err)
		}
		if err != nil {
			return agentproto.Event{}, broken(ctx, "read event", err)
		}
		var ev agentproto.Event
		if err := json.Unmarshal(buf, &ev); err != nil {
			return agentproto.Event{}, fmt.Errorf("decode event: %v: %w", err, errdefs.ErrInternal)
		}
		switch ev.Type {
		case agentproto.EventStarted, agentproto.EventStdout, agentproto.EventStderr:
			if onEvent != nil {
				onEvent(ev)
			}
		case agentproto.EventExit, agentproto.EventPong:
			return ev, nil
		case agentproto.EventError:
			return agentproto.Event{}, &AgentError{Code: ev.ErrCode, Message: ev.Message}
		default:
			// An event type from a newer agent: skip it.
		}
	}
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
