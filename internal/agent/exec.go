package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/agent/execpath"
	"github.com/sdbx/sdbx/internal/agent/kernel"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// validateExec checks an ExecRequest's fields. Errors wrap
// errdefs.ErrInvalidArgument and name the field.
func validateExec(req *agentproto.ExecRequest) error {
	if len(req.Args) == 0 {
		return fmt.Errorf("exec.args: must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if req.Args[0] == "" {
		return fmt.Errorf("exec.args[0]: must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	for i, arg := range req.Args {
		if strings.IndexByte(arg, 0) >= 0 {
			return fmt.Errorf("exec.args[%d]: contains a NUL byte: %w", i, errdefs.ErrInvalidArgument)
		}
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("exec.env: invalid variable name %q (empty, or contains '=' or NUL): %w", k, errdefs.ErrInvalidArgument)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("exec.env[%q]: value contains a NUL byte: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if req.Cwd != "" && !filepath.IsAbs(req.Cwd) {
		return fmt.Errorf("exec.cwd: %q is not an absolute path: %w", req.Cwd, errdefs.ErrInvalidArgument)
	}
	if strings.IndexByte(req.Cwd, 0) >= 0 {
		return fmt.Errorf("exec.cwd: contains a NUL byte: %w", errdefs.ErrInvalidArgument)
	}
	if req.TimeoutMs < 0 {
		return fmt.Errorf("exec.timeoutMs: must not be negative, got %d: %w", req.TimeoutMs, errdefs.ErrInvalidArgument)
	}
	return nil
}

// command is a validated request resolved against the file system.
type command struct {
	path string   // executable to execve
	argv []string // Args
	env  []string // "K=V", sorted
	dir  string   // working directory
}

// resolve checks the working directory and finds the executable.
func (a *Agent) resolve(req *agentproto.ExecRequest) (command, error) {
	c := command{argv: req.Args, dir: req.Cwd}
	if c.dir == "" {
		c.dir = a.cwd
	}
	fi, err := os.Stat(c.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, fmt.Errorf("exec.cwd: directory %q not found: %w", c.dir, errdefs.ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return c, fmt.Errorf("exec.cwd: directory %q: %w", c.dir, errdefs.ErrPermissionDenied)
	case err != nil:
		return c, fmt.Errorf("exec.cwd: directory %q: %v: %w", c.dir, execpath.ErrnoText(err), errdefs.ErrInvalidArgument)
	case !fi.IsDir():
		return c, fmt.Errorf("exec.cwd: %q is not a directory: %w", c.dir, errdefs.ErrInvalidArgument)
	}

	c.env = make([]string, 0, len(req.Env))
	for k, v := range req.Env {
		c.env = append(c.env, k+"="+v)
	}
	slices.Sort(c.env)

	name := req.Args[0]
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.dir, p)
		}
		if err := execpath.Check(p); err != nil {
			return c, fmt.Errorf("executable %q %w", name, err)
		}
		c.path = p
		return c, nil
	}
	pathEnv, ok := req.Env["PATH"]
	if !ok {
		pathEnv = execpath.DefaultPath
	}
	var denied error
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.dir, p)
		}
		err := execpath.Check(p)
		if err == nil {
			c.path = p
			return c, nil
		}
		if errors.Is(err, errdefs.ErrPermissionDenied) && denied == nil {
			denied = fmt.Errorf("executable %q in PATH %w", name, err)
		}
	}
	if denied != nil {
		return c, denied
	}
	return c, fmt.Errorf("executable %q not found in PATH: %w", name, errdefs.ErrNotFound)
}

// process is a running command's main process and its process group.
type process struct {
	pid int

	mu       sync.Mutex
	exited   bool // its status was collected: the pid may be reused
	timedOut bool // the timeout killed it
}

// kill sends SIGKILL to the process group while the main process has not
// been reaped. It reports whether the signal was sent.
func (p *process) kill() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return false
	}
	return syscall.Kill(-p.pid, syscall.SIGKILL) == nil
}

// timeout kills the process group and records that the timeout did it.
func (p *process) timeout() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	if syscall.Kill(-p.pid, syscall.SIGKILL) == nil {
		p.timedOut = true
	}
}

// reaped marks the main process as collected and reports whether the
// timeout killed it.
func (p *process) reaped() (timedOut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exited = true
	return p.timedOut
}

// exitCode returns the shell-style exit code of a wait status: the exit
// status, or 128+signal for a process killed by a signal.
func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 128
}

