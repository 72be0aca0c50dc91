package agentclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// DialPort asks the agent to connect to port on the sandbox's loopback
// interface and returns the tunnelled connection: bytes written to it
// reach the port, bytes the port sends are read from it. ctx bounds only
// the dial and the agent's answer; the connection then lives until it is
// closed. CloseWrite half-closes it when the transport supports that.
//
// Errors: the agent's *AgentError (errdefs.ErrUnavailable when nothing
// listens on the port, errdefs.ErrInvalidArgument for a port outside
// 1-65535); errdefs.ErrUnavailable when the agent cannot be reached or
// the connection breaks first; errdefs.ErrTimeout when ctx's deadline
// passes, context.Canceled when ctx is cancelled.
func (c *Client) DialPort(ctx context.Context, port int) (net.Conn, error) {
	conn, err := c.dialOp(ctx, agentproto.OpPortConnect)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	tc, err := handshakePort(ctx, conn, port)
	if !stop() {
		// ctx ended and closed the connection meanwhile.
		conn.Close()
		return nil, ctxError(ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// handshakePort sends the request and reads the agent's answer.
func handshakePort(ctx context.Context, conn net.Conn, port int) (net.Conn, error) {
	op := agentproto.OpPortConnect
	line, err := json.Marshal(agentproto.Request{Op: op, Port: &agentproto.PortRequest{Port: port}})
	if err != nil {
		return nil, fmt.Errorf("agent %s: encode request: %v: %w", op, err, errdefs.ErrInvalidArgument)
	}
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("agent %s: %w", op, broken(ctx, "send request", err))
	}
	br := bufio.NewReaderSize(conn, 4096)
	buf, err := readLine(br, nil, maxEventLine)
	if errors.Is(err, errdefs.ErrInternal) {
		return nil, fmt.Errorf("agent %s: read event: %w", op, err)
	}
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", op, broken(ctx, "read event", err))
	}
	var ev agentproto.Event
	if err := json.Unmarshal(buf, &ev); err != nil {
		return nil, fmt.Errorf("agent %s: decode event: %v: %w", op, err, errdefs.ErrInternal)
	}
	switch ev.Type {
	case agentproto.EventPortConnected:
	case agentproto.EventError:
		return nil, &AgentError{Code: ev.ErrCode, Message: ev.Message}
	default:
		return nil, fmt.Errorf("agent %s: unexpected event %q: %w", op, ev.Type, errdefs.ErrInternal)
	}
	tc := &tunnelConn{Conn: conn}
	if n := br.Buffered(); n > 0 {
		// Bytes of the port that arrived with the answer.
		b, _ := br.Peek(n)
		tc.pending = append([]byte(nil), b...)
	}
	return tc, nil
}

// tunnelConn is the connection after the agent's answer: pending holds
// the port's bytes read along with the answer, returned before any more.
type tunnelConn struct {
	net.Conn
	pending []byte
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection: the port reads EOF.
func (c *tunnelConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("agent %s: the transport cannot half-close: %w", agentproto.OpPortConnect, errdefs.ErrInvalidArgument)
}
