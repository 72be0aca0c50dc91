package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// DialPort connects to port on the loopback interface of the caller's
// running sandbox (a process listening on 127.0.0.1 or 0.0.0.0 there),
// tunnelled through its agent. ctx bounds only the dial; the returned
// connection lives until it is closed.
//
// Errors: errdefs.ErrInvalidArgument for a port outside 1-65535,
// errdefs.ErrNotFound for a sandbox of another tenant, errdefs.ErrConflict
// when it is not running, errdefs.ErrUnavailable when nothing listens on
// the port (or the agent cannot be reached).
func (s *Service) DialPort(ctx context.Context, tenant, sandboxID string, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: must be between 1 and 65535: %w", port, errdefs.ErrInvalidArgument)
	}
	if _, err := s.running(ctx, tenant, sandboxID); err != nil {
		return nil, err
	}
	conn, err := s.agent(sandboxID).DialPort(ctx, port)
	if err != nil {
		var agentErr *agentclient.AgentError
		if errors.As(err, &agentErr) && errors.Is(err, errdefs.ErrUnavailable) {
			return nil, fmt.Errorf("nothing listens on port %d in sandbox %s: %w", port, sandboxID, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("port %d in sandbox %s: %w", port, sandboxID, err)
	}
	return conn, nil
}
