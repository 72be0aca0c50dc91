package agentclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// maxContextLine bounds one event line of a context op: a rich result of
// up to agentproto.MaxResult bytes, with room for JSON escapes.
const maxContextLine = 2*agentproto.MaxResult + 1<<20

// CreateContext starts a code context (an interpreter that keeps its
// state between runs) and returns its description.
//
// Errors wrap errdefs.ErrConflict when the id is in use,
// errdefs.ErrInvalidArgument for a bad field, errdefs.ErrNotFound when
// the sandbox lacks the language's interpreter, and the connection errors
// of Exec.
func (c *Client) CreateContext(ctx context.Context, req agentproto.ContextCreateRequest) (agentproto.ContextInfo, error) {
	ev, err := c.contextCall(ctx, agentproto.Request{Op: agentproto.OpContextCreate, ContextCreate: &req}, nil)
	if err != nil {
		return agentproto.ContextInfo{}, err
	}
	if ev.Type != agentproto.EventContext || ev.Context == nil {
		return agentproto.ContextInfo{}, unexpected(agentproto.OpContextCreate, ev)
	}
	return *ev.Context, nil
}

// ExecContext runs code in a context. onEvent (which may be nil) gets the
// run's stdout, stderr, display and exception events in order, from the
// calling goroutine. The returned ContextDone says whether the run timed
// out and whether the context's state survived; an exception raised by
// the code is not an error.
//
// Errors wrap errdefs.ErrNotFound when the context does not exist (or was
// deleted during the run), and the connection errors of Exec. Ending ctx
// closes the connection, which interrupts the run (or takes it out of the
// context's queue).
func (c *Client) ExecContext(ctx context.Context, req agentproto.ContextExecRequest, onEvent func(agentproto.Event)) (agentproto.ContextDone, error) {
	ev, err := c.contextCall(ctx, agentproto.Request{Op: agentproto.OpContextExec, ContextExec: &req}, onEvent)
	if err != nil {
		return agentproto.ContextDone{}, err
	}
	if ev.Type != agentproto.EventDone || ev.Done == nil {
		return agentproto.ContextDone{}, unexpected(agentproto.OpContextExec, ev)
	}
	return *ev.Done, nil
}

// DeleteContext kills a context's interpreter and every process started
// from it, and returns the context's last description.
//
// Errors wrap errdefs.ErrNotFound when the context does not exist, and the
// connection errors of Exec.
func (c *Client) DeleteContext(ctx context.Context, id string) (agentproto.ContextInfo, error) {
	ev, err := c.contextCall(ctx, agentproto.Request{Op: agentproto.OpContextDelete, ContextDelete: &agentproto.ContextDeleteRequest{ID: id}}, nil)
	if err != nil {
		return agentproto.ContextInfo{}, err
	}
	if ev.Type != agentproto.EventContext || ev.Context == nil {
		return agentproto.ContextInfo{}, unexpected(agentproto.OpContextDelete, ev)
	}
	return *ev.Context, nil
}

// ListContexts returns the agent's contexts, sorted by id.
func (c *Client) ListContexts(ctx context.Context) ([]agentproto.ContextInfo, error) {
	ev, err := c.contextCall(ctx, agentproto.Request{Op: agentproto.OpContextList}, nil)
	if err != nil {
		return nil, err
	}
	if ev.Type != agentproto.EventContexts {
		return nil, unexpected(agentproto.OpContextList, ev)
	}
	return ev.Contexts, nil
}

// isContextFinal reports whether an event ends a context op.
func isContextFinal(t string) bool {
	return t == agentproto.EventDone || t == agentproto.EventContext || t == agentproto.EventContexts
}

// contextCall runs a context op: its streamed events (output lines, rich
// results, the exception) go to onEvent, its final event is returned.
func (c *Client) contextCall(ctx context.Context, req agentproto.Request, onEvent func(agentproto.Event)) (agentproto.Event, error) {
	streamed := func(t string) bool {
		return t == agentproto.EventStdout || t == agentproto.EventStderr ||
			t == agentproto.EventDisplay || t == agentproto.EventException
	}
	return c.exchange(ctx, req, isContextFinal, streamed, onEvent)
}

// exchange runs req (see roundTrip) with room for rich results; errors
// other than the agent's name the op.
func (c *Client) exchange(ctx context.Context, req agentproto.Request, final, streamed func(string) bool, onEvent func(agentproto.Event)) (agentproto.Event, error) {
	ev, err := c.roundTrip(ctx, req, maxContextLine, final, streamed, onEvent)
	var agentErr *AgentError
	if err != nil && !errors.As(err, &agentErr) {
		return ev, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	return ev, err
}