// exec runs one command and streams its events to w until its exit, or
// until gone is closed (the client went away), which kills the command's
// process group and stops all writes.
func (a *Agent) exec(w *eventWriter, req *agentproto.ExecRequest, sp kernel.Spawner, gone <-chan struct{}) {
	cmd, err := a.resolve(req)
	if err != nil {
		_ = w.end(errorEvent(err))
		return
	}

	std, err := openStdio()
	if err != nil {
		_ = w.end(errorEvent(execpath.StartError(req.Args[0], err)))
		return
	}
	attr := &syscall.ProcAttr{
		Dir:   cmd.dir,
		Env:   cmd.env,
		Files: std.childFds(),
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	pid, status, err := sp.Start(cmd.path, cmd.argv, attr)
	std.closeChild()
	if err != nil {
		std.closeAgent()
		_ = w.end(errorEvent(execpath.StartError(req.Args[0], err)))
		return
	}
	defer std.closeAgent()
	outR, errR := std.outR, std.errR
	p := &process{pid: pid}
	a.log.Debug("command started", "pid", pid, "path", cmd.path)

	if req.TimeoutMs > 0 {
		t := time.AfterFunc(time.Duration(req.TimeoutMs)*time.Millisecond, p.timeout)
		defer t.Stop()
	}

	writing := true
	stopWriting := func() {
		writing = false
		p.kill()
		now := time.Now()
		_ = outR.SetReadDeadline(now)
		_ = errR.SetReadDeadline(now)
	}
	if err := w.writeFinal(agentproto.Event{Type: agentproto.EventStarted, Pid: pid, TS: time.Now().UnixMilli()}); err != nil {
		stopWriting()
	}

	events := make(chan agentproto.Event, 64)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		readLines(outR, agentproto.EventStdout, events)
	}()
	go func() {
		defer readers.Done()
		readLines(errR, agentproto.EventStderr, events)
	}()
	go func() {
		readers.Wait()
		close(events)
	}()

	var ws syscall.WaitStatus
	var timedOut bool
	for events != nil || status != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !writing {
				continue
			}
			// Flush as soon as no further line is ready: lines reach the
			// client when produced, and bursts share a write.
			if err := w.write(ev, len(events) == 0); err != nil {
				stopWriting()
			}
		case ws = <-status:
			status = nil
			timedOut = p.reaped()
			// A background child may hold the pipes open: read what is
			// already there, but not for long.
			deadline := time.Now().Add(a.drain)
			if !writing {
				deadline = time.Now()
			}
			_ = outR.SetReadDeadline(deadline)
			_ = errR.SetReadDeadline(deadline)
		case <-gone:
			gone = nil
			if writing {
				stopWriting()
			}
		}
	}
	// The command is over: what it left in its process group goes too
	// (stray children, fork bombs). The group id can't have been reused
	// while members remain; once none do, this is ESRCH. Processes that
	// started their own session (setsid) are not touched.
	killGroup(pid)
	if !writing {
		a.log.Debug("command cancelled by its client", "pid", pid)
		return
	}
	code := exitCode(ws)
	_ = w.end(agentproto.Event{
		Type:     agentproto.EventExit,
		ExitCode: code,
		TimedOut: timedOut && ws.Signaled(),
		TS:       time.Now().UnixMilli(),
	})
	a.log.Debug("command exited", "pid", pid, "code", code, "timed_out", timedOut)
}

// stdio holds a command's standard files: the child's ends (/dev/null as
// stdin, the write ends of the output pipes) and the agent's read ends.
type stdio struct {
	devNull, outW, errW *os.File
	outR, errR          *os.File
}

// openStdio opens /dev/null and the two output pipes.
func openStdio() (*stdio, error) {
	var s stdio
	var err error
	if s.devNull, err = os.Open(os.DevNull); err != nil {
		return nil, err
	}
	if s.outR, s.outW, err = os.Pipe(); err != nil {
		s.closeChild()
		return nil, err
	}
	if s.errR, s.errW, err = os.Pipe(); err != nil {
		s.closeChild()
		s.closeAgent()
		return nil, err
	}
	return &s, nil
}

// childFds returns the child's stdin, stdout and stderr. Fd puts the
// child's ends in blocking mode, as programs expect; the read ends stay
// non-blocking so that read deadlines work.
func (s *stdio) childFds() []uintptr {
	return []uintptr{s.devNull.Fd(), s.outW.Fd(), s.errW.Fd()}
}

// closeChild closes the agent's copies of the child's ends, so that the
// read ends see EOF once every process holding them has exited.
func (s *stdio) closeChild() {
	for _, f := range []*os.File{s.devNull, s.outW, s.errW} {
		if f != nil {
			f.Close()
		}
	}
}

// closeAgent closes the read ends.
func (s *stdio) closeAgent() {
	for _, f := range []*os.File{s.outR, s.errR} {
		if f != nil {
			f.Close()
		}
	}
}

// readLines reads the pipe f until EOF or its read deadline (see
// pipeReader) and sends each line as an event of type typ.
func readLines(f *os.File, typ string, events chan<- agentproto.Event) {
	lr := newLineReader(newPipeReader(f), agentproto.MaxLine)
	for {
		line, err := lr.next()
		if err != nil {
			return
		}
		events <- agentproto.Event{Type: typ, Data: string(line), TS: time.Now().UnixMilli()}
	}
}

// killGroup SIGKILLs process group pgid until it is empty: a member may
// fork while the first signal is delivered (a fork bomb does nothing else).
func killGroup(pgid int) {
	for i := 0; i < 100; i++ {
		if syscall.Kill(-pgid, syscall.SIGKILL) != nil {
			return // ESRCH: nobody left
		}
		time.Sleep(time.Millisecond)
	}
}
