package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/term"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

const shellUsage = `Usage: sdbx shell [--env K=V]... [--cwd DIR] ID [-- CMD [ARGS...]]

Open an interactive terminal in sandbox ID: the sandbox's shell (bash -i),
or CMD with ARGS, on a pseudo-terminal in the sandbox. When stdin is a
terminal it is put in raw mode (Ctrl-C, Ctrl-D and the like go to the
sandbox) and its size follows the window. sdbx exits with the exit code
of the remote shell (or CMD).
`

func (c *cli) shell(ctx context.Context, args []string) (int, error) {
	fs := newFlagSet("shell")
	cf := addConnFlags(fs)
	env := envFlag{}
	fs.Var(env, "env", "environment variable KEY=VALUE (repeatable)")
	cwd := fs.String("cwd", "", "working directory, an absolute path (default: the template's)")
	head, argv := args, []string(nil)
	if i := slices.Index(args, "--"); i >= 0 {
		head, argv = args[:i], args[i+1:]
		if len(argv) == 0 {
			return 0, usagef("shell: missing command after -- (see sdbx shell -h)")
		}
	}
	if err := fs.Parse(head); err != nil {
		return 0, c.help(flagError("shell", err), shellUsage, fs)
	}
	switch n := fs.NArg(); {
	case n == 0:
		return 0, c.help(usagef("shell: missing sandbox ID (see sdbx shell -h)"), shellUsage, fs)
	case n > 1:
		return 0, c.help(usagef("shell: one sandbox ID expected, got %d arguments (put the command after --)", n), shellUsage, fs)
	}
	id := fs.Arg(0)
	client, err := cf.client(c.env)
	if err != nil {
		return 0, err
	}
	opts := sdbx.PTYOptions{Args: argv, Env: env, Cwd: *cwd}
	in, _ := c.stdin.(*os.File)
	tty := in != nil && term.IsTerminal(int(in.Fd()))
	if tty {
		if cols, rows, ok := windowSize(in); ok {
			opts.Cols, opts.Rows = cols, rows
		}
	}
	p, err := client.OpenPTY(ctx, id, opts)
	if err != nil {
		return 0, err
	}
	if tty {
		restore, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			_ = p.Close()
			return 0, err
		}
		defer func() { _ = restore() }()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		stopWinch := make(chan struct{})
		winchDone := make(chan struct{})
		defer func() { close(stopWinch); <-winchDone }()
		go func() {
			defer close(winchDone)
			for {
				select {
				case <-stopWinch:
					return
				case <-winch:
					if cols, rows, ok := windowSize(in); ok {
						_ = p.Resize(cols, rows)
					}
				}
			}
		}()
	}
	stopInput := c.copyInput(p)
	defer stopInput()

	out := make(chan error, 1)
	go func() {
		_, err := io.Copy(c.stdout, p)
		out <- err
	}()
	select {
	case err = <-out:
	case <-ctx.Done():
		// Ctrl-C or SIGTERM to sdbx itself (stdin is not a terminal, or
		// the signal came from elsewhere): end the session.
		_ = p.Close()
		<-out
		return 0, ctx.Err()
	}
	code, werr := p.Wait()
	if werr != nil {
		return 0, werr
	}
	if err != nil {
		return 0, err
	}
	return commandExitCode(code), nil
}

// windowSize is the size of terminal in, each side capped at the 1000 a
// sandbox terminal takes; ok is false when the size is unknown.
func windowSize(in *os.File) (cols, rows int, ok bool) {
	cols, rows, err := term.Size(int(in.Fd()))
	if err != nil || cols <= 0 || rows <= 0 {
		return 0, 0, false
	}
	return min(cols, 1000), min(rows, 1000), true
}

// copyInput copies the CLI's stdin to p until EOF; the returned function
// stops it (a terminal or pipe is read with a deadline, so the copy ends
// at once; other readers end with the process).
func (c *cli) copyInput(p *sdbx.PTY) (stop func()) {
	if c.stdin == nil {
		return func() {}
	}
	src := c.stdin
	var f *os.File
	if in, ok := c.stdin.(*os.File); ok {
		// A non-blocking duplicate of the descriptor gets read deadlines
		// (the flag is shared with the original: restored at the end).
		if dup, err := syscall.Dup(int(in.Fd())); err == nil {
			if syscall.SetNonblock(dup, true) == nil {
				f = os.NewFile(uintptr(dup), in.Name())
				src = f
			} else {
				syscall.Close(dup)
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(p, src)
	}()
	return func() {
		if f == nil {
			return
		}
		if f.SetReadDeadline(time.Now()) == nil {
			<-done
		}
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = syscall.SetNonblock(int(fd), false) })
		}
		f.Close()
	}
}
