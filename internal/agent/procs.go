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
	"unicode/utf8"

	"golang.org/x/sys/unix"

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

// procTable holds the background processes of one Serve.
type procTable struct {
	log   *slog.Logger
	sp    kernel.Spawner
	drain time.Duration
	ring  int

	mu     sync.Mutex
	closed bool
	procs  map[string]*bgProc
	order  []*bgProc // by start, oldest first
	wg     sync.WaitGroup
}

func newProcTable(log *slog.Logger, sp kernel.Spawner, drain time.Duration) *procTable {
	return &procTable{log: log, sp: sp, drain: drain, ring: procRingSize, procs: make(map[string]*bgProc)}
}

// chunk is a piece of output.
type chunk struct {
	off    int64
	stream string
	data   []byte
}

// bgProc is one background process.
type bgProc struct {
	id        string
	args      []string
	cwd       string
	startedAt time.Time
	proc      *process

	stdinMu sync.Mutex
	stdin   *os.File // nil once closed

	mu       sync.Mutex
	chunks   []chunk // buffered output, in offset order
	start    int64   // offset of chunks[0] (or end when empty)
	end      int64   // offset after the last byte read
	size     int     // bytes in chunks
	exited   bool    // main process reaped
	done     bool    // exited and output drained
	code     int
	exitedAt time.Time
	changed  chan struct{} // closed and replaced on every change
}

// info describes p.
func (p *bgProc) info() agentproto.ProcInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := agentproto.ProcInfo{
		ID: p.id, Pid: p.proc.pid, Args: p.args, Cwd: p.cwd, Running: !p.exited,
		StartedAt: p.startedAt.UnixMilli(), Start: p.start, End: p.end,
	}
	if p.exited {
		code := p.code
		in.ExitCode = &code
		in.ExitedAt = p.exitedAt.UnixMilli()
	}
	return in
}

// notifyLocked wakes the readers; p.mu is held.
func (p *bgProc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// add appends output read from stream, dropping the oldest chunks beyond
// limit bytes.
func (p *bgProc) add(stream string, data []byte, limit int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.chunks = append(p.chunks, chunk{off: p.end, stream: stream, data: data})
	p.end += int64(len(data))
	p.size += len(data)
	for p.size > limit && len(p.chunks) > 0 {
		c := p.chunks[0]
		over := p.size - limit
		if over < len(c.data) {
			// Keep the chunk's tail, from a character boundary.
			for over < len(c.data) && !utf8.RuneStart(c.data[over]) && over-(p.size-limit) < utf8.UTFMax-1 {
				over++
			}
			p.chunks[0] = chunk{off: c.off + int64(over), stream: c.stream, data: c.data[over:]}
			p.size -= over
			break
		}
		p.chunks[0] = chunk{}
		p.chunks = p.chunks[1:]
		p.size -= len(c.data)
	}
	if len(p.chunks) > 0 {
		p.start = p.chunks[0].off
	} else {
		p.start = p.end
	}
	p.notifyLocked()
}

// since returns the buffered chunks from offset, the bytes lost before
// them, whether the output is complete and a channel closed on change.
func (p *bgProc) since(offset int64) (out []chunk, lost, next int64, done bool, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if offset < p.start {
		lost = p.start - offset
		offset = p.start
	}
	for _, c := range p.chunks {
		cend := c.off + int64(len(c.data))
		if cend <= offset {
			continue
		}
		if c.off < offset {
			c = chunk{off: offset, stream: c.stream, data: c.data[offset-c.off:]}
		}
		out = append(out, c)
	}
	next = max(offset, p.end)
	return out, lost, next, p.done, p.changed
}

// newProcID returns a random process id.
func newProcID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "proc_" + hex.EncodeToString(b[:])
}

