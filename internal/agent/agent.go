// Package agent is the sdbx agent: the process that runs inside every
// sandbox (as PID 1 under the linux runtime) and serves the agentproto
// protocol: it spawns commands with an exact environment and working
// directory, streams their output line by line, enforces timeouts and kills
// a command's process group when its client goes away.
//
// When the agent is PID 1 it also reaps every orphaned process of the
// sandbox (see ReapMode).
//
// The agent never imports server, store or transport packages.
package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/agent/fs"
	"github.com/sdbx/sdbx/internal/agent/kernel"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// ReapMode says how the agent collects the exit status of processes.
type ReapMode int

const (
	// ReapAuto is ReapAll when the agent is PID 1 and ReapChildren otherwise.
	ReapAuto ReapMode = iota
	// ReapChildren waits for each spawned command by its pid. Orphans are
	// left to whoever reaps them (the host's init, a subreaper).
	ReapChildren
	// ReapAll reaps every child of the agent with one wait4(-1) loop driven
	// by SIGCHLD, and hands the statuses of spawned commands to their
	// handlers. Use it when the agent is the init of a PID namespace, where
	// orphans are reparented to it.
	ReapAll
)

// String returns the mode's flag spelling.
func (m ReapMode) String() string {
	switch m {
	case ReapAuto:
		return "auto"
	case ReapChildren:
		return "children"
	case ReapAll:
		return "all"
	}
	return fmt.Sprintf("ReapMode(%d)", int(m))
}

// ParseReapMode parses "auto", "children" or "all".
func ParseReapMode(s string) (ReapMode, error) {
	for _, m := range []ReapMode{ReapAuto, ReapChildren, ReapAll} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("reap mode %q: want auto, children or all: %w", s, errdefs.ErrInvalidArgument)
}

// Options configure an Agent. The zero value is usable.
type Options struct {
	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger
	// Version is reported in answers to ping.
	Version string
	// DefaultCwd is the working directory of a command that names none;
	// empty means /workspace.
	DefaultCwd string
	// Reap selects how exit statuses are collected.
	Reap ReapMode
	// DrainTimeout is how long output is still read after a command's main
	// process has exited (a background child may hold its pipes open);
	// zero means 100ms.
	DrainTimeout time.Duration
	// FileRoot is the directory the file ops are confined to (paths are
	// resolved as if it were "/"); empty means "/".
	FileRoot string
}

// requestTimeout bounds how long a new connection may take to send its
// request line.
const requestTimeout = 30 * time.Second

// Agent serves the agent protocol. Create it with New.
type Agent struct {
	log     *slog.Logger
	version string
	cwd     string
	reap    ReapMode
	drain   time.Duration
	files   *fs.FS
}

// New returns an agent configured by opts.
func New(opts Options) *Agent {
	a := &Agent{
		log:     opts.Logger,
		version: opts.Version,
		cwd:     opts.DefaultCwd,
		reap:    opts.Reap,
		drain:   opts.DrainTimeout,
		files:   fs.New(opts.FileRoot),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.cwd == "" {
		a.cwd = "/workspace"
	}
	if a.reap == ReapAuto {
		a.reap = ReapChildren
		if os.Getpid() == 1 {
			a.reap = ReapAll
		}
	}
	if a.drain <= 0 {
		a.drain = 100 * time.Millisecond
	}
	return a
}

// Serve accepts connections on ln and answers one request on each until
// ctx is cancelled or ln fails. It then closes ln, kills the process group
// of every running command, waits for all of its goroutines and returns:
// nil after ctx was cancelled, or the listener's error.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)

	var sp kernel.Spawner = kernel.WaitSpawner{}
	reapCtx, stopReaper := context.WithCancel(context.WithoutCancel(ctx))
	var reapWG sync.WaitGroup
	if a.reap == ReapAll {
		r := newReaper(a.log)
		reapWG.Add(1)
		go func() {
			defer reapWG.Done()
			r.run(reapCtx)
		}()
		sp = r
	}
	kern := a.newKernel(sp)
	procs := newProcTable(a.log, sp, a.drain, processKind)
	ptys := newProcTable(a.log, sp, a.drain, ptyKind)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer func() {
		cancel()
		<-closed
		// Kills the code contexts, which ends their runs.
		kern.Close()
		// Kills the background processes; the reaper still runs.
		procs.close()
		ptys.close()
		wg.Wait()
		// No handler waits for a status any more.
		stopReaper()
		reapWG.Wait()
	}()

	a.log.Info("agent serving", "addr", ln.Addr().String(), "reap", a.reap.String(), "pid", os.Getpid())
	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				a.log.Warn("accept failed; retrying", "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("agent accept: %w", err)
		}
		backoff = 5 * time.Millisecond
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.handleConn(ctx, conn, sp, kern, procs, ptys)
		}()
	}
}

