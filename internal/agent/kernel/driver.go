package kernel

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
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agent/execpath"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// Spawner starts processes. The agent passes its own, so that when it is
// PID 1 a single wait4(-1) loop reaps every process of the sandbox.
type Spawner interface {
	// Start fork-execs path and returns the child's pid and a channel that
	// receives its wait status exactly once, after it has been reaped.
	Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error)
}

// WaitSpawner is a Spawner that waits for each child by its pid, for
// processes that are not PID 1.
type WaitSpawner struct{}

var _ Spawner = WaitSpawner{}

// Start implements Spawner.
func (WaitSpawner) Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	// Ends when the child has been reaped; its receiver is the driver.
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		ch <- ws
	}()
	return pid, ch, nil
}

// Sink receives the events of one execution, in order. Calls never
// overlap. more is set when another output line is already waiting, so
// the sink may leave its buffer unflushed.
type Sink func(ev agentproto.Event, more bool)

// driverRequest is a request line to a driver.
type driverRequest struct {
	Type  string            `json:"type"`
	ID    string            `json:"id"`
	Count int               `json:"count"`
	Code  string            `json:"code"`
	Env   map[string]string `json:"env,omitempty"`
}

// driverMsg is a message line from a driver (see python/driver.py).
type driverMsg struct {
	Type      string                     `json:"type"`
	ID        string                     `json:"id"`
	Sync      uint64                     `json:"sync"`
	Data      map[string]json.RawMessage `json:"data"`
	Main      bool                       `json:"main"`
	Name      string                     `json:"name"`
	Value     string                     `json:"value"`
	Traceback string                     `json:"traceback"`
	Pid       int                        `json:"pid"`
	Version   string                     `json:"version"`
}

// maxMessage bounds one message line from a driver.
const maxMessage = agentproto.MaxResult + 1<<20

// maxEarly bounds the output kept from a driver's start, for errors.
const maxEarly = 4096

// execution routes a driver's output and messages to one run's sink.
type execution struct {
	id       string
	msgs     chan driverMsg
	finished chan struct{}

	mu     sync.Mutex // serializes sink calls
	sink   Sink
	closed bool
}

func newExecution(id string, sink Sink) *execution {
	return &execution{id: id, sink: sink, msgs: make(chan driverMsg, 8), finished: make(chan struct{})}
}

// emit passes ev to the sink unless the execution has finished.
func (e *execution) emit(ev agentproto.Event, more bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed && e.sink != nil {
		e.sink(ev, more)
	}
}

// finish stops all further emits. Safe to call twice.
func (e *execution) finish() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.finished)
	}
}

