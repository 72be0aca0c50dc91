package linux

import (
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initProc is a started "sdbx __init" that waits on its control socket
// for the sandbox it is to set up.
//
// Starting init (fork, exec and the Go runtime's start of the sdbx binary)
// is most of a Create's time and needs nothing of the sandbox, so the
// driver keeps one init started ahead of the next Create (the spare):
// the sandbox's listener and log file go to it over the control socket
// with its config. A spare is in no sandbox's cgroups and runs nothing of
// a sandbox's; when the server goes, its control socket reaches EOF and
// it exits.
type initProc struct {
	cmd    *exec.Cmd
	ctrl   int      // the driver's end of the control socket (init's configFD)
	status *os.File // read end of the status pipe (init's statusFD)
	// renew replaces the spare when it gets old (nil for an init that was
	// never a spare).
	renew *time.Timer
}

// spareMaxAge is how long a spare waits before it is replaced: its mount
// namespace is a copy of the host's from when it started (the host's
// mounts may be private, so later ones don't reach it).
const spareMaxAge = time.Minute

// startInit starts an init process. It is not reaped until it is taken
// (start) or killed (kill).
func (d *Driver) startInit() (*initProc, error) {
	// A SOCK_SEQPACKET pair keeps the config (with its descriptors) and
	// the go-ahead apart as messages.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	child := os.NewFile(uintptr(fds[1]), "init-control")
	stR, stW, err := os.Pipe()
	if err != nil {
		unix.Close(fds[0])
		child.Close()
		return nil, fmt.Errorf("status pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path: d.cfg.Exe,
		Args: []string{"sdbx", InitVerb},
		Env:  []string{}, // nothing of the server's environment
		Dir:  "/",
		// fd 3 (listenFD) stays free for the listener init receives.
		ExtraFiles: []*os.File{nil, child, stW}, // fds 3, 4, 5
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: cloneFlags,
			// A session of its own keeps a terminal's ^C or hang-up for the
			// server away from the sandbox. No Pdeathsig: sandboxes outlive
			// the server that started them.
			Setsid: true,
		},
	}
	err = cmd.Start()
	// The child has its copies; the driver keeps its own ends only (EOF
	// on the status pipe is how it learns of the exec).
	child.Close()
	stW.Close()
	if err != nil {
		unix.Close(fds[0])
		stR.Close()
		return nil, fmt.Errorf("run init: %w", err)
	}
	return &initProc{cmd: cmd, ctrl: fds[0], status: stR}, nil
}

// spareNice is the nice value a spare starts with: its start shares the
// CPUs with the sandbox just created (agent and interpreter starting),
// which goes first.
const spareNice = 10

// startNiceInit starts an init at spareNice. A thread's nice value is its
// own and its children inherit it, so the fork happens on a thread set
// to it, which then ends with its goroutine (locked, never unlocked).
func (d *Driver) startNiceInit() (*initProc, error) {
	goruntime.LockOSThread()
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, spareNice); err != nil {
		d.log.Debug("lower the priority of a spare init", "err", err)
	}
	return d.startInit()
}

// takeInit returns the spare init, or a new one when there is none (or it
// died). A spare's main thread gets the normal priority back; the thread
// that executes the agent resets its own (InitMain).
func (d *Driver) takeInit() (*initProc, error) {
	p := d.takeSpare(nil)
	if p != nil && p.waiting() {
		_ = unix.Setpriority(unix.PRIO_PROCESS, p.cmd.Process.Pid, 0)
		return p, nil
	}
	if p != nil {
		p.kill()
	}
	return d.startInit()
}

// takeSpare removes the spare from the driver and returns it: any spare,
// or only want when it is not nil.
func (d *Driver) takeSpare(want *initProc) *initProc {
	d.spareMu.Lock()
	defer d.spareMu.Unlock()
	p := d.spare
	if p == nil || (want != nil && p != want) {
		return nil
	}
	d.spare = nil
	// A renewal already under way finds the spare gone.
	p.renew.Stop()
	return p
}

// renewSpare replaces spare p, which got old, unless it was taken.
func (d *Driver) renewSpare(p *initProc) {
	d.spareMu.Lock()
	if d.closed {
		d.spareMu.Unlock()
		return
	}
	// Counted before closeSpare can wait (it sets closed first).
	d.refills.Add(1)
	d.spareMu.Unlock()
	defer d.refills.Done()
	if d.takeSpare(p) != nil {
		p.kill()
		d.refill()
	}
}

// refill starts a spare init in the background unless one is there or
// the driver is closed.
func (d *Driver) refill() {
	d.spareMu.Lock()
	defer d.spareMu.Unlock()
	if d.closed || d.spare != nil || d.refilling {
		return
	}
	d.refilling = true
	d.refills.Go(func() {
		p, err := d.startNiceInit()
		if err != nil {
			d.log.Warn("start a spare sandbox init", "err", err)
		}
		d.spareMu.Lock()
		d.refilling = false
		keep := err == nil && !d.closed
		if keep {
			d.spare = p
			p.renew = time.AfterFunc(d.spareAge, func() { d.renewSpare(p) })
		}
		d.spareMu.Unlock()
		if err == nil && !keep {
			p.kill()
		}
	})
}

// closeSpare stops the refills and kills the spare; later Creates start
// their init themselves.
func (d *Driver) closeSpare() {
	d.spareMu.Lock()
	d.closed = true
	d.spareMu.Unlock()
	d.refills.Wait()
	if p := d.takeSpare(nil); p != nil {
		p.kill()
	}
}

// kill ends an init that was never handed a sandbox (or failed before it
// was reaped) and reaps it.
func (p *initProc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.closeFDs()
}

func (p *initProc) closeFDs() {
	p.endControl()
	p.status.Close()
}

// waiting reports whether the init still holds its end of the control
// socket (a spare that died, killed by someone, would fail its Create).
func (p *initProc) waiting() bool {
	fds := []unix.PollFd{{Fd: int32(p.ctrl), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 1 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) == 0
}

// send sends one message on the control socket, with descriptors.
func (p *initProc) send(b []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(p.ctrl, b, oob, nil, 0)
}

// endControl closes the driver's end of the control socket: init reads
// EOF after the go-ahead.
func (p *initProc) endControl() {
	if p.ctrl >= 0 {
		unix.Close(p.ctrl)
		p.ctrl = -1
	}
}
