package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/template"
)

// baseEnv is every command's starting environment, below the template's.
var baseEnv = map[string]string{
	"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME": "/root",
	"USER": "root",
	"LANG": "C.UTF-8",
	"TERM": "xterm-256color",
}

// envFor merges a process's environment: base < template < sandbox <
// extra.
func envFor(sb Sandbox, tmpl template.Template, extra map[string]string) map[string]string {
	env := copyEnv(baseEnv)
	env["HOSTNAME"] = sb.ID
	for _, layer := range []map[string]string{tmpl.DefaultEnv, sb.EnvVars, extra} {
		for k, v := range layer {
			env[k] = v
		}
	}
	return env
}

// commandSpec validates req and resolves what it runs in the caller's
// running sandbox: argv (a command string runs through bash), the merged
// environment and the working directory (the template's by default).
func (s *Service) commandSpec(ctx context.Context, tenant, id string, req CommandRequest) (agentproto.ExecRequest, error) {
	if err := validateCommand(req); err != nil {
		return agentproto.ExecRequest{}, err
	}
	sb, err := s.running(ctx, tenant, id)
	if err != nil {
		return agentproto.ExecRequest{}, err
	}
	tmpl, err := s.templates.Get(sb.TemplateID)
	if err != nil {
		return agentproto.ExecRequest{}, err
	}
	args := req.Args
	if req.Command != "" {
		args = []string{"/bin/bash", "-c", req.Command}
	}
	return agentproto.ExecRequest{Args: args, Env: envFor(sb, tmpl, req.Env), Cwd: cmp.Or(req.Cwd, tmpl.DefaultCwd)}, nil
}

// RunCommand runs a command in a sandbox, calling onOutput for each line as
// it is produced (from one goroutine, in order), and returns the result once
// the command has exited. A command killed by its timeout returns an error
// wrapping errdefs.ErrTimeout. Cancelling ctx kills the command.
func (s *Service) RunCommand(ctx context.Context, tenant, id string, req CommandRequest, onOutput func(Output)) (CommandResult, error) {
	exec, err := s.commandSpec(ctx, tenant, id, req)
	if err != nil {
		return CommandResult{}, err
	}
	_, release, err := s.acquireRuns(tenant, 1)
	if err != nil {
		return CommandResult{}, err
	}
	defer release()
	timeout := cmp.Or(req.Timeout, DefaultTimeout)

	// The agent enforces the timeout (killing the process group); the
	// context deadline is a backstop in case the agent cannot answer.
	ctx, done := s.track(ctx, id, timeout+s.cfg.AgentGrace)
	defer done()

	res := CommandResult{Stdout: []string{}, Stderr: []string{}}
	var kept resultBytes
	start := time.Now()
	exec.TimeoutMs = timeout.Milliseconds()
	exit, err := s.agent(id).Exec(ctx, exec,
		func(ev agentproto.Event) {
			var lines *[]string
			switch ev.Type {
			case agentproto.EventStdout:
				lines = &res.Stdout
			case agentproto.EventStderr:
				lines = &res.Stderr
			default:
				return
			}
			if !kept.keep(lines, ev.Data) {
				res.Truncated = true
			}
			if onOutput != nil {
				onOutput(Output{Stream: ev.Type, Line: ev.Data, Timestamp: time.UnixMilli(ev.TS).UTC()})
			}
		})
	res.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		return CommandResult{}, s.commandError(ctx, id, "command", err)
	}
	if exit.TimedOut {
		return CommandResult{}, fmt.Errorf("command timed out after %d ms and was killed: %w", timeout.Milliseconds(), errdefs.ErrTimeout)
	}
	res.ExitCode = exit.ExitCode
	return res, nil
}

// defaultAgentGrace is how long past a run's timeout the service waits
// for the agent by default (Config.AgentGrace).
const defaultAgentGrace = 5 * time.Second

// resultBytes counts the bytes of output lines a run's result keeps.
type resultBytes int

