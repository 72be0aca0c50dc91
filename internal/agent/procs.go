package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agent/execpath"
	"github.com/sdbx/sdbx/internal/agent/kernel"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

const (
	// procRingSize is how many bytes of output each background process
	// keeps.
	procRingSize = 1 << 20
	// procChunk is the largest chunk read from a pipe (and sent in one
	// event).
	procChunk = 32 * 1024
	// procKeepExited is how many exited processes are remembered.
	procKeepExited = 100
	// procMaxRunning bounds the running background processes.
	procMaxRunning = 1024
	// stdinTimeout bounds a write to a process that does not read.
	stdinTimeout = 10 * time.Second
)

// tableKind is what a procTable holds: background processes or terminal
// sessions.
type tableKind struct {
	what       string // "process" or "terminal session", for messages
	idPrefix   string
	maxRunning int
	keepExited int
	tty        bool // sessions on a pseudo-terminal (see pty.go)
}

// processKind is the kind of the background process table.
var processKind = tableKind{what: "process", idPrefix: "proc_", maxRunning: procMaxRunning, keepExited: procKeepExited}

// procTable holds the background processes (or the terminal sessions) of
// one Serve.
type procTable struct {
	log   *slog.Logger
	sp    kernel.Spawner
	drain time.Duration
	ring  int
	kind  tableKind

	mu     sync.Mutex
	closed bool
	procs  map[string]*bgProc
	order  []*bgProc // by start, oldest first
	wg     sync.WaitGroup
}

func newProcTable(log *slog.Logger, sp kernel.Spawner, drain time.Duration, kind tableKind) *procTable {
	return &procTable{log: log, sp: sp, drain: drain, ring: procRingSize, kind: kind, procs: make(map[string]*bgProc)}
}

// bgProc is one background process (or terminal session).
type bgProc struct {
	id        string
	what      string
	args      []string
	cwd       string
	startedAt time.Time
	proc      *process
	out       *outputRing
	tty       *os.File // the terminal's master (nil for pipes)

	stdinMu sync.Mutex
	stdin   *os.File // nil once closed; the master for a terminal

	mu         sync.Mutex
	cols, rows int // terminal size
	exited     bool
	code       int
	exitedAt   time.Time
}

// info describes p.
func (p *bgProc) info() agentproto.ProcInfo {
	start, end := p.out.bounds()
	p.mu.Lock()
	defer p.mu.Unlock()
	in := agentproto.ProcInfo{
		ID: p.id, Pid: p.proc.pid, Args: p.args, Cwd: p.cwd, Running: !p.exited,
		StartedAt: p.startedAt.UnixMilli(), Start: start, End: end, Cols: p.cols, Rows: p.rows,
	}
	if p.exited {
		code := p.code
		in.ExitCode = &code
		in.ExitedAt = p.exitedAt.UnixMilli()
	}
	return in
}

// setExited records the main process's exit status.
func (p *bgProc) setExited(ws syscall.WaitStatus) {
	p.proc.reaped()
	p.mu.Lock()
	p.exited, p.code, p.exitedAt = true, exitCode(ws), time.Now()
	p.mu.Unlock()
	p.out.notify()
}

// newProcID returns a random id with prefix.
func newProcID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// procOp maps a pty op onto the proc op that serves it (pty.create is
// proc.start, pty.input proc.stdin, ...); pty.resize stays itself.
func procOp(op string) string {
	switch op {
	case agentproto.OpPTYCreate:
		return agentproto.OpProcStart
	case agentproto.OpPTYList:
		return agentproto.OpProcList
	case agentproto.OpPTYOutput:
		return agentproto.OpProcOutput
	case agentproto.OpPTYInput:
		return agentproto.OpProcStdin
	case agentproto.OpPTYSignal:
		return agentproto.OpProcSignal
	case agentproto.OpPTYKill:
		return agentproto.OpProcKill
	}
	return op
}

