package apitest

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// DialPort implements api.Service: like commands, ports are the host's,
// so it dials 127.0.0.1:port on the host once the sandbox is found.
func (s *Service) DialPort(ctx context.Context, tenant, sandboxID string, port int) (net.Conn, error) {
	if err := s.fail("DialPort", sandboxID); err != nil {
		return nil, err
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: must be between 1 and 65535: %w", port, errdefs.ErrInvalidArgument)
	}
	if _, err := s.Get(ctx, tenant, sandboxID); err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("nothing listens on port %d in sandbox %s: %w", port, sandboxID, errdefs.ErrUnavailable)
	}
	return conn, nil
}