// checkProcRequest validates a proc op's payload. Errors wrap
// errdefs.ErrInvalidArgument and name the field.
func checkProcRequest(req agentproto.Request) error {
	if req.Op == agentproto.OpProcList {
		return nil
	}
	if req.Proc == nil {
		return fmt.Errorf("proc: missing for op %q: %w", req.Op, errdefs.ErrInvalidArgument)
	}
	p := req.Proc
	switch req.Op {
	case agentproto.OpProcStart:
		return validateExec(&agentproto.ExecRequest{Args: p.Args, Env: p.Env, Cwd: p.Cwd})
	case agentproto.OpProcOutput:
		if p.Offset < 0 {
			return fmt.Errorf("proc.offset: must not be negative, got %d: %w", p.Offset, errdefs.ErrInvalidArgument)
		}
	case agentproto.OpProcSignal:
		if _, err := parseSignal(p.Signal); err != nil {
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
		return nil, fmt.Errorf("process %q not found: %w", id, errdefs.ErrNotFound)
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

// start spawns a background process.
func (t *procTable) start(a *Agent, req *agentproto.ProcRequest) (agentproto.ProcInfo, error) {
	cmd, err := a.resolve(&agentproto.ExecRequest{Args: req.Args, Env: req.Env, Cwd: req.Cwd})
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
	if running >= procMaxRunning {
		return agentproto.ProcInfo{}, fmt.Errorf("too many background processes (%d running): %w", running, errdefs.ErrUnavailable)
	}

	inR, inW, err := os.Pipe()
	if err != nil {
		return agentproto.ProcInfo{}, spawnError(req.Args[0], err)
	}
	std, err := openStdio()
	if err != nil {
		inR.Close()
		inW.Close()
		return agentproto.ProcInfo{}, spawnError(req.Args[0], err)
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
		return agentproto.ProcInfo{}, spawnError(req.Args[0], err)
	}
	p := &bgProc{
		id: newProcID(), args: req.Args, cwd: cmd.dir, startedAt: time.Now(),
		proc: &process{pid: pid}, stdin: inW, changed: make(chan struct{}),
	}
	t.procs[p.id] = p
	t.order = append(t.order, p)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.run(p, std, status)
	}()
	t.log.Debug("background process started", "id", p.id, "pid", pid, "path", cmd.path)
	return p.info(), nil
}

// run collects p's output and exit status.
func (t *procTable) run(p *bgProc, std *stdio, status <-chan syscall.WaitStatus) {
	defer std.closeAgent()
	var readers sync.WaitGroup
	read := func(f *os.File, stream string) {
		defer readers.Done()
		r := newPipeReader(f)
		var carry []byte
		for {
			buf := make([]byte, procChunk+utf8.UTFMax)
			n := copy(buf, carry)
			m, err := r.Read(buf[n : n+procChunk])
			n += m
			carry = nil
			if err == nil {
				// Keep an incomplete UTF-8 sequence at the end for the
				// next chunk, so that text is not split mid-character.
				k := incompleteTail(buf[:n])
				carry = append(carry, buf[n-k:n]...)
				n -= k
			}
			if n > 0 {
				p.add(stream, buf[:n:n], t.ring)
			}
			if err != nil {
				return
			}
		}
	}
	readers.Add(2)
	go read(std.outR, agentproto.StreamStdout)
	go read(std.errR, agentproto.StreamStderr)

	ws := <-status
	p.proc.reaped()
	p.mu.Lock()
	p.exited, p.code, p.exitedAt = true, exitCode(ws), time.Now()
	p.notifyLocked()
	p.mu.Unlock()
	p.closeStdin()
	// A child of the process may hold the pipes open: read what is there.
	deadline := time.Now().Add(t.drain)
	_ = std.outR.SetReadDeadline(deadline)
	_ = std.errR.SetReadDeadline(deadline)
	readers.Wait()
	// Before done: a client that saw the end sees the table trimmed.
	t.forget()
	p.mu.Lock()
	p.done = true
	p.notifyLocked()
	p.mu.Unlock()
	t.log.Debug("background process exited", "id", p.id, "pid", p.proc.pid, "code", exitCode(ws))
}

// forget drops the oldest exited processes beyond procKeepExited.
func (t *procTable) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	exited := 0
	for _, p := range t.order {
		if !p.proc.alive() {
			exited++
		}
	}
	if exited <= procKeepExited {
		return
	}
	kept := t.order[:0]
	for _, p := range t.order {
		if exited > procKeepExited && !p.proc.alive() {
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

// signal sends sig to the process group while the main process runs.
func (p *bgProc) signal(sig syscall.Signal) error {
	p.proc.mu.Lock()
	defer p.proc.mu.Unlock()
	if p.proc.exited {
		return fmt.Errorf("process %q has exited: %w", p.id, errdefs.ErrConflict)
	}
	if err := syscall.Kill(-p.proc.pid, sig); err != nil {
		return fmt.Errorf("signal process %q: %v: %w", p.id, err, errdefs.ErrInternal)
	}
	return nil
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
	if p.stdin == nil {
		if !p.proc.alive() {
			return fmt.Errorf("process %q has exited: %w", p.id, errdefs.ErrConflict)
		}
		return fmt.Errorf("stdin of process %q is closed: %w", p.id, errdefs.ErrConflict)
	}
	if len(data) > 0 {
		_ = p.stdin.SetWriteDeadline(time.Now().Add(stdinTimeout))
		if _, err := p.stdin.Write(data); err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return fmt.Errorf("stdin of process %q: not read for %v: %w", p.id, stdinTimeout, errdefs.ErrTimeout)
			case errors.Is(err, syscall.EPIPE):
				return fmt.Errorf("stdin of process %q: the process closed it: %w", p.id, errdefs.ErrConflict)
			}
			return fmt.Errorf("stdin of process %q: %v: %w", p.id, errnoText(err), errdefs.ErrInternal)
		}
	}
	if close {
		p.stdin.Close()
		p.stdin = nil
	}
	return nil
}

// close kills every process group, stops reading their output and waits
// for the collectors. Run it while the spawner still reaps.
func (t *procTable) close() {
	t.mu.Lock()
	t.closed = true
	procs := append([]*bgProc(nil), t.order...)
	t.mu.Unlock()
	for _, p := range procs {
		p.proc.kill()
	}
	t.wg.Wait()
}

// serveProc answers one proc op on conn.
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
	if req.Op == agentproto.OpProcList {
		final(agentproto.Event{Type: agentproto.EventProcs, Proc: &agentproto.ProcPayload{List: t.list()}}, nil)
		return
	}
	if req.Op == agentproto.OpProcStart {
		procFinal(t.start(a, req.Proc))
		return
	}
	p, err := t.get(req.Proc.ID)
	if err != nil {
		final(agentproto.Event{}, err)
		return
	}
	switch req.Op {
	case agentproto.OpProcStdin:
		err := p.writeStdin(req.Proc.Data, req.Proc.Close)
		procFinal(p.info(), err)
	case agentproto.OpProcSignal:
		sig, _ := parseSignal(req.Proc.Signal)
		procFinal(p.info(), p.signal(sig))
	case agentproto.OpProcKill:
		p.proc.kill()
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
		end, lost, err := streamOutput(outCtx, w, p, req.Proc.Offset, req.Proc.Follow)
		if err == nil && outCtx.Err() == nil {
			info := p.info()
			final(agentproto.Event{Type: agentproto.EventProc, Proc: &agentproto.ProcPayload{Info: &info, End: end, Lost: lost}}, nil)
		}
		conn.Close()
		<-watchDone
	}
}

// streamOutput writes p's output from offset as events, and with follow
// waits for more until the output is complete. It returns the offset
// after the last byte sent and the lost bytes not reported in an event.
func streamOutput(ctx context.Context, w *eventWriter, p *bgProc, offset int64, follow bool) (end, lost int64, err error) {
	for {
		chunks, l, next, done, changed := p.since(offset)
		// Bytes dropped before they could be sent (also while following a
		// process that writes faster than the client reads) are reported
		// with the next chunk.
		lost += l
		for i, c := range chunks {
			pl := &agentproto.ProcPayload{Stream: c.stream, Data: c.data, Offset: c.off, Lost: lost}
			lost = 0
			if err := writeProcEvent(w, agentproto.Event{Type: agentproto.EventProcOutput, Proc: pl}, i == len(chunks)-1); err != nil {
				return next, 0, err
			}
		}
		offset = next
		if !follow || done {
			return offset, lost, nil
		}
		select {
		case <-ctx.Done():
			return offset, 0, ctx.Err()
		case <-changed:
		}
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