// driver is one running interpreter driver process and the goroutines
// that read its pipes.
type driver struct {
	log   *slog.Logger
	lang  *language
	pid   int
	token string
	tag   string
	drain time.Duration

	reqW             *os.File
	msgR, outR, errR *os.File

	exited  chan struct{} // closed once the process has been reaped
	ws      syscall.WaitStatus
	ready   chan driverMsg
	closing chan struct{} // closed when shutdown starts

	// out and err read stdout and stderr; marked is signalled after each
	// sync marker read from either.
	out, err *outStream
	marked   chan struct{}

	mu      sync.Mutex
	cur     *execution
	isReady bool
	early   []byte // output before ready
	// delivered is the last sync number whose message was passed on (or
	// dropped); deliveredCh is closed and replaced when it grows.
	delivered   uint64
	deliveredCh chan struct{}

	readers  sync.WaitGroup
	shutOnce sync.Once
	shutDone chan struct{}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// spawnDriver starts the driver of lang with interpreter exe in dir with
// environment env. It does not wait for the driver to be ready.
func spawnDriver(sp Spawner, log *slog.Logger, lang *language, script, exe, dir string, env map[string]string, tag string, drain time.Duration) (*driver, error) {
	d := &driver{
		log:      log,
		lang:     lang,
		token:    randomHex(8),
		tag:      tag,
		drain:    drain,
		exited:   make(chan struct{}),
		ready:    make(chan driverMsg, 1),
		closing:  make(chan struct{}),
		marked:   make(chan struct{}, 1),
		shutDone: make(chan struct{}),

		deliveredCh: make(chan struct{}),
	}
	envv := make([]string, 0, len(env)+2)
	for k, v := range env {
		if k != tagVar && k != "SDBX_KERNEL_TOKEN" {
			envv = append(envv, k+"="+v)
		}
	}
	envv = append(envv, tagVar+"="+tag, "SDBX_KERNEL_TOKEN="+d.token)

	var parentEnds, childEnds []*os.File
	fail := func(err error) (*driver, error) {
		for _, f := range append(parentEnds, childEnds...) {
			f.Close()
		}
		return nil, err
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", os.DevNull, errdefs.ErrInternal))
	}
	childEnds = append(childEnds, devNull)
	pipe := func(childReads bool) (parent, child *os.File, err error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("pipe: %v: %w", err, errdefs.ErrUnavailable)
		}
		if childReads {
			parent, child = w, r
		} else {
			parent, child = r, w
		}
		parentEnds = append(parentEnds, parent)
		childEnds = append(childEnds, child)
		return parent, child, nil
	}
	var outW, errW, reqR, msgW, scriptR, scriptW *os.File
	if d.outR, outW, err = pipe(false); err != nil {
		return fail(err)
	}
	if d.errR, errW, err = pipe(false); err != nil {
		return fail(err)
	}
	if d.reqW, reqR, err = pipe(true); err != nil {
		return fail(err)
	}
	if d.msgR, msgW, err = pipe(false); err != nil {
		return fail(err)
	}
	if d.out, err = newOutStream(d.outR, agentproto.EventStdout, d.token); err != nil {
		return fail(err)
	}
	if d.err, err = newOutStream(d.errR, agentproto.EventStderr, d.token); err != nil {
		return fail(err)
	}
	if scriptW, scriptR, err = pipe(true); err != nil {
		return fail(err)
	}
	// The script must fit in the pipe: it is written before the driver
	// runs to read it.
	if len(script) >= 60*1024 {
		if _, err := unix.FcntlInt(scriptW.Fd(), unix.F_SETPIPE_SZ, len(script)+4096); err != nil {
			return fail(fmt.Errorf("grow script pipe: %v: %w", err, errdefs.ErrInternal))
		}
	}
	if _, err := io.WriteString(scriptW, script); err != nil {
		return fail(fmt.Errorf("write driver script: %v: %w", err, errdefs.ErrInternal))
	}
	scriptW.Close()
	parentEnds = parentEnds[:len(parentEnds)-1]

	// Fd puts the child's ends in blocking mode, as interpreters expect;
	// the agent's ends stay non-blocking so that deadlines work.
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   envv,
		Files: []uintptr{devNull.Fd(), outW.Fd(), errW.Fd(), reqR.Fd(), msgW.Fd(), outW.Fd(), errW.Fd(), scriptR.Fd()},
		// Its own session (and process group), so that signals reach all
		// of its children and the session finds them later.
		Sys: &syscall.SysProcAttr{Setsid: true},
	}
	argv := append([]string{exe}, lang.args...)
	pid, status, err := sp.Start(exe, argv, attr)
	for _, f := range childEnds {
		f.Close()
	}
	childEnds = nil
	if err != nil {
		return fail(execpath.StartError(exe, err))
	}
	d.pid = pid
	go func() {
		d.ws = <-status
		close(d.exited)
	}()
	d.readers.Add(3)
	go d.readStream(d.out)
	go d.readStream(d.err)
	go d.readMessages()
	return d, nil
}

// waitReady waits for the driver's ready message.
func (d *driver) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.ready:
		d.mu.Lock()
		d.isReady = true
		d.early = nil
		d.mu.Unlock()
		return nil
	case <-d.exited:
		d.shutdown()
		return fmt.Errorf("%s interpreter exited at start (%s)%s: %w", d.lang.name, statusText(d.ws), d.earlyText(), errdefs.ErrInternal)
	case <-t.C:
		return fmt.Errorf("%s interpreter not ready after %v%s: %w", d.lang.name, timeout, d.earlyText(), errdefs.ErrUnavailable)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s interpreter start: %w: %w", d.lang.name, errdefs.ErrTimeout, ctx.Err())
		}
		return fmt.Errorf("%s interpreter start: %w", d.lang.name, ctx.Err())
	}
}

