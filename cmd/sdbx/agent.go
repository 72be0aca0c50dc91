package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"golang.org/x/sys/unix"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/sdbx/sdbx/internal/agent"
)

const agentUsage = `Usage: sdbx agent (--listen-fd N | --listen unix:/path | --listen tcp:HOST:PORT) [flags]

Runs the in-sandbox agent. The runtime starts it as PID 1 of each sandbox.

`

// agentThreadReserve is how many threads the agent starts before any code
// of the sandbox runs (see agent.ReserveThreads).
const agentThreadReserve = 8

// agentMain runs the in-sandbox agent until SIGTERM or SIGINT.
func agentMain(args []string) int {
	fset := flag.NewFlagSet("agent", flag.ContinueOnError)
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), agentUsage)
		fset.PrintDefaults()
	}
	listenFD := fset.Int("listen-fd", -1, "serve on this inherited listening socket `fd`")
	listen := fset.String("listen", "", "serve on a new listener: unix:/path or tcp:host:port")
	cwd := fset.String("cwd", "/workspace", "working `dir`ectory of commands that name none")
	reap := fset.String("reap", "auto", "how to collect exit statuses: auto (all when PID 1), all, children")
	level := fset.String("log-level", "info", "log level: debug, info, warn, error")
	procs := fset.Int("procs", 0, "GOMAXPROCS of the agent, the sandbox's CPU limit (0: Go's default)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "sdbx agent: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "sdbx agent: --log-level: %v\n", err)
		return 2
	}
	mode, err := agent.ParseReapMode(*reap)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdbx agent: --reap: %v\n", err)
		return 2
	}
	if *procs < 0 {
		fmt.Fprintf(os.Stderr, "sdbx agent: --procs %d: must be 0 or more\n", *procs)
		return 2
	}
	if *procs > 0 {
		// Fewer Ps than the host has CPUs: a sandbox limited to one CPU
		// gains nothing from more, and pays for threads waking each other.
		runtime.GOMAXPROCS(*procs)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	ln, err := agentListener(*listenFD, *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdbx agent: %v\n", err)
		return 2
	}
	defer ln.Close()

	ctx := context.Background()
	if os.Getpid() == 1 {
		// As the sandbox's init: code in the sandbox runs with the same uid
		// and no capabilities, so being non-dumpable is what keeps it from
		// ptrace-attaching to the agent or reading its memory and fds.
		// Signals from inside the sandbox are ignored by an init without
		// handlers, so none are installed; the runtime stops the sandbox
		// with SIGKILL from outside.
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "sdbx agent: make non-dumpable: %v\n", err)
			return 1
		}
		// Threads made now don't count on room under the pids limit later.
		agent.ReserveThreads(agentThreadReserve)
		// Go's own handlers would end the process on SIGTERM, SIGHUP, ...
		// sent from inside the sandbox: take every signal and drop it.
		// (Handled signals reset to their defaults in spawned commands.)
		sigs := make(chan os.Signal, 64)
		signal.Notify(sigs)
		defer signal.Stop(sigs)
		go func() {
			for range sigs {
			}
		}()
	} else {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
	}
	a := agent.New(agent.Options{Logger: log, Version: agentVersion(), DefaultCwd: *cwd, Reap: mode})
	if err := a.Serve(ctx, ln); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}

// agentListener returns the listener named by exactly one of fd (>= 0) and
// addr.
func agentListener(fd int, addr string) (net.Listener, error) {
	switch {
	case fd >= 0 && addr != "":
		return nil, errors.New("give only one of --listen-fd and --listen")
	case fd >= 0:
		// Commands must never inherit the agent's socket.
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "agent-listener")
		if f == nil {
			return nil, fmt.Errorf("--listen-fd %d: not a valid descriptor", fd)
		}
		// FileListener duplicates the descriptor (close-on-exec); the
		// inherited one is closed.
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--listen-fd %d: %w", fd, err)
		}
		return ln, nil
	case strings.HasPrefix(addr, "unix:"):
		path := strings.TrimPrefix(addr, "unix:")
		if path == "" {
			return nil, errors.New("--listen unix: needs a path")
		}
		// A socket left by an earlier agent would make Listen fail.
		if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
			_ = os.Remove(path)
		}
		return net.Listen("unix", path)
	case strings.HasPrefix(addr, "tcp:"):
		return net.Listen("tcp", strings.TrimPrefix(addr, "tcp:"))
	case addr == "":
		return nil, errors.New("one of --listen-fd or --listen is required")
	}
	return nil, fmt.Errorf("--listen %q: want unix:/path or tcp:host:port", addr)
}

// agentVersion is the module version and VCS revision the binary was built
// from, as far as the build recorded them.
func agentVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
