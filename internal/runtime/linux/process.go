package linux

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"golang.org/x/sys/unix"
)

// cloneFlags are the namespaces init starts in. The cgroup namespace comes
// later (init unshares it once it sits in its cgroups). No user namespace:
// the sandbox runs as the host's uid 0 without capabilities (see
// docs/runtime-linux.md).
const cloneFlags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
	syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC

// agentPATH is the agent's PATH, the usual one of a Debian root shell.
const agentPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// agentProcs is the GOMAXPROCS of an agent limited to cpu CPUs (0 for
// no limit): the limit rounded up, at most the host's CPUs.
func agentProcs(cpu float64) int {
	if cpu <= 0 {
		return 0
	}
	return min(int(math.Ceil(cpu)), goruntime.NumCPU())
}

// maxStatus bounds the error message init can send.
const maxStatus = 64 << 10

// start launches the sandbox's init and returns once it has executed the
// agent (or failed). On failure every process it started is killed.
func (d *Driver) start(ctx context.Context, id string, l layout, spec runtime.Spec) error {
	fail := func(err error) error {
		return fmt.Errorf("sandbox %s: start: %w", id, err)
	}
	cfg := initConfig{
		ID:        id,
		Rootfs:    l.rootfs(),
		Workspace: l.workspace(),
		Home:      l.home(),
		Exe:       d.cfg.Exe,
		TmpMB:     spec.Resources.MemoryMB,
		Env:       []string{"PATH=" + agentPATH, "HOME=/root", "HOSTNAME=" + id, "LANG=C.UTF-8"},
		Procs:     agentProcs(spec.Resources.CPU),
		// Init's thread moves itself when the hierarchy lets it; otherwise
		// the driver moves init with Add below.
		CgroupTasks: d.cg.SelfMove(id),
	}
	if d.cfg.Network != nil {
		cfg.ResolvConf = l.resolvConf()
		// Init binds it while the driver wires the network, which then
		// writes its content in place (see applyNetwork).
		f, err := os.OpenFile(cfg.ResolvConf, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fail(fmt.Errorf("create resolv.conf: %v: %w", err, errdefs.ErrInternal))
		}
		f.Close()
	}
	for i, o := range spec.Overlays {
		cfg.Overlays = append(cfg.Overlays, overlayMount{Target: o.Target, Lower: o.Lower, Upper: l.upper(i), Work: l.work(i)})
	}
	payload, err := json.Marshal(cfg)
	if err != nil {
		return fail(fmt.Errorf("encode init config: %v: %w", err, errdefs.ErrInternal))
	}

	// The driver owns the listening socket: it is listening before init
	// gets it, so connections made as soon as Create returns wait in the
	// backlog until the agent accepts them.
	_ = os.Remove(l.socket())
	lnFile, err := listenUnix(l.socket())
	if err != nil {
		return fail(fmt.Errorf("listen on agent socket: %v: %w", err, errdefs.ErrInternal))
	}
	defer lnFile.Close()
	// unlisten fails the start once the socket exists: it goes too.
	unlisten := func(err error) error {
		_ = os.Remove(l.socket())
		return fail(err)
	}
	logf, err := os.OpenFile(l.logFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return unlisten(fmt.Errorf("open init log: %v: %w", err, errdefs.ErrInternal))
	}
	defer logf.Close()
	p, err := d.takeInit()
	if err != nil {
		return unlisten(fmt.Errorf("%v: %w", err, errdefs.ErrInternal))
	}
	defer p.closeFDs()
	// The next Create's init starts while this one finishes.
	defer d.refill()

	exited := make(chan struct{})
	d.reapers.Go(func() {
		werr := p.cmd.Wait()
		d.log.Debug("sandbox init exited", "sandbox_id", id, "status", werr)
		close(exited)
	})
	abort := func(err error) error {
		_ = p.cmd.Process.Kill()
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if kerr := d.cg.Kill(kctx, id); kerr != nil {
			d.log.Error("kill sandbox after failed start", "sandbox_id", id, "err", kerr)
		}
		select {
		case <-exited:
		case <-kctx.Done():
		}
		return unlisten(err)
	}

	// Init builds the sandbox's root as soon as it has its config (with
	// the listener and its log file) and executes the agent after the
	// go-ahead, which only waits for init to sit in its cgroups: it moves
	// itself there (v1), or the driver moves it first. The network is
	// wired meanwhile; Create returns once both are done, so the
	// sandbox's first command has its link.
	if err := p.send(payload, int(lnFile.Fd()), int(logf.Fd())); err != nil {
		return abort(fmt.Errorf("send init config: %v: %w", err, errdefs.ErrInternal))
	}
	// The server must not keep the listener: a dead sandbox must refuse
	// connections.
	lnFile.Close()
	logf.Close()
	pid := p.cmd.Process.Pid
	if cfg.CgroupTasks == nil {
		if err := d.cg.Add(id, pid); err != nil {
			return abort(fmt.Errorf("%v: %w", err, errdefs.ErrInternal))
		}
	}
	if err := p.send([]byte{goAhead}); err != nil {
		return abort(fmt.Errorf("send go-ahead to init: %v: %w", err, errdefs.ErrInternal))
	}
	p.endControl()
	if err := os.WriteFile(l.pidFile(), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return abort(fmt.Errorf("write pid file: %v: %w", err, errdefs.ErrInternal))
	}
	if err := d.applyNetwork(ctx, id, pid, l, spec.Network); err != nil {
		return abort(err)
	}
	msg, err := readStatus(ctx, p.status)
	if err != nil {
		return abort(kindOf(ctx, fmt.Errorf("wait for init: %w", err)))
	}
	if msg != "" {
		return abort(fmt.Errorf("init: %s: %w", msg, errdefs.ErrInternal))
	}
	// EOF without a message: the status pipe closed on exec, or init died
	// without a word. Only in the first case does the process (not yet
	// reaped: a zombie has an empty cmdline) run the agent.
	if !runsAgent(pid) {
		return abort(fmt.Errorf("init exited before starting the agent (see %s): %w", filepath.Base(l.logFile()), errdefs.ErrInternal))
	}
	return nil
}

