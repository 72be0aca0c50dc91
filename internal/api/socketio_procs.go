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

// streamPayload is the payload of a process:* or pty:* event.
type streamPayload interface {
	sandboxPayload
	// target returns the id of the process (or session) the payload
	// names and the field that names it.
	target() (id, field string)
	from() int64 // the offset to read from
}

func (p *procEventPayload) target() (string, string) { return p.ProcessID, "processId" }
func (p *ptyEventPayload) target() (string, string)  { return p.PtyID, "ptyId" }
func (p *procEventPayload) from() int64              { return p.Offset }
func (p *ptyEventPayload) from() int64               { return p.Offset }

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

// decodeStream decodes a process:* or pty:* payload into p; with needID
// it must name its process (or session).
func (c *call) decodeStream(p streamPayload, needID bool) error {
	if err := c.decodeSandboxPayload(p); err != nil {
		return err
	}
	if id, field := p.target(); needID && id == "" {
		return invalidf(`field %q: required`, field)
	}
	if off := p.from(); off < 0 {
		return invalidf(`field "offset": must not be negative, got %d`, off)
	}
	return nil
}

// streams holds what tells the process:* and pty:* events apart where
// they otherwise work alike.
type streams struct {
	prefix string // of the event names: "process" or "pty"
	what   string // names one in errors
	list   func(ctx context.Context, tenant, sandboxID string) ([]sandbox.Process, error)
	output func(ctx context.Context, tenant, sandboxID, id string, offset int64, follow bool, onChunk func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error)
}

// processStreams are the background processes' (process:*).
func processStreams(svc Service) streams {
	return streams{prefix: "process", what: "process", list: svc.ListProcesses, output: svc.ProcessOutput}
}

// ptyStreams are the terminal sessions' (pty:*).
func ptyStreams(svc PTYService) streams {
	return streams{prefix: "pty", what: "terminal session", list: svc.ListPTYs, output: svc.PTYOutput}
}

// followKey names the follower of process (or session) id, prefix being
// that of its events.
func followKey(prefix, id string) string { return prefix + ":" + id }

// all lists the processes (or sessions) of the sandbox, never nil.
func (s streams) all(ctx context.Context, tenant, sandboxID string) ([]sandbox.Process, error) {
	list, err := s.list(ctx, tenant, sandboxID)
	if list == nil {
		list = []sandbox.Process{}
	}
	return list, err
}

// find returns process (or session) id of the sandbox, or not_found.
func (s streams) find(ctx context.Context, tenant, sandboxID, id string) (sandbox.Process, error) {
	list, err := s.list(ctx, tenant, sandboxID)
	if err != nil {
		return sandbox.Process{}, err
	}
	for _, p := range list {
		if p.ID == id {
			return p, nil
		}
	}
	return sandbox.Process{}, fmt.Errorf("%s %q not found in sandbox %s: %w", s.what, id, sandboxID, errdefs.ErrNotFound)
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

// attach serves process:attach and pty:attach: it acks with the process
// (or session) p names and then pushes prefix+":output" events from the
// offset, and prefix+":exit".
func (sess *session) attach(ctx context.Context, s streams, p streamPayload) (any, error) {
	tenant, sandboxID, offset := sess.principal.Tenant, p.sandbox(), p.from()
	id, _ := p.target()
	proc, err := s.find(ctx, tenant, sandboxID, id)
	if err != nil {
		return nil, err
	}
	err = sess.follow(followKey(s.prefix, id), func(fctx context.Context) {
		sess.pushOutput(fctx, s, id, func(ctx context.Context, on func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error) {
			return s.output(ctx, tenant, sandboxID, id, offset, true, on)
		})
	})
	return proc, err
}

// detach serves process:detach and pty:detach (prefix names which); it
// needs no service, there is just a follower to stop.
func (sess *session) detach(c *call, prefix string, p streamPayload) (any, error) {
	if err := c.decodeStream(p, true); err != nil {
		return nil, err
	}
	id, _ := p.target()
	sess.unfollow(followKey(prefix, id))
	return struct{}{}, nil
}

// pushOutput follows the output of process (or session) id with read and
// pushes prefix+":output" events, then prefix+":exit" (or prefix+":error").
func (sess *session) pushOutput(ctx context.Context, s streams, id string, read func(ctx context.Context, onChunk func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error)) {
	ids := exitEvent{ProcessID: id}
	if s.prefix == "pty" {
		ids = exitEvent{PtyID: id}
	}
	end, err := read(ctx, func(c sandbox.ProcessChunk) {
		ev := outputEvent{ProcessID: ids.ProcessID, PtyID: ids.PtyID, Data: c.Data, Offset: c.Offset, End: c.Offset + int64(len(c.Data)), Lost: c.Lost}
		if s.prefix == "process" {
			ev.Stream = c.Stream
		}
		sess.push(ctx, s.prefix+":output", ev)
	})
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		we := toWireError(err)
		ids.Error = &we
		sess.push(ctx, s.prefix+":error", ids)
		return
	}
	if end.Process.Running {
		return
	}
	ids.ExitCode, ids.End, ids.Process = end.Process.ExitCode, end.End, &end.Process
	sess.push(ctx, s.prefix+":exit", ids)
}