// checkProcRequest validates a proc (or pty) op's payload. Errors wrap
// errdefs.ErrInvalidArgument and name the field.
func checkProcRequest(req agentproto.Request) error {
	op := procOp(req.Op)
	if op == agentproto.OpProcList {
		return nil
	}
	if req.Proc == nil {
		return fmt.Errorf("proc: missing for op %q: %w", req.Op, errdefs.ErrInvalidArgument)
	}
	p := req.Proc
	switch op {
	case agentproto.OpProcStart:
		if req.Op == agentproto.OpPTYCreate {
			if err := agentproto.CheckTermSize(p.Cols, p.Rows, true); err != nil {
				return err
			}
			if len(p.Args) == 0 {
				return nil // the default shell
			}
		}
		return validateExec(&agentproto.ExecRequest{Args: p.Args, Env: p.Env, Cwd: p.Cwd})
	case agentproto.OpProcOutput:
		if p.Offset < 0 {
			return fmt.Errorf("proc.offset: must not be negative, got %d: %w", p.Offset, errdefs.ErrInvalidArgument)
		}
	case agentproto.OpProcSignal:
		if _, err := parseSignal(p.Signal); err != nil {
			return err
		}
	case agentproto.OpProcStdin:
		if req.Op == agentproto.OpPTYInput && p.Close {
			return fmt.Errorf("proc.close: a terminal has no stdin to close (send \"\\x04\", Ctrl-D): %w", errdefs.ErrInvalidArgument)
		}
	case agentproto.OpPTYResize:
		if err := agentproto.CheckTermSize(p.Cols, p.Rows, false); err != nil {
			return err
		}
	}
	if p.ID == "" {
		return fmt.Errorf("proc.id: missing for op %q: %w", req.Op, errdefs.ErrInvalidArgument)
	}
	return nil
}

// parseSignal parses "SIGTERM", "TERM" or "15".
func parseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return 0, fmt.Errorf("proc.signal: missing: %w", errdefs.ErrInvalidArgument)
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("proc.signal: unknown signal %q (want 1-64): %w", s, errdefs.ErrInvalidArgument)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("proc.signal: unknown signal %q: %w", s, errdefs.ErrInvalidArgument)
	}
	return sig, nil
}

// get returns the process named id.
func (t *procTable) get(id string) (*bgProc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.procs[id]
	if !ok {
		return nil, fmt.Errorf("%s %q not found: %w", t.kind.what, id, errdefs.ErrNotFound)
	}
	return p, nil
}

// list describes every known process, oldest first.
func (t *procTable) list() []agentproto.ProcInfo {
	t.mu.Lock()
	procs := append([]*bgProc(nil), t.order...)
	t.mu.Unlock()
	out := make([]agentproto.ProcInfo, 0, len(procs))
	for _, p := range procs {
		out = append(out, p.info())
	}
	return out
}

// start spawns a background process (or a terminal session).
func (t *procTable) start(a *Agent, req *agentproto.ProcRequest) (agentproto.ProcInfo, error) {
	args := req.Args
	if t.kind.tty && len(args) == 0 {
		args = defaultShell()
	}
	cmd, err := a.resolve(&agentproto.ExecRequest{Args: args, Env: req.Env, Cwd: req.Cwd})
	if err != nil {
		return agentproto.ProcInfo{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return agentproto.ProcInfo{}, fmt.Errorf("agent is shutting down: %w", errdefs.ErrUnavailable)
	}
	running := 0
	for _, p := range t.order {
		if p.proc.alive() {
			running++
		}
	}
	if running >= t.kind.maxRunning {
		if t.kind.tty {
			return agentproto.ProcInfo{}, fmt.Errorf("too many terminal sessions: %d run in this sandbox, the most allowed; kill one first: %w", running, errdefs.ErrConflict)
		}
		return agentproto.ProcInfo{}, fmt.Errorf("too many background processes (%d running): %w", running, errdefs.ErrUnavailable)
	}
	p := &bgProc{
		id: newProcID(t.kind.idPrefix), what: t.kind.what, args: args, cwd: cmd.dir,
		out: newOutputRing(t.ring),
	}
	var collect func()
	if t.kind.tty {
		collect, err = t.spawnTTY(p, cmd, req.Cols, req.Rows)
	} else {
		collect, err = t.spawnPipes(p, cmd)
	}
	if err != nil {
		return agentproto.ProcInfo{}, execpath.StartError(args[0], err)
	}
	p.startedAt = time.Now()
	t.procs[p.id] = p
	t.order = append(t.order, p)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		collect()
	}()
	t.log.Debug(t.kind.what+" started", "id", p.id, "pid", p.proc.pid, "path", cmd.path)
	return p.info(), nil
}

