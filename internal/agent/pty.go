package agent

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/agent/execpath"
	"github.com/sdbx/sdbx/internal/agent/procfs"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/term"
)

// Terminal sessions: a procTable of kind ptyKind holds them; this file
// has what differs from background processes (the pseudo-terminal, the
// session, the size).

// ptyKeepExited is how many exited terminal sessions are remembered.
const ptyKeepExited = 16

// Default terminal size.
const (
	defaultCols = 80
	defaultRows = 24
)

// ptyKind is the kind of the terminal session table.
var ptyKind = tableKind{what: "terminal session", idPrefix: "pty_", maxRunning: agentproto.MaxPTYs, keepExited: ptyKeepExited, tty: true}

// defaultShell is the command of a session that names none: an
// interactive bash, or sh where there is no bash.
func defaultShell() []string {
	if execpath.Check("/bin/bash") == nil {
		return []string{"/bin/bash", "-i"}
	}
	return []string{"/bin/sh", "-i"}
}

// spawnTTY starts cmd on a new pseudo-terminal, in a session of its own
// with the terminal as its controlling terminal, and returns the function
// that collects its output and exit status.
func (t *procTable) spawnTTY(p *bgProc, cmd command, cols, rows int) (func(), error) {
	if cols == 0 && rows == 0 {
		cols, rows = defaultCols, defaultRows
	}
	master, slave, err := term.OpenPTY()
	if err != nil {
		return nil, err
	}
	if err := term.SetSize(master, cols, rows); err != nil {
		master.Close()
		slave.Close()
		return nil, err
	}
	fd := slave.Fd()
	attr := &syscall.ProcAttr{
		Dir:   cmd.dir,
		Env:   cmd.env,
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	}
	pid, status, err := t.sp.Start(cmd.path, cmd.argv, attr)
	slave.Close()
	if err != nil {
		master.Close()
		return nil, err
	}
	p.proc, p.tty, p.stdin = &process{pid: pid}, master, master
	p.cols, p.rows = cols, rows
	return func() { t.runTTY(p, status) }, nil
}

// runTTY collects a terminal session's output and exit status. When the
// main process exits, the rest of its session is killed; output is then
// read until every holder of the terminal has closed it (or the drain
// time has passed).
func (t *procTable) runTTY(p *bgProc, status <-chan syscall.WaitStatus) {
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.out.readFrom(p.tty, agentproto.StreamPTY)
	}()
	ws := <-status
	// The session's id is the main process's pid; it cannot be reused
	// while members remain.
	killSession(p.proc.pid)
	p.setExited(ws)
	_ = p.tty.SetReadDeadline(time.Now().Add(t.drain))
	<-read
	p.closeStdin() // the master
	t.finish(p, ws)
}

// resize sets a terminal session's size.
func (p *bgProc) resize(cols, rows int) error {
	if p.tty == nil {
		return fmt.Errorf("process %q has no terminal: %w", p.id, errdefs.ErrInvalidArgument)
	}
	if !p.proc.alive() {
		return fmt.Errorf("%s %q has exited: %w", p.what, p.id, errdefs.ErrConflict)
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		return fmt.Errorf("%s %q has exited: %w", p.what, p.id, errdefs.ErrConflict)
	}
	if err := term.SetSize(p.tty, cols, rows); err != nil {
		return fmt.Errorf("resize %s %q: %v: %w", p.what, p.id, execpath.ErrnoText(err), errdefs.ErrInternal)
	}
	p.mu.Lock()
	p.cols, p.rows = cols, rows
	p.mu.Unlock()
	return nil
}

// foreground returns the foreground process group of the terminal.
func foreground(tty *os.File) (int, error) { return term.Foreground(tty) }

// killSession SIGKILLs every process of session sid (found in /proc)
// until none is left: the session's jobs live in process groups of their
// own, and a member may fork while the signals are sent.
func killSession(sid int) {
	for range 100 {
		pids := sessionMembers(sid)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
}

// sessionMembers returns the live (not zombie) processes of session sid.
func sessionMembers(sid int) []int {
	var out []int
	for _, p := range procfs.Read("/proc") {
		if p.Live() && p.Sid == sid {
			out = append(out, p.PID)
		}
	}
	return out
}