func (sess *session) startProcess(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeStream(&p, false); err != nil {
		return nil, err
	}
	return sess.h.svc.StartProcess(ctx, sess.principal.Tenant, p.SandboxID, commandBody{Command: p.Command, Args: p.Args, Envs: p.Envs, Cwd: p.Cwd}.request())
}

func (sess *session) listProcesses(ctx context.Context, c *call) (any, error) {
	var p procEventPayload
	if err := c.decodeStream(&p, false); err != nil {
		return nil, err
	}
	list, err := processStreams(sess.h.svc).all(ctx, sess.principal.Tenant, p.SandboxID)
	return procListJSON{Processes: list}, err
}

// procCall decodes a process event naming a process and runs op.
func (sess *session) procCall(c *call, op func(*procEventPayload) (any, error)) (any, error) {
	var p procEventPayload
	if err := c.decodeStream(&p, true); err != nil {
		return nil, err
	}
	return op(&p)
}

// readProcess serves process:read: the buffered output from offset.
func (sess *session) readProcess(ctx context.Context, c *call) (any, error) {
	return sess.procCall(c, func(p *procEventPayload) (any, error) {
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
	})
}

func (sess *session) attachProcess(ctx context.Context, c *call) (any, error) {
	return sess.procCall(c, func(p *procEventPayload) (any, error) {
		return sess.attach(ctx, processStreams(sess.h.svc), p)
	})
}

func (sess *session) detachProcess(_ context.Context, c *call) (any, error) {
	return sess.detach(c, "process", &procEventPayload{})
}

func (sess *session) processStdin(ctx context.Context, c *call) (any, error) {
	return sess.procCall(c, func(p *procEventPayload) (any, error) {
		data, err := decodeInput(p.Data, p.Encoding)
		if err != nil {
			return nil, err
		}
		return sess.h.svc.WriteStdin(ctx, sess.principal.Tenant, p.SandboxID, p.ProcessID, data, p.Close)
	})
}

func (sess *session) signalProcess(ctx context.Context, c *call) (any, error) {
	return sess.procCall(c, func(p *procEventPayload) (any, error) {
		return sess.h.svc.SignalProcess(ctx, sess.principal.Tenant, p.SandboxID, p.ProcessID, p.Signal)
	})
}

func (sess *session) killProcess(ctx context.Context, c *call) (any, error) {
	return sess.procCall(c, func(p *procEventPayload) (any, error) {
		return sess.h.svc.KillProcess(ctx, sess.principal.Tenant, p.SandboxID, p.ProcessID)
	})
}

// ptyService decodes a pty event into p (with needID naming a session)
// and returns the terminal ability that serves it.
func (sess *session) ptyService(c *call, p *ptyEventPayload, needID bool) (PTYService, error) {
	if err := c.decodeStream(p, needID); err != nil {
		return nil, err
	}
	return sess.h.ptys()
}

func (sess *session) createPTY(ctx context.Context, c *call) (any, error) {
	var p ptyEventPayload
	svc, err := sess.ptyService(c, &p, false)
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
	svc, err := sess.ptyService(c, &p, false)
	if err != nil {
		return nil, err
	}
	list, err := ptyStreams(svc).all(ctx, sess.principal.Tenant, p.SandboxID)
	return struct {
		PTYs []sandbox.Process `json:"ptys"`
	}{list}, err
}

// ptyCall decodes a pty event naming a session and runs op.
func (sess *session) ptyCall(c *call, op func(PTYService, *ptyEventPayload) (any, error)) (any, error) {
	var p ptyEventPayload
	svc, err := sess.ptyService(c, &p, true)
	if err != nil {
		return nil, err
	}
	return op(svc, &p)
}

func (sess *session) attachPTY(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(c, func(svc PTYService, p *ptyEventPayload) (any, error) {
		return sess.attach(ctx, ptyStreams(svc), p)
	})
}

func (sess *session) detachPTY(_ context.Context, c *call) (any, error) {
	return sess.detach(c, "pty", &ptyEventPayload{})
}

func (sess *session) ptyInput(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(c, func(svc PTYService, p *ptyEventPayload) (any, error) {
		data, err := decodeInput(p.Data, p.Encoding)
		if err != nil {
			return nil, err
		}
		return svc.PTYInput(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID, data)
	})
}

func (sess *session) resizePTY(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(c, func(svc PTYService, p *ptyEventPayload) (any, error) {
		if p.Cols == nil || p.Rows == nil {
			return nil, invalidf(`fields "cols" and "rows": required`)
		}
		return svc.ResizePTY(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID, *p.Cols, *p.Rows)
	})
}

func (sess *session) signalPTY(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(c, func(svc PTYService, p *ptyEventPayload) (any, error) {
		return svc.SignalPTY(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID, p.Signal)
	})
}

func (sess *session) killPTY(ctx context.Context, c *call) (any, error) {
	return sess.ptyCall(c, func(svc PTYService, p *ptyEventPayload) (any, error) {
		return svc.KillPTY(ctx, sess.principal.Tenant, p.SandboxID, p.PtyID)
	})
}