// earlyText returns the output of a driver that failed to start.
func (d *driver) earlyText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := strings.TrimSpace(string(d.early))
	if s == "" {
		return ""
	}
	return ": " + s
}

// statusText describes a wait status.
func statusText(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		s := fmt.Sprintf("killed by signal %s", unix.SignalName(ws.Signal()))
		if ws.Signal() == syscall.SIGKILL {
			s += ", out of memory?"
		}
		return s
	}
	return "unknown status"
}

// setCurrent routes output and messages to ex until clearCurrent.
func (d *driver) setCurrent(ex *execution) {
	d.mu.Lock()
	d.cur = ex
	d.mu.Unlock()
}

func (d *driver) clearCurrent(ex *execution) {
	d.mu.Lock()
	if d.cur == ex {
		d.cur = nil
	}
	d.mu.Unlock()
}

// current returns the running execution, and keeps line as start output
// while the driver is not ready.
func (d *driver) current(line []byte) *execution {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil && !d.isReady && len(d.early) < maxEarly {
		d.early = append(d.early, line[:min(len(line), maxEarly-len(d.early))]...)
		d.early = append(d.early, '\n')
	}
	return d.cur
}

// outStream is the agent's end of a driver's stdout or stderr pipe. The
// pipe is read only inside its raw connection's callbacks and with mu
// held, by the stream's reader goroutine or by drain, so that whoever
// holds mu has passed on everything read before.
type outStream struct {
	typ string
	rc  syscall.RawConn
	seq atomic.Uint64 // the last sync marker read

	mu sync.Mutex
	fd int // valid only inside a callback of rc, with mu held
	sp *splitter
}

func newOutStream(f *os.File, typ, token string) (*outStream, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%s pipe: %v: %w", typ, err, errdefs.ErrInternal)
	}
	st := &outStream{typ: typ, rc: rc, fd: -1}
	st.sp = newSplitter(st, token, agentproto.MaxLine)
	return st, nil
}

// locked runs f with st.mu held and st.fd set to fd, the pipe's
// descriptor inside a callback of st.rc.
func (st *outStream) locked(fd uintptr, f func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.fd = int(fd)
	defer func() { st.fd = -1 }()
	f()
}

