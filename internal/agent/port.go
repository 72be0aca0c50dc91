package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// portDialTimeout bounds the agent's dial of a port in the sandbox.
const portDialTimeout = 10 * time.Second

// checkPortRequest validates a port.connect request.
func checkPortRequest(req agentproto.Request) error {
	if req.Port == nil {
		return fmt.Errorf("port: missing for op %q: %w", req.Op, errdefs.ErrInvalidArgument)
	}
	if req.Port.Port < 1 || req.Port.Port > 65535 {
		return fmt.Errorf("port %d: must be between 1 and 65535: %w", req.Port.Port, errdefs.ErrInvalidArgument)
	}
	return nil
}

// servePort answers port.connect: it dials the port on the loopback
// interface, sends EventPortConnected and then copies bytes both ways
// between conn (br holds what the client sent after its request line) and
// the port until both directions have ended, or ctx ends.
func (a *Agent) servePort(ctx context.Context, req *agentproto.PortRequest, br *bufio.Reader, conn net.Conn) {
	w := newEventWriter(conn)
	dialCtx, cancel := context.WithTimeout(ctx, portDialTimeout)
	var d net.Dialer
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(req.Port))
	up, err := d.DialContext(dialCtx, "tcp", addr)
	cancel()
	if err != nil {
		_ = w.writeFinal(errorEvent(fmt.Errorf("nothing listens on port %d in the sandbox (%v): %w", req.Port, err, errdefs.ErrUnavailable)))
		return
	}
	defer up.Close()
	// Serve's shutdown closes conn; the port's side must end too.
	stop := context.AfterFunc(ctx, func() { up.Close() })
	defer stop()
	if err := w.writeFinal(agentproto.Event{Type: agentproto.EventPortConnected}); err != nil {
		return
	}
	a.log.Debug("port connected", "port", req.Port)
	pipe(conn, br, up)
}

// pipe copies client (read through br) to up and up to client. An end of
// input is passed on as a half-close; a failed copy closes both sides. It
// returns when both directions have ended.
func pipe(client net.Conn, br *bufio.Reader, up net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst net.Conn, src io.Reader) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err == nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
		}
		// A broken side, or one that cannot half-close, ends both.
		client.Close()
		up.Close()
	}
	go half(up, br)
	go half(client, up)
	wg.Wait()
}