// handleConn answers the requests of conn and closes it. A connection
// carries one request, or several one after another when they ask for
// keep-alive (see agentproto.Request.KeepAlive).
func (a *Agent) handleConn(ctx context.Context, conn net.Conn, sp kernel.Spawner, kern *kernel.Manager, procs, ptys *procTable) {
	// Closing the connection is how Serve's shutdown reaches a running
	// command: like a client that leaves, it ends the read that watches
	// the connection.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	br := bufio.NewReaderSize(conn, 4096)
	w := newEventWriter(conn)
	// Only the first request must come soon; a kept-alive connection may
	// idle between requests (its client bounds how many it keeps).
	_ = conn.SetReadDeadline(time.Now().Add(requestTimeout))
	for {
		line, err := readRequestLine(br)
		if err != nil {
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				_ = w.writeFinal(errorEvent(err))
			}
			// Otherwise the client went away or never spoke: nobody to
			// answer.
			return
		}
		_ = conn.SetReadDeadline(time.Time{})

		req, err := decodeRequest(line)
		if err != nil {
			_ = w.writeFinal(errorEvent(err))
			return
		}
		w.keepAlive, w.ended = req.KeepAlive && agentproto.KeepAliveOp(req.Op), false
		if !a.serveRequest(ctx, req, br, conn, w, sp, kern, procs, ptys) {
			return
		}
	}
}

// serveRequest answers one request on conn and reports whether conn stays
// open for the next one: only when w.keepAlive is set, the final event was
// sent and the client is still there.
func (a *Agent) serveRequest(ctx context.Context, req agentproto.Request, br *bufio.Reader, conn net.Conn, w *eventWriter, sp kernel.Spawner, kern *kernel.Manager, procs, ptys *procTable) bool {
	if fs.IsOp(req.Op) {
		a.files.Serve(ctx, req.Op, req.File, br, conn)
		return false
	}
	switch req.Op {
	case agentproto.OpPing:
		_ = w.end(agentproto.Event{Type: agentproto.EventPong, Version: a.version})
		return w.kept()
	case agentproto.OpExec:
		// The client sends nothing during its request; a read that
		// returns means it closed the connection (or Serve closed it),
		// which cancels the command.
		gone := make(chan struct{})
		lw := watchLeave(conn, br, w.keepAlive, func() { close(gone) })
		a.exec(w, req.Exec, sp, gone)
		return finishWatched(conn, lw, w)
	case agentproto.OpFileWatch:
		// Like exec: a read that returns means the client left.
		wctx, cancel := context.WithCancel(ctx)
		lw := watchLeave(conn, br, false, cancel)
		a.files.ServeWatch(wctx, req.File, conn)
		cancel()
		conn.Close()
		lw.wait()
	case agentproto.OpContextCreate, agentproto.OpContextExec, agentproto.OpContextDelete, agentproto.OpContextList:
		return a.serveContext(ctx, req, br, conn, w, kern)
	case agentproto.OpProcStart, agentproto.OpProcList, agentproto.OpProcOutput, agentproto.OpProcStdin, agentproto.OpProcSignal, agentproto.OpProcKill:
		a.serveProc(ctx, req, br, conn, procs)
	case agentproto.OpPTYCreate, agentproto.OpPTYList, agentproto.OpPTYOutput, agentproto.OpPTYInput,
		agentproto.OpPTYResize, agentproto.OpPTYSignal, agentproto.OpPTYKill:
		a.serveProc(ctx, req, br, conn, ptys)
	case agentproto.OpPortConnect:
		a.servePort(ctx, req.Port, br, conn)
	}
	return false
}

// finishWatched ends a request whose connection lw watched and reports
// whether the connection stays open: a kept-alive one whose final event
// was sent and whose client is still there does; otherwise conn is
// closed, which also ends the watch.
func finishWatched(conn net.Conn, lw *leaveWatch, w *eventWriter) bool {
	if w.kept() {
		return lw.stop()
	}
	conn.Close()
	lw.wait()
	return false
}