// spawnPipes starts cmd in its own process group with pipes for stdin,
// stdout and stderr, and returns the function that collects its output
// and exit status.
func (t *procTable) spawnPipes(p *bgProc, cmd command) (func(), error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	std, err := openStdio()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	std.devNull.Close()
	std.devNull = inR
	attr := &syscall.ProcAttr{
		Dir:   cmd.dir,
		Env:   cmd.env,
		Files: std.childFds(),
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	pid, status, err := t.sp.Start(cmd.path, cmd.argv, attr)
	std.closeChild()
	if err != nil {
		std.closeAgent()
		inW.Close()
		return nil, err
	}
	p.proc, p.stdin = &process{pid: pid}, inW
	return func() { t.run(p, std, status) }, nil
}

// run collects p's output and exit status.
func (t *procTable) run(p *bgProc, std *stdio, status <-chan syscall.WaitStatus) {
	defer std.closeAgent()
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		p.out.readFrom(std.outR, agentproto.StreamStdout)
	}()
	go func() {
		defer readers.Done()
		p.out.readFrom(std.errR, agentproto.StreamStderr)
	}()

	ws := <-status
	p.setExited(ws)
	p.closeStdin()
	// A child of the process may hold the pipes open: read what is there.
	deadline := time.Now().Add(t.drain)
	_ = std.outR.SetReadDeadline(deadline)
	_ = std.errR.SetReadDeadline(deadline)
	readers.Wait()
	t.finish(p, ws)
}

// finish marks p's output complete once it was read.
func (t *procTable) finish(p *bgProc, ws syscall.WaitStatus) {
	// Before done: a client that saw the end sees the table trimmed.
	t.forget()
	p.out.finish()
	t.log.Debug(t.kind.what+" exited", "id", p.id, "pid", p.proc.pid, "code", exitCode(ws))
}

// forget drops the oldest exited processes beyond the kind's keepExited.
func (t *procTable) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	exited := 0
	for _, p := range t.order {
		if !p.proc.alive() {
			exited++
		}
	}
	if exited <= t.kind.keepExited {
		return
	}
	kept := t.order[:0]
	for _, p := range t.order {
		if exited > t.kind.keepExited && !p.proc.alive() {
			exited--
			delete(t.procs, p.id)
			continue
		}
		kept = append(kept, p)
	}
	clear(t.order[len(kept):])
	t.order = kept
}

// alive reports whether the main process has not been reaped.
func (p *process) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.exited
}

// signal sends sig to the process group (a terminal's foreground process
// group) while the main process runs.
func (p *bgProc) signal(sig syscall.Signal) error {
	p.proc.mu.Lock()
	defer p.proc.mu.Unlock()
	if p.proc.exited {
		return fmt.Errorf("%s %q has exited: %w", p.what, p.id, errdefs.ErrConflict)
	}
	pgid := p.proc.pid
	if p.tty != nil {
		if fg, err := foreground(p.tty); err == nil && fg > 0 {
			pgid = fg
		}
	}
	if err := syscall.Kill(-pgid, sig); err != nil {
		return fmt.Errorf("signal %s %q: %v: %w", p.what, p.id, err, errdefs.ErrInternal)
	}
	return nil
}

// kill ends p: SIGKILL to its process group, or to every process of a
// terminal's session.
func (p *bgProc) kill() {
	if p.tty == nil {
		p.proc.kill()
		return
	}
	p.proc.mu.Lock()
	defer p.proc.mu.Unlock()
	if !p.proc.exited {
		killSession(p.proc.pid)
	}
}

// closeStdin closes the stdin pipe if open.
func (p *bgProc) closeStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
}

