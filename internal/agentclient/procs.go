package agentclient

import (
	"context"
	"fmt"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// procCall sends a proc op and checks the final event's type.
func (c *Client) procCall(ctx context.Context, op string, req *agentproto.ProcRequest, want string, onEvent func(agentproto.Event)) (*agentproto.ProcPayload, error) {
	ev, err := c.procDo(ctx, agentproto.Request{Op: op, Proc: req}, onEvent)
	if err != nil {
		return nil, err
	}
	if ev.Type != want || ev.Proc == nil {
		return nil, unexpected(op, ev)
	}
	return ev.Proc, nil
}

// procDo runs a process op: EventProcOutput events go to onEvent, the
// final EventProc or EventProcs is returned.
func (c *Client) procDo(ctx context.Context, req agentproto.Request, onEvent func(agentproto.Event)) (agentproto.Event, error) {
	final := func(t string) bool { return t == agentproto.EventProc || t == agentproto.EventProcs }
	streamed := func(t string) bool { return t == agentproto.EventProcOutput }
	return c.exchange(ctx, req, final, streamed, onEvent)
}

// StartProcess starts a background process. Errors are those of Exec.
func (c *Client) StartProcess(ctx context.Context, req agentproto.ProcRequest) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpProcStart, &req)
}

// ListProcesses lists the background processes, oldest first.
func (c *Client) ListProcesses(ctx context.Context) ([]agentproto.ProcInfo, error) {
	return c.procList(ctx, agentproto.OpProcList)
}

func (c *Client) procList(ctx context.Context, op string) ([]agentproto.ProcInfo, error) {
	pl, err := c.procCall(ctx, op, nil, agentproto.EventProcs, nil)
	if err != nil {
		return nil, err
	}
	return pl.List, nil
}

// ProcessOutput streams the output of process id from offset to onChunk
// (each call gets one EventProcOutput payload; Lost is set on a chunk
// preceded by bytes no longer buffered). With follow it returns when the
// process has exited and all its output was delivered. The result's Info
// describes the process, End is where to resume, and Lost counts dropped
// bytes not reported with a chunk.
func (c *Client) ProcessOutput(ctx context.Context, id string, offset int64, follow bool, onChunk func(agentproto.ProcPayload)) (agentproto.ProcPayload, error) {
	return c.procOutput(ctx, agentproto.OpProcOutput, id, offset, follow, onChunk)
}

func (c *Client) procOutput(ctx context.Context, op, id string, offset int64, follow bool, onChunk func(agentproto.ProcPayload)) (agentproto.ProcPayload, error) {
	pl, err := c.procCall(ctx, op, &agentproto.ProcRequest{ID: id, Offset: offset, Follow: follow}, agentproto.EventProc, func(ev agentproto.Event) {
		if ev.Proc != nil && onChunk != nil {
			onChunk(*ev.Proc)
		}
	})
	if err != nil {
		return agentproto.ProcPayload{}, err
	}
	return *pl, nil
}

// WriteStdin writes data to process id's stdin, then closes it when close
// is set.
func (c *Client) WriteStdin(ctx context.Context, id string, data []byte, close bool) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpProcStdin, &agentproto.ProcRequest{ID: id, Data: data, Close: close})
}

// SignalProcess sends signal ("SIGTERM", "TERM", "15") to process id's
// group.
func (c *Client) SignalProcess(ctx context.Context, id, signal string) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpProcSignal, &agentproto.ProcRequest{ID: id, Signal: signal})
}

// KillProcess sends SIGKILL to process id's group.
func (c *Client) KillProcess(ctx context.Context, id string) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpProcKill, &agentproto.ProcRequest{ID: id})
}

func (c *Client) procInfo(ctx context.Context, op string, req *agentproto.ProcRequest) (agentproto.ProcInfo, error) {
	pl, err := c.procCall(ctx, op, req, agentproto.EventProc, nil)
	if err != nil {
		return agentproto.ProcInfo{}, err
	}
	if pl.Info == nil {
		return agentproto.ProcInfo{}, fmt.Errorf("agent %s: final event without info: %w", op, errdefs.ErrInternal)
	}
	return *pl.Info, nil
}

// CreatePTY starts a terminal session (agentproto.OpPTYCreate). Errors
// are those of Exec, and errdefs.ErrConflict when too many sessions run.
func (c *Client) CreatePTY(ctx context.Context, req agentproto.ProcRequest) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpPTYCreate, &req)
}

// ListPTYs lists the terminal sessions, oldest first.
func (c *Client) ListPTYs(ctx context.Context) ([]agentproto.ProcInfo, error) {
	return c.procList(ctx, agentproto.OpPTYList)
}

// PTYOutput streams terminal session id's output as ProcessOutput does.
func (c *Client) PTYOutput(ctx context.Context, id string, offset int64, follow bool, onChunk func(agentproto.ProcPayload)) (agentproto.ProcPayload, error) {
	return c.procOutput(ctx, agentproto.OpPTYOutput, id, offset, follow, onChunk)
}

// PTYInput writes data to terminal session id's terminal.
func (c *Client) PTYInput(ctx context.Context, id string, data []byte) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpPTYInput, &agentproto.ProcRequest{ID: id, Data: data})
}

// ResizePTY sets terminal session id's size.
func (c *Client) ResizePTY(ctx context.Context, id string, cols, rows int) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpPTYResize, &agentproto.ProcRequest{ID: id, Cols: cols, Rows: rows})
}

// SignalPTY sends signal to terminal session id's foreground process
// group.
func (c *Client) SignalPTY(ctx context.Context, id, signal string) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpPTYSignal, &agentproto.ProcRequest{ID: id, Signal: signal})
}

// KillPTY kills every process of terminal session id.
func (c *Client) KillPTY(ctx context.Context, id string) (agentproto.ProcInfo, error) {
	return c.procInfo(ctx, agentproto.OpPTYKill, &agentproto.ProcRequest{ID: id})
}
