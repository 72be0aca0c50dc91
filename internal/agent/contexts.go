package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/sdbx/sdbx/internal/agent/kernel"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// newKernel returns the manager of the code contexts served by Serve.
// Drivers are started through the agent's spawner, so that as PID 1 one
// reap loop collects them.
func (a *Agent) newKernel(sp kernel.Spawner) *kernel.Manager {
	return kernel.NewManager(kernel.Options{Spawner: sp, Logger: a.log, DefaultCwd: a.cwd})
}

// checkContextRequest checks that a context op has its payload; the
// kernel validates the fields. Errors wrap errdefs.ErrInvalidArgument.
func checkContextRequest(req agentproto.Request) error {
	missing := func(field string) error {
		return fmt.Errorf("%s: missing for op %q: %w", field, req.Op, errdefs.ErrInvalidArgument)
	}
	switch req.Op {
	case agentproto.OpContextCreate:
		if req.ContextCreate == nil {
			return missing("contextCreate")
		}
	case agentproto.OpContextExec:
		if req.ContextExec == nil {
			return missing("contextExec")
		}
	case agentproto.OpContextDelete:
		if req.ContextDelete == nil {
			return missing("contextDelete")
		}
	}
	return nil
}

// serveContext answers one context op on conn through w and reports
// whether conn stays open for the next request.
func (a *Agent) serveContext(ctx context.Context, req agentproto.Request, br *bufio.Reader, conn net.Conn, w *eventWriter, kern *kernel.Manager) bool {
	final := func(ev agentproto.Event, err error) bool {
		if err != nil {
			ev = errorEvent(err)
		}
		_ = w.end(ev)
		return w.kept()
	}
	switch req.Op {
	case agentproto.OpContextCreate:
		info, err := kern.Create(ctx, *req.ContextCreate)
		return final(agentproto.Event{Type: agentproto.EventContext, Context: &info}, err)
	case agentproto.OpContextDelete:
		info, err := kern.Delete(ctx, req.ContextDelete.ID)
		return final(agentproto.Event{Type: agentproto.EventContext, Context: &info}, err)
	case agentproto.OpContextList:
		return final(agentproto.Event{Type: agentproto.EventContexts, Contexts: kern.List()}, nil)
	case agentproto.OpContextExec:
		// As for exec, a read that returns means the client left: the run
		// is interrupted (or leaves the queue).
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		lw := watchLeave(conn, br, w.keepAlive, cancel)
		sink := func(ev agentproto.Event, more bool) {
			if runCtx.Err() != nil {
				return
			}
			if err := writeContextEvent(w, ev, !more); err != nil {
				cancel()
			}
		}
		done, err := kern.Execute(runCtx, *req.ContextExec, sink)
		if runCtx.Err() == nil {
			final(agentproto.Event{Type: agentproto.EventDone, Done: &done, TS: time.Now().UnixMilli()}, err)
		}
		return finishWatched(conn, lw, w)
	}
	return false
}

// writeContextEvent writes ev; events with payloads that appendEvent does
// not know are encoded with encoding/json.
func writeContextEvent(w *eventWriter, ev agentproto.Event, flush bool) error {
	if ev.Result == nil && ev.Exception == nil && ev.Done == nil && ev.Context == nil && ev.Contexts == nil {
		return w.write(ev, flush)
	}
	// HTML stays as it is: escaping <, > and & would make rich results
	// up to six times longer.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		buf.Reset()
		_ = enc.Encode(errorEvent(fmt.Errorf("agent: cannot encode %s event: %v: %w", ev.Type, err, errdefs.ErrInternal)))
	}
	if _, err := w.buffered().Write(buf.Bytes()); err != nil {
		return err
	}
	if flush {
		return w.bw.Flush()
	}
	return nil
}
