package sandbox

import (
	"context"
	"time"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
)

// Process is a background process of a sandbox.
type Process struct {
	ID        string     `json:"id"`
	Pid       int        `json:"pid"`
	Args      []string   `json:"args"`
	Cwd       string     `json:"cwd,omitempty"`
	Running   bool       `json:"running"`
	ExitCode  *int       `json:"exitCode,omitempty"`
	StartedAt time.Time  `json:"startedAt"`
	ExitedAt  *time.Time `json:"exitedAt,omitempty"`
	// OutputStart and OutputEnd are the offsets of the buffered output:
	// bytes [OutputStart, OutputEnd) can still be read.
	OutputStart int64 `json:"outputStart"`
	OutputEnd   int64 `json:"outputEnd"`
	// Cols and Rows are a terminal session's size (see CreatePTY).
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
}

// ProcessChunk is a piece of a background process's output. Offset is the
// absolute offset of Data's first byte (stdout and stderr share one
// offset space); Lost counts the bytes before it that were no longer
// buffered.
type ProcessChunk struct {
	Stream string `json:"stream"` // "stdout" or "stderr"
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
	Lost   int64  `json:"lost,omitempty"`
}

// ProcessOutputEnd ends a ProcessOutput: the process as it is now, the
// offset to resume from, and lost bytes not reported with a chunk.
type ProcessOutputEnd struct {
	Process Process `json:"process"`
	End     int64   `json:"end"`
	Lost    int64   `json:"lost,omitempty"`
}

func processFrom(in agentproto.ProcInfo) Process {
	p := Process{
		ID: in.ID, Pid: in.Pid, Args: in.Args, Cwd: in.Cwd, Running: in.Running, ExitCode: in.ExitCode,
		StartedAt: time.UnixMilli(in.StartedAt).UTC(), OutputStart: in.Start, OutputEnd: in.End,
		Cols: in.Cols, Rows: in.Rows,
	}
	if p.Args == nil {
		p.Args = []string{}
	}
	if in.ExitedAt != 0 {
		t := time.UnixMilli(in.ExitedAt).UTC()
		p.ExitedAt = &t
	}
	return p
}

// StartProcess starts a command in the background (its environment and
// working directory are those RunCommand would give it; Timeout is
// ignored) and returns at once. The process outlives the request.
func (s *Service) StartProcess(ctx context.Context, tenant, id string, req CommandRequest) (Process, error) {
	exec, err := s.commandSpec(ctx, tenant, id, req)
	if err != nil {
		return Process{}, err
	}
	info, err := s.agent(id).StartProcess(ctx, agentproto.ProcRequest{Args: exec.Args, Env: exec.Env, Cwd: exec.Cwd})
	if err != nil {
		return Process{}, err
	}
	return processFrom(info), nil
}

// ListProcesses lists a sandbox's background processes, oldest first
// (exited ones until the agent forgets them).
func (s *Service) ListProcesses(ctx context.Context, tenant, id string) ([]Process, error) {
	return s.listProcs(ctx, tenant, id, (*agentclient.Client).ListProcesses)
}

func (s *Service) listProcs(ctx context.Context, tenant, id string, list func(*agentclient.Client, context.Context) ([]agentproto.ProcInfo, error)) ([]Process, error) {
	if _, err := s.running(ctx, tenant, id); err != nil {
		return nil, err
	}
	infos, err := list(s.agent(id), ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Process, 0, len(infos))
	for _, in := range infos {
		out = append(out, processFrom(in))
	}
	return out, nil
}

// ProcessOutput calls onChunk for the output of process procID from
// offset (from one goroutine, in order). With follow it returns once the
// process has exited and all of its output was delivered; without, once
// the buffered output was. Cancelling ctx only stops the reading.
func (s *Service) ProcessOutput(ctx context.Context, tenant, id, procID string, offset int64, follow bool, onChunk func(ProcessChunk)) (ProcessOutputEnd, error) {
	return s.procOutput(ctx, tenant, id, procID, offset, follow, onChunk, (*agentclient.Client).ProcessOutput)
}

// outputCall is agentclient's ProcessOutput or PTYOutput.
type outputCall func(c *agentclient.Client, ctx context.Context, id string, offset int64, follow bool, onChunk func(agentproto.ProcPayload)) (agentproto.ProcPayload, error)

func (s *Service) procOutput(ctx context.Context, tenant, id, procID string, offset int64, follow bool, onChunk func(ProcessChunk), call outputCall) (ProcessOutputEnd, error) {
	if err := checkProcID(procID); err != nil {
		return ProcessOutputEnd{}, err
	}
	if offset < 0 {
		return ProcessOutputEnd{}, invalid("offset must not be negative, got %d", offset)
	}
	if _, err := s.running(ctx, tenant, id); err != nil {
		return ProcessOutputEnd{}, err
	}
	ctx, done := s.track(ctx, id, 0)
	defer done()
	pl, err := call(s.agent(id), ctx, procID, offset, follow, func(pl agentproto.ProcPayload) {
		if onChunk != nil {
			onChunk(ProcessChunk{Stream: pl.Stream, Data: string(pl.Data), Offset: pl.Offset, Lost: pl.Lost})
		}
	})
	if err != nil {
		return ProcessOutputEnd{}, s.commandError(ctx, id, "process output", err)
	}
	end := ProcessOutputEnd{End: pl.End, Lost: pl.Lost}
	if pl.Info != nil {
		end.Process = processFrom(*pl.Info)
	}
	return end, nil
}

// WriteStdin writes data to a background process's stdin and closes it
// when closeStdin is set.
func (s *Service) WriteStdin(ctx context.Context, tenant, id, procID string, data []byte, closeStdin bool) (Process, error) {
	return s.procOp(ctx, tenant, id, procID, func(c *agentclient.Client) (agentproto.ProcInfo, error) {
		return c.WriteStdin(ctx, procID, data, closeStdin)
	})
}

// SignalProcess sends a signal ("SIGTERM", "TERM", "15") to a background
// process's group.
func (s *Service) SignalProcess(ctx context.Context, tenant, id, procID, signal string) (Process, error) {
	if signal == "" {
		return Process{}, invalid("signal is required")
	}
	return s.procOp(ctx, tenant, id, procID, func(c *agentclient.Client) (agentproto.ProcInfo, error) {
		return c.SignalProcess(ctx, procID, signal)
	})
}

// KillProcess sends SIGKILL to a background process's group.
func (s *Service) KillProcess(ctx context.Context, tenant, id, procID string) (Process, error) {
	return s.procOp(ctx, tenant, id, procID, func(c *agentclient.Client) (agentproto.ProcInfo, error) {
		return c.KillProcess(ctx, procID)
	})
}

func (s *Service) procOp(ctx context.Context, tenant, id, procID string, call func(*agentclient.Client) (agentproto.ProcInfo, error)) (Process, error) {
	if err := checkProcID(procID); err != nil {
		return Process{}, err
	}
	if _, err := s.running(ctx, tenant, id); err != nil {
		return Process{}, err
	}
	info, err := call(s.agent(id))
	if err != nil {
		return Process{}, err
	}
	return processFrom(info), nil
}

func checkProcID(procID string) error {
	if procID == "" {
		return invalid("process id is required")
	}
	if len(procID) > 128 {
		return invalid("process id is %d bytes; at most 128 are allowed", len(procID))
	}
	return nil
}
