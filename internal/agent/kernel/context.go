package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// errDeleted is the error of runs of a context deleted meanwhile.
var errDeleted = fmt.Errorf("context was deleted: %w", errdefs.ErrNotFound)

// fifo is a lock handed to its waiters in arrival order.
type fifo struct {
	mu      sync.Mutex
	held    bool
	waiters []chan struct{}
}

// lock waits for the lock until ctx ends or gone is closed.
func (f *fifo) lock(ctx context.Context, gone <-chan struct{}) error {
	f.mu.Lock()
	if !f.held {
		f.held = true
		f.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	f.waiters = append(f.waiters, ch)
	f.mu.Unlock()
	var err error
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-gone:
		err = errDeleted
	}
	f.mu.Lock()
	if i := slices.Index(f.waiters, ch); i >= 0 {
		f.waiters = slices.Delete(f.waiters, i, i+1)
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	// The lock was handed over meanwhile: pass it on.
	f.unlock()
	return err
}

// isHeld reports whether the lock is taken.
func (f *fifo) isHeld() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// unlock hands the lock to the first waiter, or frees it.
func (f *fifo) unlock() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiters) == 0 {
		f.held = false
		return
	}
	ch := f.waiters[0]
	f.waiters = f.waiters[1:]
	close(ch)
}

// kctx is one code context.
type kctx struct {
	m    *Manager
	lang *language
	info agentproto.ContextInfo // ID, Language, Cwd, CreatedAt
	env  map[string]string
	tag  string // value of tagVar in its processes
	// bytecode is the precompiled driver of the create request, if any.
	bytecode *agentproto.Bytecode

	turn fifo          // held by the run (or start) in progress
	gone chan struct{} // closed by close

	mu      sync.Mutex
	deleted bool
	drv     *driver // nil until started, and after a kill
	count   int     // runs so far
}

func (c *kctx) isDeleted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleted
}

// snapshot returns the context's description.
func (c *kctx) snapshot() agentproto.ContextInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := c.info
	info.ExecutionCount = c.count
	if c.drv != nil && c.drv.alive() {
		info.Pid = c.drv.pid
	}
	return info
}

// close kills the context's driver and processes. Safe to call twice.
func (c *kctx) close() {
	c.mu.Lock()
	if c.deleted {
		c.mu.Unlock()
		return
	}
	c.deleted = true
	d := c.drv
	c.mu.Unlock()
	close(c.gone)
	if d != nil {
		d.shutdown()
	}
	// Processes left by an earlier driver of the context.
	killContextProcs("/proc", 0, 0, c.tag)
}

// dropDriver forgets d after it was shut down.
func (c *kctx) dropDriver(d *driver) {
	c.mu.Lock()
	if c.drv == d {
		c.drv = nil
	}
	c.mu.Unlock()
}

// ensureDriver returns a ready driver, starting one when there is none or
// the last one died. lost describes how a driver that died between runs
// ended (its state is gone); it is empty otherwise. The caller holds the
// turn.
func (c *kctx) ensureDriver(ctx context.Context) (d *driver, lost string, err error) {
	c.mu.Lock()
	d = c.drv
	c.mu.Unlock()
	if d != nil {
		if d.alive() {
			return d, "", nil
		}
		lost = statusText(d.ws)
		c.m.log.Info("context interpreter exited between runs; restarting", "context_id", c.info.ID, "status", lost)
		d.shutdown()
		c.dropDriver(d)
	}
	d, err = c.startDriver(ctx)
	return d, lost, err
}