// runsAgent reports whether host process pid executes the agent.
func runsAgent(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.HasPrefix(b, []byte(agentPath+"\x00"))
}

// readStatus reads the status pipe to EOF, giving up when ctx ends.
func readStatus(ctx context.Context, r *os.File) (string, error) {
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Now()) })
	defer stop()
	b, err := io.ReadAll(io.LimitReader(r, maxStatus))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", err
	}
	return string(b), nil
}

// maxSocketPath is the longest path that fits sockaddr_un (108 bytes with
// the terminating NUL, less on some systems).
const maxSocketPath = 100

// listenUnix creates a listening unix socket at path and returns it as a
// file (close-on-exec; os/exec passes it to the child anyway).
func listenUnix(path string) (*os.File, error) {
	var f *os.File
	err := withShortPath(path, func(p string) error {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			return err
		}
		ln.SetUnlinkOnClose(false)
		f, err = ln.File()
		ln.Close()
		return err
	})
	return f, err
}

// dialUnix connects to the unix socket at path.
func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var conn net.Conn
	err := withShortPath(path, func(p string) error {
		var dialer net.Dialer
		var err error
		conn, err = dialer.DialContext(ctx, "unix", p)
		return err
	})
	return conn, err
}

// withShortPath calls fn with path, or, when path is too long for a socket
// address, with /proc/self/fd/N/<name> where N is an open descriptor of
// path's directory.
func withShortPath(path string, fn func(string) error) error {
	if len(path) <= maxSocketPath {
		return fn(path)
	}
	dir, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open socket directory: %w", err)
	}
	defer unix.Close(dir)
	short := fmt.Sprintf("/proc/self/fd/%d/%s", dir, filepath.Base(path))
	if len(short) > maxSocketPath {
		return errors.New("socket name too long")
	}
	return fn(short)
}
