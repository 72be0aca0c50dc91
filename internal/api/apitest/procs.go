package apitest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// fakeProc is a scripted background process: it writes its command line
// (and a line per stdin write, like cat) to stdout. A command that starts
// with "sleep" runs until it is killed or signalled; any other exits 0 at
// once.
type fakeProc struct {
	proc   sandbox.Process
	chunks []sandbox.ProcessChunk
	closed bool
}

func (p *fakeProc) write(stream, data string) {
	p.chunks = append(p.chunks, sandbox.ProcessChunk{Stream: stream, Data: data, Offset: p.proc.OutputEnd})
	p.proc.OutputEnd += int64(len(data))
}

func (p *fakeProc) exit(code int) {
	t := time.Now().UTC()
	p.proc.Running, p.proc.ExitCode, p.proc.ExitedAt = false, &code, &t
}

func (s *Service) fakeProcess(ctx context.Context, op, tenant, sandboxID, procID string) (*fakeProc, error) {
	if _, err := s.sandboxFor(ctx, op, tenant, sandboxID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	p, ok := s.procs[sandboxID+"/"+procID]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("process %q not found: %w", procID, errdefs.ErrNotFound)
	}
	return p, nil
}

// StartProcess implements api.Service with a scripted process.
func (s *Service) StartProcess(ctx context.Context, tenant, sandboxID string, req sandbox.CommandRequest) (sandbox.Process, error) {
	if _, err := s.sandboxFor(ctx, "StartProcess", tenant, sandboxID); err != nil {
		return sandbox.Process{}, err
	}
	if (req.Command == "") == (len(req.Args) == 0) {
		return sandbox.Process{}, fmt.Errorf("command, args: exactly one is required: %w", errdefs.ErrInvalidArgument)
	}
	args := req.Args
	if req.Command != "" {
		args = []string{"/bin/bash", "-c", req.Command}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if s.procs == nil {
		s.procs = map[string]*fakeProc{}
	}
	p := &fakeProc{proc: sandbox.Process{
		ID: fmt.Sprintf("proc_%d", s.seq), Pid: 1000 + s.seq, Args: args, Cwd: "/workspace",
		Running: true, StartedAt: time.Now().UTC(),
	}}
	cmdline := strings.Join(args, " ")
	p.write("stdout", cmdline+"\n")
	if !strings.HasPrefix(req.Command, "sleep") && !(len(req.Args) > 0 && req.Args[0] == "sleep") {
		p.exit(0)
	}
	s.procs[sandboxID+"/"+p.proc.ID] = p
	s.procOrder = append(s.procOrder, sandboxID+"/"+p.proc.ID)
	return p.proc, nil
}

// ListProcesses implements api.Service.
func (s *Service) ListProcesses(ctx context.Context, tenant, sandboxID string) ([]sandbox.Process, error) {
	if _, err := s.sandboxFor(ctx, "ListProcesses", tenant, sandboxID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []sandbox.Process{}
	for _, key := range s.procOrder {
		if strings.HasPrefix(key, sandboxID+"/") {
			out = append(out, s.procs[key].proc)
		}
	}
	return out, nil
}

// ProcessOutput implements api.Service. Follow does not wait: the fake
// answers with what was written so far.
func (s *Service) ProcessOutput(ctx context.Context, tenant, sandboxID, procID string, offset int64, follow bool, onChunk func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error) {
	if offset < 0 {
		return sandbox.ProcessOutputEnd{}, fmt.Errorf("offset: must not be negative: %w", errdefs.ErrInvalidArgument)
	}
	p, err := s.fakeProcess(ctx, "ProcessOutput", tenant, sandboxID, procID)
	if err != nil {
		return sandbox.ProcessOutputEnd{}, err
	}
	s.mu.Lock()
	chunks := append([]sandbox.ProcessChunk(nil), p.chunks...)
	proc := p.proc
	s.mu.Unlock()
	for _, c := range chunks {
		end := c.Offset + int64(len(c.Data))
		if end <= offset {
			continue
		}
		if c.Offset < offset {
			c.Data = c.Data[offset-c.Offset:]
			c.Offset = offset
		}
		onChunk(c)
	}
	return sandbox.ProcessOutputEnd{Process: proc, End: max(offset, proc.OutputEnd)}, nil
}

// WriteStdin implements api.Service: the data is echoed to stdout.
func (s *Service) WriteStdin(ctx context.Context, tenant, sandboxID, procID string, data []byte, closeStdin bool) (sandbox.Process, error) {
	p, err := s.fakeProcess(ctx, "WriteStdin", tenant, sandboxID, procID)
	if err != nil {
		return sandbox.Process{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !p.proc.Running || p.closed {
		return sandbox.Process{}, fmt.Errorf("process %q: stdin is closed: %w", procID, errdefs.ErrConflict)
	}
	if len(data) > 0 {
		p.write("stdout", string(data))
	}
	p.closed = closeStdin
	return p.proc, nil
}

// SignalProcess implements api.Service: TERM, INT, HUP and KILL end the
// process with 128+signal; other known names do nothing.
func (s *Service) SignalProcess(ctx context.Context, tenant, sandboxID, procID, signal string) (sandbox.Process, error) {
	p, err := s.fakeProcess(ctx, "SignalProcess", tenant, sandboxID, procID)
	if err != nil {
		return sandbox.Process{}, err
	}
	codes := map[string]int{"HUP": 1, "INT": 2, "KILL": 9, "TERM": 15, "USR1": 0, "USR2": 0, "CONT": 0, "STOP": 0}
	code, ok := codes[strings.TrimPrefix(strings.ToUpper(signal), "SIG")]
	if !ok {
		return sandbox.Process{}, fmt.Errorf("proc.signal: unknown signal %q: %w", signal, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !p.proc.Running {
		return sandbox.Process{}, fmt.Errorf("process %q has exited: %w", procID, errdefs.ErrConflict)
	}
	if code != 0 {
		p.exit(128 + code)
	}
	return p.proc, nil
}

// KillProcess implements api.Service.
func (s *Service) KillProcess(ctx context.Context, tenant, sandboxID, procID string) (sandbox.Process, error) {
	p, err := s.fakeProcess(ctx, "KillProcess", tenant, sandboxID, procID)
	if err != nil {
		return sandbox.Process{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.proc.Running {
		p.exit(137)
	}
	return p.proc, nil
}