// keep appends line to lines unless that would pass maxResultLines lines
// (per stream) or maxResultBytes bytes (both streams together), and
// reports whether it did. A line that does not fit the bytes ends what is
// kept of both streams: a shorter line after it is not kept either, so
// the result holds the first lines, without a hole.
func (k *resultBytes) keep(lines *[]string, line string) bool {
	if len(*lines) >= maxResultLines {
		return false
	}
	if int(*k)+len(line) > maxResultBytes {
		*k = maxResultBytes + 1
		return false
	}
	*lines = append(*lines, line)
	*k += resultBytes(len(line))
	return true
}

// commandError explains why what (a command, a code run, ...) ended
// without its final answer.
func (s *Service) commandError(ctx context.Context, id, what string, err error) error {
	if ctx.Err() != nil {
		if err := s.interrupted(id, "the run was stopped", "while the command ran"); err != nil {
			return err
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer from the sandbox before the deadline: %w", what, errdefs.ErrTimeout)
		}
	}
	return err
}

// interrupted explains an operation on sandbox id whose context ended
// because the server is shutting down ("...; " + stopped) or the sandbox
// was deleted ("sandbox X was deleted " + deleted); nil otherwise.
func (s *Service) interrupted(id, stopped, deleted string) error {
	if s.stopping.Load() {
		return fmt.Errorf("the server is shutting down; %s: %w", stopped, errdefs.ErrUnavailable)
	}
	if s.deleted(id) {
		return fmt.Errorf("sandbox %s was deleted %s: %w", id, deleted, errdefs.ErrConflict)
	}
	return nil
}

// track counts a command in flight and returns a context that is also
// cancelled when the sandbox is deleted and, when backstop is positive,
// after backstop.
func (s *Service) track(ctx context.Context, id string, backstop time.Duration) (context.Context, func()) {
	ctx, cancel := withBackstop(ctx, backstop)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.liveFor(id)
	l.active++
	return ctx, s.bind(l, ctx, cancel, func() {
		l.active--
		s.dropLive(id, l)
	})
}

// withBackstop returns a cancellable context of ctx that also ends after
// timeout, when positive. One context carries a run's deadline and (see
// bind) the sandbox's end.
func withBackstop(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return context.WithCancel(ctx)
}

// liveFor returns the live state of sandbox id, made when missing. The
// caller holds s.mu.
func (s *Service) liveFor(id string) *liveSandbox {
	l := s.live[id]
	if l == nil {
		lctx, cancel := context.WithCancel(s.base)
		l = &liveSandbox{ctx: lctx, cancel: cancel, bound: map[context.Context]context.CancelFunc{}}
		s.live[id] = l
		// One callback per live state ends what is bound to it (see
		// bind), rather than one per run.
		context.AfterFunc(lctx, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, cancel := range l.bound {
				cancel()
			}
		})
	}
	return l
}

// bind ties ctx, with its cancel, to l: it is cancelled when l.ctx ends
// (the sandbox is deleted, the server shuts down). It returns ctx's
// release, which cancels ctx and then calls done with s.mu held. The
// caller holds s.mu.
func (s *Service) bind(l *liveSandbox, ctx context.Context, cancel context.CancelFunc, done func()) func() {
	if l.ctx.Err() != nil {
		cancel() // l's callback has run or is waiting for s.mu
	} else {
		l.bound[ctx] = cancel
	}
	return func() {
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(l.bound, ctx)
		done()
	}
}

// dropLive forgets l, the live state of sandbox id, once nothing uses
// it. A ready sandbox keeps it (unready drops it), so runs on a sandbox
// that is idle between them make no new context each. The caller holds
// s.mu.
func (s *Service) dropLive(id string, l *liveSandbox) {
	if _, ready := s.ready[id]; ready && l.ctx.Err() == nil {
		return
	}
	if l.active == 0 && l.watches == 0 && s.live[id] == l {
		l.cancel()
		delete(s.live, id)
	}
}

// deleted reports whether the sandbox's live context was cancelled by a
// delete.
func (s *Service) deleted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.live[id]
	return l != nil && l.ctx.Err() != nil
}