// Read reads the pipe without blocking: errAgain when it is empty.
func (st *outStream) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(st.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errAgain
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// readStream reads stdout or stderr: lines go to the current execution
// (lines written while none runs are dropped), markers advance st.seq.
func (d *driver) readStream(st *outStream) {
	defer d.readers.Done()
	for {
		var seq uint64
		var serr error
		err := st.rc.Read(func(fd uintptr) bool {
			st.locked(fd, func() { seq, serr = d.passLines(st) })
			return serr != errAgain
		})
		if err != nil || serr != nil {
			return
		}
		st.seq.Store(seq)
		select {
		case d.marked <- struct{}{}:
		default:
		}
		// Output written after the message must not overtake it.
		d.waitDelivered(seq)
	}
}

// passLines passes the lines of st to the current execution until the
// next marker, whose number it returns, or until the splitter's error
// (errAgain when the pipe is empty). With st.mu held, inside a callback of
// st.rc.
func (d *driver) passLines(st *outStream) (uint64, error) {
	for {
		line, seq, err := st.sp.next()
		if err != nil {
			return 0, err
		}
		if seq > 0 {
			return seq, nil
		}
		d.passLine(st, line, st.sp.pending())
	}
}

// passAll passes every line st holds now: markers are taken as read and a
// partial line at the end is passed on too. With st.mu held, inside a
// callback of st.rc.
func (d *driver) passAll(st *outStream) {
	for {
		seq, err := d.passLines(st)
		if err == nil {
			st.seq.Store(seq)
			continue
		}
		if err == errAgain {
			if rest := st.sp.rest(); rest != nil {
				d.passLine(st, rest, false)
			}
		}
		return
	}
}

func (d *driver) passLine(st *outStream, line []byte, more bool) {
	if ex := d.current(line); ex != nil {
		ex.emit(agentproto.Event{Type: st.typ, Data: string(line), TS: time.Now().UnixMilli()}, more)
	}
}

// drainOutput passes on everything the driver's stdout and stderr pipes hold
// now, partial lines included. A message that comes without a sync marker
// (the driver's last one of a run) is delivered after drainOutput: whatever the
// driver and its processes wrote to fd 1 and 2 before it is in the pipes
// by then. Every earlier message must have been delivered.
func (d *driver) drainOutput() {
	for _, st := range []*outStream{d.out, d.err} {
		_ = st.rc.Control(func(fd uintptr) {
			st.locked(fd, func() { d.passAll(st) })
		})
	}
}

// setDelivered records that the message with sync number n was passed on
// or dropped.
func (d *driver) setDelivered(n uint64) {
	if n == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n > d.delivered {
		d.delivered = n
		close(d.deliveredCh)
		d.deliveredCh = make(chan struct{})
	}
}

// waitDelivered waits until the message with sync number n was passed on
// or dropped, or the driver shuts down.
func (d *driver) waitDelivered(n uint64) {
	for {
		d.mu.Lock()
		if d.delivered >= n {
			d.mu.Unlock()
			return
		}
		ch := d.deliveredCh
		d.mu.Unlock()
		select {
		case <-ch:
		case <-d.closing:
			return
		}
	}
}

// synced reports whether both output streams have passed marker seq.
func (d *driver) synced(seq uint64) bool {
	return seq == 0 || d.out.seq.Load() >= seq && d.err.seq.Load() >= seq
}

// readMessages reads the driver's message lines and hands those of the
// current execution to it.
func (d *driver) readMessages() {
	defer d.readers.Done()
	br := bufio.NewReaderSize(d.msgR, 64*1024)
	var buf []byte
	for {
		var tooLong bool
		var err error
		buf, tooLong, err = readLine(br, buf[:0], maxMessage)
		if err != nil {
			return
		}
		if tooLong {
			d.log.Warn("context driver message too long; dropped", "pid", d.pid)
			continue
		}
		var m driverMsg
		if err := json.Unmarshal(buf, &m); err != nil {
			d.log.Warn("context driver sent a bad message", "pid", d.pid, "err", err)
			continue
		}
		if m.Type == "ready" {
			select {
			case d.ready <- m:
			default:
			}
			continue
		}
		d.mu.Lock()
		ex := d.cur
		d.mu.Unlock()
		if ex == nil || ex.id != m.ID {
			d.setDelivered(m.Sync)
			continue
		}
		select {
		case ex.msgs <- m:
		case <-ex.finished:
			d.setDelivered(m.Sync)
		case <-d.closing:
		}
	}
}

// readLine returns the next line of br without its newline, appended to
// buf. A line longer than max is skipped and reported as tooLong.
func readLine(br *bufio.Reader, buf []byte, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max {
				tooLong = true
				buf = buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			if !tooLong {
				buf = buf[:len(buf)-1]
			}
			return buf, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, tooLong, err
		}
	}
}

// alive reports whether the driver process has not been reaped.
func (d *driver) alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// interrupt sends SIGINT to the driver, or to its whole process group.
func (d *driver) interrupt(group bool) {
	if !d.alive() {
		return
	}
	if group {
		_ = syscall.Kill(-d.pid, syscall.SIGINT)
		return
	}
	_ = syscall.Kill(d.pid, syscall.SIGINT)
}

// kill sends SIGKILL to the driver and every process of its context.
func (d *driver) kill() {
	driverPid := d.pid
	if !d.alive() {
		driverPid = 0
	}
	killContextProcs("/proc", driverPid, d.pid, d.tag)
}

// shutdown kills the driver and its processes, reads what is left in its
// pipes (for at most the drain time), stops its goroutines and closes its
// files. Safe to call more than once and concurrently.
func (d *driver) shutdown() {
	d.shutOnce.Do(func() {
		close(d.closing)
		d.reqW.Close()
		d.kill()
		<-d.exited
		deadline := time.Now().Add(d.drain)
		for _, f := range []*os.File{d.outR, d.errR, d.msgR} {
			_ = f.SetReadDeadline(deadline)
		}
		d.readers.Wait()
		for _, f := range []*os.File{d.outR, d.errR, d.msgR} {
			f.Close()
		}
		close(d.shutDone)
	})
	<-d.shutDone
}