// writeStdin writes data to p's stdin and closes it when close is set.
func (p *bgProc) writeStdin(data []byte, close bool) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil || p.tty != nil && !p.proc.alive() {
		if !p.proc.alive() {
			return fmt.Errorf("%s %q has exited: %w", p.what, p.id, errdefs.ErrConflict)
		}
		return fmt.Errorf("stdin of process %q is closed: %w", p.id, errdefs.ErrConflict)
	}
	if len(data) > 0 {
		_ = p.stdin.SetWriteDeadline(time.Now().Add(stdinTimeout))
		if _, err := p.stdin.Write(data); err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return fmt.Errorf("input of %s %q: not read for %v: %w", p.what, p.id, stdinTimeout, errdefs.ErrTimeout)
			case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EIO), errors.Is(err, os.ErrClosed):
				return fmt.Errorf("input of %s %q: it closed its input: %w", p.what, p.id, errdefs.ErrConflict)
			}
			return fmt.Errorf("input of %s %q: %v: %w", p.what, p.id, execpath.ErrnoText(err), errdefs.ErrInternal)
		}
	}
	if close {
		p.stdin.Close()
		p.stdin = nil
	}
	return nil
}

// close kills every process group (and session), stops reading their
// output and waits for the collectors. Run it while the spawner still
// reaps.
func (t *procTable) close() {
	t.mu.Lock()
	t.closed = true
	procs := append([]*bgProc(nil), t.order...)
	t.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	t.wg.Wait()
}

// serveProc answers one proc (or pty) op on conn.
func (a *Agent) serveProc(ctx context.Context, req agentproto.Request, br *bufio.Reader, conn net.Conn, t *procTable) {
	w := newEventWriter(conn)
	final := func(ev agentproto.Event, err error) {
		if err != nil {
			ev = errorEvent(err)
		}
		_ = writeProcEvent(w, ev, true)
	}
	procFinal := func(info agentproto.ProcInfo, err error) {
		final(agentproto.Event{Type: agentproto.EventProc, Proc: &agentproto.ProcPayload{Info: &info}}, err)
	}
	op := procOp(req.Op)
	if op == agentproto.OpProcList {
		final(agentproto.Event{Type: agentproto.EventProcs, Proc: &agentproto.ProcPayload{List: t.list()}}, nil)
		return
	}
	if op == agentproto.OpProcStart {
		procFinal(t.start(a, req.Proc))
		return
	}
	p, err := t.get(req.Proc.ID)
	if err != nil {
		final(agentproto.Event{}, err)
		return
	}
	switch op {
	case agentproto.OpProcStdin:
		err := p.writeStdin(req.Proc.Data, req.Proc.Close)
		procFinal(p.info(), err)
	case agentproto.OpProcSignal:
		sig, _ := parseSignal(req.Proc.Signal)
		procFinal(p.info(), p.signal(sig))
	case agentproto.OpPTYResize:
		procFinal(p.info(), p.resize(req.Proc.Cols, req.Proc.Rows))
	case agentproto.OpProcKill:
		p.kill()
		procFinal(p.info(), nil)
	case agentproto.OpProcOutput:
		outCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			_, _ = io.Copy(io.Discard, br)
			cancel()
		}()
		end, lost, err := streamOutput(outCtx, w, p.out, req.Proc.Offset, req.Proc.Follow)
		if err == nil && outCtx.Err() == nil {
			info := p.info()
			final(agentproto.Event{Type: agentproto.EventProc, Proc: &agentproto.ProcPayload{Info: &info, End: end, Lost: lost}}, nil)
		}
		conn.Close()
		<-watchDone
	}
}

// writeProcEvent writes ev with encoding/json (appendEvent does not know
// the proc payload).
func writeProcEvent(w *eventWriter, ev agentproto.Event, flush bool) error {
	if ev.Proc == nil {
		return w.write(ev, flush)
	}
	line, err := json.Marshal(ev)
	if err != nil {
		line, _ = json.Marshal(errorEvent(fmt.Errorf("agent: cannot encode %s event: %v: %w", ev.Type, err, errdefs.ErrInternal)))
	}
	if _, err := w.buffered().Write(append(line, '\n')); err != nil {
		return err
	}
	if flush {
		return w.bw.Flush()
	}
	return nil
}