// startDriver starts a driver and waits until it is ready.
func (c *kctx) startDriver(ctx context.Context) (*driver, error) {
	exe, err := lookPath(c.lang.exe, c.env)
	if err != nil {
		return nil, err
	}
	startedAt := time.Now()
	d, err := spawnDriver(c.m.sp, c.m.log, c.lang, c.lang.scriptPayload(c.bytecode), exe, c.info.Cwd, c.env, c.tag, c.m.drain)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.deleted {
		c.mu.Unlock()
		d.shutdown()
		return nil, errDeleted
	}
	c.drv = d
	c.mu.Unlock()
	if err := d.waitReady(ctx, c.m.start); err != nil {
		d.shutdown()
		c.dropDriver(d)
		if c.isDeleted() {
			return nil, errDeleted
		}
		return nil, err
	}
	c.m.log.Debug("context interpreter started", "context_id", c.info.ID, "pid", d.pid, "took", time.Since(startedAt))
	return d, nil
}

// run executes one request; the caller holds the turn.
func (c *kctx) run(ctx context.Context, req agentproto.ContextExecRequest, sink Sink) (agentproto.ContextDone, error) {
	d, lost, err := c.ensureDriver(ctx)
	if err != nil {
		return agentproto.ContextDone{}, err
	}
	c.mu.Lock()
	c.count++
	n := c.count
	c.mu.Unlock()

	ex := newExecution(strconv.Itoa(n), sink)
	d.setCurrent(ex)
	defer func() {
		ex.finish()
		d.clearCurrent(ex)
	}()
	r := &runState{c: c, d: d, ex: ex, done: agentproto.ContextDone{ExecutionCount: n, StateKept: lost == ""}}
	if lost != "" {
		// The state the code may count on is gone: say so where it shows.
		ex.emit(agentproto.Event{
			Type: agentproto.EventStderr,
			Data: fmt.Sprintf("sdbx: the %s interpreter of this context had exited (%s) since the last run; it was restarted and its state is lost", c.lang.name, lost),
			TS:   time.Now().UnixMilli(),
		}, false)
	}

	line, err := json.Marshal(driverRequest{Type: "execute", ID: ex.id, Count: n, Code: req.Code, Env: req.Env})
	if err != nil {
		return agentproto.ContextDone{}, fmt.Errorf("encode request: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	// The driver reads requests whenever it is idle, which it is now; a
	// driver that does not read within the start timeout is broken.
	_ = d.reqW.SetWriteDeadline(time.Now().Add(c.m.start))
	if _, err := d.reqW.Write(append(line, '\n')); err != nil && d.alive() {
		c.m.log.Warn("context driver does not take requests; killing it", "context_id", c.info.ID, "err", err)
		d.kill() // ends the run as an exit of the driver
	}

	if req.TimeoutMs > 0 {
		r.arm(time.Duration(req.TimeoutMs) * time.Millisecond)
	}
	defer r.stopTimer()
	ctxDone := ctx.Done()
	for {
		if fin, ok := r.deliver(); ok {
			return fin, r.result(ctx)
		}
		select {
		case m := <-ex.msgs:
			if m.Type == "done" {
				r.gotDone = true
				r.stopTimer()
			}
			r.pending = append(r.pending, m)
		case <-d.marked:
		case <-r.timerC:
			if !r.cancelled && r.phase == phaseRunning {
				r.done.TimedOut = true
			}
			r.escalate()
		case <-ctxDone:
			ctxDone = nil
			r.cancelled = true
			if !r.gotDone && r.phase == phaseRunning {
				r.escalate()
			}
		case <-d.exited:
			return r.afterExit(), r.result(ctx)
		}
	}
}

// Steps of stopping a run.
const (
	phaseRunning    = iota
	phaseInterrupt  // SIGINT sent to the driver
	phaseGroupInter // SIGINT sent to its process group
	phaseKilled     // every process of the context killed
)

// runState is the state of one run's loop.
type runState struct {
	c  *kctx
	d  *driver
	ex *execution

	done      agentproto.ContextDone
	pending   []driverMsg // received, waiting for their sync markers
	gotDone   bool
	phase     int
	cancelled bool

	timer  *time.Timer
	timerC <-chan time.Time
}

func (r *runState) arm(d time.Duration) {
	r.stopTimer()
	r.timer = time.NewTimer(d)
	r.timerC = r.timer.C
}

func (r *runState) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.timerC = nil
}

// escalate takes the next step to stop the run.
func (r *runState) escalate() {
	if r.gotDone {
		return
	}
	switch r.phase {
	case phaseRunning:
		r.c.m.log.Debug("interrupting run", "context_id", r.c.info.ID, "execution_id", r.ex.id)
		r.d.interrupt(false)
		r.phase = phaseInterrupt
		r.arm(r.c.m.grace)
	case phaseInterrupt:
		r.d.interrupt(true)
		r.phase = phaseGroupInter
		r.arm(r.c.m.grace)
	case phaseGroupInter:
		r.c.m.log.Info("run did not stop after SIGINT; killing the context's processes", "context_id", r.c.info.ID, "execution_id", r.ex.id)
		r.phase = phaseKilled
		r.stopTimer()
		r.d.kill()
	}
}

// deliver passes on the received messages whose markers have been read,
// in order. It reports the run's end when it reaches the done message.
func (r *runState) deliver() (agentproto.ContextDone, bool) {
	for len(r.pending) > 0 && r.d.synced(r.pending[0].Sync) {
		m := r.pending[0]
		r.pending = r.pending[1:]
		if m.Sync == 0 {
			// No marker came with it (the driver's last message of a
			// run): what the pipes hold now was written before it.
			r.d.drainOutput()
		}
		if m.Type == "done" {
			r.ex.finish()
			r.d.setDelivered(m.Sync)
			return r.done, true
		}
		r.emitMsg(m)
		r.d.setDelivered(m.Sync)
	}
	return agentproto.ContextDone{}, false
}

// emitMsg passes a result or error message to the sink.
func (r *runState) emitMsg(m driverMsg) {
	now := time.Now().UnixMilli()
	switch m.Type {
	case "result":
		r.ex.emit(agentproto.Event{Type: agentproto.EventDisplay, Result: resultOf(m.Data, m.Main), TS: now}, false)
	case "error":
		r.ex.emit(agentproto.Event{Type: agentproto.EventException, Exception: &agentproto.Exception{Name: m.Name, Value: m.Value, Traceback: m.Traceback}, TS: now}, false)
	}
}

// afterExit ends a run whose driver died: killed by the timeout, by a
// delete, or on its own.
func (r *runState) afterExit() agentproto.ContextDone {
	killed := r.phase == phaseKilled
	r.d.shutdown() // delivers the output written before the death
	r.c.dropDriver(r.d)
	for {
		select {
		case m := <-r.ex.msgs:
			r.pending = append(r.pending, m)
			continue
		default:
		}
		break
	}
	for _, m := range r.pending {
		if m.Type == "done" {
			r.gotDone = true
			continue
		}
		r.emitMsg(m)
	}
	r.pending = nil
	r.done.StateKept = false
	if !killed && !r.gotDone && !r.c.isDeleted() {
		value := fmt.Sprintf("the %s interpreter exited (%s) while running the code; the context's state is lost and the interpreter restarts on the next run",
			r.c.lang.name, statusText(r.d.ws))
		if r.d.ws.Signaled() && r.d.ws.Signal() == syscall.SIGINT {
			value = fmt.Sprintf("the %s interpreter was stopped by SIGINT; the context's state is lost and the interpreter restarts on the next run", r.c.lang.name)
		}
		r.ex.emit(agentproto.Event{
			Type:      agentproto.EventException,
			Exception: &agentproto.Exception{Name: "InterpreterExited", Value: value, Traceback: "InterpreterExited: " + value},
			TS:        time.Now().UnixMilli(),
		}, false)
	}
	return r.done
}

// result is the error Execute returns with the run's end.
func (r *runState) result(ctx context.Context) error {
	if r.c.isDeleted() && !r.gotDone {
		return fmt.Errorf("context %s: %w", r.c.info.ID, errDeleted)
	}
	if r.cancelled {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("context %s: %w: %w", r.c.info.ID, errdefs.ErrTimeout, ctx.Err())
		}
		return fmt.Errorf("context %s: %w", r.c.info.ID, ctx.Err())
	}
	return nil
}