// readRequestLine reads the request line: at most agentproto.MaxRequest
// bytes up to a newline, or up to EOF when the client wrote a line without
// one.
func readRequestLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > agentproto.MaxRequest+1 {
			return nil, fmt.Errorf("request: line longer than %d bytes: %w", agentproto.MaxRequest, errdefs.ErrInvalidArgument)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

// decodeRequest parses and validates a request line. Errors wrap
// errdefs.ErrInvalidArgument and name the field.
func decodeRequest(line []byte) (agentproto.Request, error) {
	var req agentproto.Request
	if err := json.Unmarshal(line, &req); err != nil {
		return req, fmt.Errorf("request: invalid JSON: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if fs.IsOp(req.Op) {
		return req, fs.CheckRequest(req.Op, req.File)
	}
	switch req.Op {
	case agentproto.OpPing:
		return req, nil
	case agentproto.OpExec:
		if req.Exec == nil {
			return req, fmt.Errorf("exec: missing for op %q: %w", req.Op, errdefs.ErrInvalidArgument)
		}
		return req, validateExec(req.Exec)
	case agentproto.OpFileWatch:
		if req.File == nil {
			return req, fmt.Errorf("file: missing for op %q: %w", req.Op, errdefs.ErrInvalidArgument)
		}
		return req, nil
	case agentproto.OpContextCreate, agentproto.OpContextExec, agentproto.OpContextDelete, agentproto.OpContextList:
		return req, checkContextRequest(req)
	case agentproto.OpProcStart, agentproto.OpProcList, agentproto.OpProcOutput, agentproto.OpProcStdin, agentproto.OpProcSignal, agentproto.OpProcKill:
		return req, checkProcRequest(req)
	case agentproto.OpPTYCreate, agentproto.OpPTYList, agentproto.OpPTYOutput, agentproto.OpPTYInput,
		agentproto.OpPTYResize, agentproto.OpPTYSignal, agentproto.OpPTYKill:
		return req, checkProcRequest(req)
	case agentproto.OpPortConnect:
		return req, checkPortRequest(req)
	case "":
		return req, fmt.Errorf("op: missing: %w", errdefs.ErrInvalidArgument)
	}
	return req, fmt.Errorf("op: unknown op %q: %w", req.Op, errdefs.ErrInvalidArgument)
}

// errorEvent turns err into a final error event.
func errorEvent(err error) agentproto.Event {
	return agentproto.Event{Type: agentproto.EventError, ErrCode: errdefs.Code(err), Message: err.Error()}
}

// eventWriter writes events as JSON lines through a buffer; flush sends the
// buffer to the connection. The buffer is allocated on the first write,
// so a writer that is never used costs nothing. One writer serves the
// requests of a kept-alive connection one after another.
type eventWriter struct {
	dst io.Writer
	bw  *bufio.Writer
	buf []byte
	// keepAlive says that the current request keeps its connection open:
	// end marks the final event so.
	keepAlive bool
	// ended is set once end has sent the current request's final event.
	ended bool
}

func newEventWriter(w io.Writer) *eventWriter { return &eventWriter{dst: w} }

// buffered returns the writer's buffer, allocating it on first use.
func (w *eventWriter) buffered() *bufio.Writer {
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(w.dst, 16*1024)
	}
	return w.bw
}

// write buffers ev, and flushes when flush is set.
func (w *eventWriter) write(ev agentproto.Event, flush bool) error {
	w.buf = appendEvent(w.buf[:0], ev)
	if _, err := w.buffered().Write(w.buf); err != nil {
		return err
	}
	if flush {
		return w.bw.Flush()
	}
	return nil
}

// writeFinal writes ev and flushes.
func (w *eventWriter) writeFinal(ev agentproto.Event) error { return w.write(ev, true) }

// end sends the final event of the current request (any event type, rich
// payloads included), marked KeepAlive when the connection is kept open.
func (w *eventWriter) end(ev agentproto.Event) error {
	ev.KeepAlive = w.keepAlive
	err := writeContextEvent(w, ev, true)
	w.ended = err == nil
	return err
}

// kept reports whether the current request keeps its connection: it asked
// to, and its final event was sent.
func (w *eventWriter) kept() bool { return w.keepAlive && w.ended }
