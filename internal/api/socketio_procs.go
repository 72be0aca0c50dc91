package api

import (
	"context"
	"fmt"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// Socket.IO events of background processes (process:*) and terminal
// sessions (pty:*). Attaching starts a follower that pushes output events
// to the socket until the process exits, the client detaches or the
// socket disconnects; the process itself is never touched by that.

// procEventPayload is the payload of the process:* events.
type procEventPayload struct {
	SandboxID string            `json:"sandboxId"`
	ProcessID string            `json:"processId"`
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	Envs      map[string]string `json:"envs"`
	Cwd       string            `json:"cwd"`
	Offset    int64             `json:"offset"`
	Data      string            `json:"data"`
	Encoding  string            `json:"encoding"`
	Close     bool              `json:"close"`
	Signal    string            `json:"signal"`
}

func (p *procEventPayload) sandbox() string { return p.SandboxID }

// ptyEventPayload is the payload of the pty:* events.
type ptyEventPayload struct {
	SandboxID string            `json:"sandboxId"`
	PtyID     string            `json:"ptyId"`
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	Envs      map[string]string `json:"envs"`
	Cwd       string            `json:"cwd"`
	Cols      *int              `json:"cols"`
	Rows      *int              `json:"rows"`
	Offset    int64             `json:"offset"`
	Data      string            `json:"data"`
	Encoding  string            `json:"encoding"`
	Signal    string            `json:"signal"`
}

func (p *ptyEventPayload) sandbox() string { return p.SandboxID }

// outputEvent is a pushed process:output or pty:output event.
type outputEvent struct {
	ProcessID string `json:"processId,omitempty"`
	PtyID     string `json:"ptyId,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Data      string `json:"data"`
	Offset    int64  `json:"offset"`
	End       int64  `json:"end"` // offset after the chunk (data is text: count bytes here)
	Lost      int64  `json:"lost,omitempty"`
}

// exitEvent is a pushed process:exit or pty:exit event (or, with Error,
// process:error / pty:error when following failed).
type exitEvent struct {
	ProcessID string           `json:"processId,omitempty"`
	PtyID     string           `json:"ptyId,omitempty"`
	ExitCode  *int             `json:"exitCode,omitempty"`
	End       int64            `json:"end"`
	Process   *sandbox.Process `json:"process,omitempty"`
	Error     *wireError       `json:"error,omitempty"`
}

// readResult is the ack of process:read.
type readResult struct {
	Chunks   []sandbox.ProcessChunk `json:"chunks"`
	End      int64                  `json:"end"`
	Lost     int64                  `json:"lost,omitempty"`
	Exited   bool                   `json:"exited"`
	ExitCode *int                   `json:"exitCode,omitempty"`
	Process  sandbox.Process        `json:"process"`
}

func (c *call) decodeProc(p *procEventPayload, needID bool) error {
	if err := c.decodeSandboxPayload(p); err != nil {
		return err
	}
	if needID && p.ProcessID == "" {
		return invalidf(`field "processId": required`)
	}
	if p.Offset < 0 {
		return invalidf(`field "offset": must not be negative, got %d`, p.Offset)
	}
	return nil
}

func (c *call) decodePTY(p *ptyEventPayload, needID bool) error {
	if err := c.decodeSandboxPayload(p); err != nil {
		return err
	}
	if needID && p.PtyID == "" {
		return invalidf(`field "ptyId": required`)
	}
	if p.Offset < 0 {
		return invalidf(`field "offset": must not be negative, got %d`, p.Offset)
	}
	return nil
}

// findProcess returns process id of list, or not_found naming what.
func findProcess(list []sandbox.Process, what, id, sandboxID string) (sandbox.Process, error) {
	for _, p := range list {
		if p.ID == id {
			return p, nil
		}
	}
	return sandbox.Process{}, fmt.Errorf("%s %q not found in sandbox %s: %w", what, id, sandboxID, errdefs.ErrNotFound)
}

// follower pushes one process's (or session's) output to a socket.
type follower struct{ cancel context.CancelFunc }

// follow starts (or restarts) the follower named key: run pushes events
// until it returns; the follower ends with the socket or detach.
func (sess *session) follow(key string, run func(ctx context.Context)) error {
	ctx, cancel := context.WithCancel(sess.ctx)
	f := &follower{cancel: cancel}
	sess.mu.Lock()
	if old := sess.attached[key]; old != nil {
		old.cancel()
	}
	if sess.attached == nil {
		sess.attached = map[string]*follower{}
	}
	sess.attached[key] = f
	sess.mu.Unlock()
	started := sess.h.spawn(func() {
		defer cancel()
		run(ctx)
		sess.mu.Lock()
		defer sess.mu.Unlock()
		if sess.attached[key] == f { // not replaced by a newer attach
			delete(sess.attached, key)
		}
	})
	if !started {
		cancel()
		return fmt.Errorf("server shutting down: %w", errdefs.ErrUnavailable)
	}
	return nil
}

// unfollow stops the follower named key, if any.
func (sess *session) unfollow(key string) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if f := sess.attached[key]; f != nil {
		f.cancel()
		delete(sess.attached, key)
	}
}

// push emits a pushed event, waiting while the connection's send window
// is full; it drops the event once ctx is done.
func (sess *session) push(ctx context.Context, event string, payload any) {
	if sess.window.wait(ctx) != nil {
		return
	}
	_ = sess.sock.Emit(event, payload)
}

// pushOutput follows output with read (ProcessOutput or PTYOutput) and
// pushes prefix+":output" events, then prefix+":exit" (or prefix+":error").
func (sess *session) pushOutput(ctx context.Context, prefix string, ids exitEvent, read func(ctx context.Context, onChunk func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error)) {
	end, err := read(ctx, func(c sandbox.ProcessChunk) {
		ev := outputEvent{ProcessID: ids.ProcessID, PtyID: ids.PtyID, Data: c.Data, Offset: c.Offset, End: c.Offset + int64(len(c.Data)), Lost: c.Lost}
		if prefix == "process" {
			ev.Stream = c.Stream
		}
		sess.push(ctx, prefix+":output", ev)
	})
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		we := toWireError(err)
		ids.Error = &we
		sess.push(ctx, prefix+":error", ids)
		return
	}
	if end.Process.Running {
		return
	}
	ids.ExitCode, ids.End, ids.Process = end.Process.ExitCode, end.End, &end.Process
	sess.push(ctx, prefix+":exit", ids)
}

func (sess *session) startProcess(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, false); err != nil {
		return nil, err
	}
	return sess.h.svc.StartProcess(ctx, sess.principal.Tenant, p.SandboxID, commandBody{Command: p.Command, Args: p.Args, Envs: p.Envs, Cwd: p.Cwd}.request())
}

func (sess *session) listProcesses(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, false); err != nil {
		return nil, err
	}
	list, err := sess.h.svc.ListProcesses(ctx, sess.principal.Tenant, p.SandboxID)
	if list == nil {
		list = []sandbox.Process{}
	}
	return procListJSON{Processes: list}, err
}

// readProcess serves process:read: the buffered output from offset.
func (sess *session) readProcess(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, true); err != nil {
		return nil, err
	}
	res := readResult{Chunks: []sandbox.ProcessChunk{}}
	end, err := sess.h.svc.ProcessOutput(ctx, sess.principal.Tenant, p.SandboxID, p.ProcessID, p.Offset, false, func(ch sandbox.ProcessChunk) {
		res.Chunks = append(res.Chunks, ch)
	})
	if err != nil {
		return nil, err
	}
	res.End, res.Lost, res.Process = end.End, end.Lost, end.Process
	res.Exited, res.ExitCode = !end.Process.Running, end.Process.ExitCode
	return res, nil
}

// attachProcess serves process:attach: it acks with the process and then
// pushes process:output events from offset, and process:exit.
func (sess *session) attachProcess(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, true); err != nil {
		return nil, err
	}
	tenant := sess.principal.Tenant
	list, err := sess.h.svc.ListProcesses(ctx, tenant, p.SandboxID)
	if err != nil {
		return nil, err
	}
	proc, err := findProcess(list, "process", p.ProcessID, p.SandboxID)
	if err != nil {
		return nil, err
	}
	err = sess.follow("process:"+p.ProcessID, func(fctx context.Context) {
		sess.pushOutput(fctx, "process", exitEvent{ProcessID: p.ProcessID}, func(ctx context.Context, on func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error) {
			return sess.h.svc.ProcessOutput(ctx, tenant, p.SandboxID, p.ProcessID, p.Offset, true, on)
		})
	})
	return proc, err
}

func (sess *session) detachProcess(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, true); err != nil {
		return nil, err
	}
	sess.unfollow("process:" + p.ProcessID)
	return struct{}{}, nil
}

func (sess *session) processStdin(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, true); err != nil {
		return nil, err
	}
	data, err := decodeInput(p.Data, p.Encoding)
	if err != nil {
		return nil, err
	}
	return sess.h.svc.WriteStdin(ctx, sess.principal.Tenant, p.SandboxID, p.ProcessID, data, p.Close)
}

func (sess *session) signalProcess(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, true); err != nil {
		return nil, err
	}
	return sess.h.svc.SignalProcess(ctx, sess.principal.Tenant, p.SandboxID, p.ProcessID, p.Signal)
}

func (sess *session) killProcess(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeProc(&p, true); err != nil {
		return nil, err
	}
	return sess.h.svc.KillProcess(ctx, sess.principal.Tenant, p.SandboxID, p.ProcessID)
}

func (sess *session) createPTY(ctx context.Context, c *call) (any, error) {
	var p ptyEventPayload
	if err := c.decodePTY(&p, false); err != nil {
		return nil, err
	}
	svc, err := sess.h.ptys()
	if err != nil {
		return nil, err
	}
	req := sandbox.PTYRequest{Command: p.Command, Args: p.Args, Env: p.Envs, Cwd: p.Cwd}
	if p.Cols != nil || p.Rows != nil {
		if p.Cols == nil || p.Rows == nil {
			return nil, invalidf(`fields "cols" and "rows": give both or neither`)
		}
		if err := sandbox.CheckTermSize(*p.Cols, *p.Rows, false); err != nil {
			return nil, err
		}
		req.Cols, req.Rows = *p.Cols, *p.Rows
	}
	return svc.CreatePTY(ctx, sess.principal.Tenant, p.SandboxID, req)
}

func (sess *session) listPTYs(ctx context.Context, c *call) (any, error) {
	var p ptyEventPayload
	if err := c.decodePTY(&p, false); err != nil {
		return nil, err
	}
	svc, err := sess.h.ptys()
	if err != nil {
		return nil, err
	}
	list, err := svc.ListPTYs(ctx, sess.principal.Tenant, p.SandboxID)
	if list == nil {
		list = []sandbox.Process{}
	}
	return struct {
		PTYs []sandbox.Process `json:"ptys"`
	}{list}, err
}

// attachPTY serves pty:attach: it acks with the session and then pushes
// pty:output events from offset, and pty:exit.
func (sess *session) attachPTY(ctx context.Context, c *call) (any, error) {
	var p ptyEventPayload
	if err := c.decodePTY(&p, true); err != nil {
		return nil, err
	}
	svc, err := sess.h.ptys()
	if err != nil {
		return nil, err
	}
	tenant := sess.principal.Tenant
	s, err := findPTY(ctx, svc, tenant, p.SandboxID, p.PtyID)
	if err != nil {
		return nil, err
	}
	err = sess.follow("pty:"+p.PtyID, func(fctx context.Context) {
		sess.pushOutput(fctx, "pty", exitEvent{PtyID: p.PtyID}, func(ctx context.Context, on func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error) {
			return svc.PTYOutput(ctx, tenant, p.SandboxID, p.PtyID, p.Offset, true, on)
		})
	})
	return s, err
}

func (sess *session) detachPTY(ctx context.Context, c *call) (any, error) {
	var p ptyEventPayload
	if err := c.decodePTY(&p, true); err != nil {
		return nil, err
	}
	sess.unfollow("pty:" + p.PtyID)
	return struct{}{}, nil
}

// ptyCall decodes a pty event naming a session and runs op.
func (sess *session) ptyCall(ctx context.Context, c *call, op func(PTYService, *ptyEventPayload) (sandbox.Process, error)) (any, error) {
	var p ptyEventPayload
	if err := c.decodePTY(&p, true); err != nil {
		return nil, err
	}
	svc, err := sess.h.ptys()
	if err != nil {
		return nil, err
	}
	return op(svc, &p)
}

func (sess *session) ptyInput(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(ctx, c, func(svc PTYService, p *ptyEventPayload) (sandbox.Process, error) {
		data, err := decodeInput(p.Data, p.Encoding)
		if err != nil {
			return sandbox.Process{}, err
		}
		return svc.PTYInput(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID, data)
	})
}

func (sess *session) resizePTY(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(ctx, c, func(svc PTYService, p *ptyEventPayload) (sandbox.Process, error) {
		if p.Cols == nil || p.Rows == nil {
			return sandbox.Process{}, invalidf(`fields "cols" and "rows": required`)
		}
		return svc.ResizePTY(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID, *p.Cols, *p.Rows)
	})
}

func (sess *session) signalPTY(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(ctx, c, func(svc PTYService, p *ptyEventPayload) (sandbox.Process, error) {
		return svc.SignalPTY(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID, p.Signal)
	})
}

func (sess *session) killPTY(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(ctx, c, func(svc PTYService, p *ptyEventPayload) (sandbox.Process, error) {
		return svc.KillPTY(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID)
	})
}
