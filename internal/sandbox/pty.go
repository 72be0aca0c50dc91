package sandbox

import (
	"context"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
)

// Terminal sessions: a command (by default an interactive shell) on a
// pseudo-terminal in the sandbox. The agent keeps them like background
// processes (same record, output ring buffer and offsets); their output
// chunks have stream "pty" and carry the terminal's raw bytes in Data.

// PTYRequest starts a terminal session. Command (run through bash) or
// Args name what runs; neither means the sandbox's interactive shell
// (bash -i, or sh -i without bash). Env and Cwd are those of a command.
// Cols and Rows are the terminal's size, 1-MaxTermSize each, or both 0
// for 80x24.
type PTYRequest struct {
	Command    string
	Args       []string
	Env        map[string]string
	Cwd        string
	Cols, Rows int
}

// MaxTermSize bounds a terminal's columns and rows.
const MaxTermSize = agentproto.MaxTermSize

// MaxPTYs is how many terminal sessions may run at once in a sandbox.
const MaxPTYs = agentproto.MaxPTYs

// CheckTermSize validates a terminal size (create: both 0 is the
// default); see agentproto.CheckTermSize.
func CheckTermSize(cols, rows int, create bool) error {
	return agentproto.CheckTermSize(cols, rows, create)
}

// CreatePTY starts a terminal session in a sandbox and returns at once.
// The session outlives the request; its processes are killed by
// KillPTY, when its main process exits, or with the sandbox. At most
// MaxPTYs run at once: one more is errdefs.ErrConflict.
func (s *Service) CreatePTY(ctx context.Context, tenant, id string, req PTYRequest) (Process, error) {
	if err := CheckTermSize(req.Cols, req.Rows, true); err != nil {
		return Process{}, err
	}
	cr := CommandRequest{Command: req.Command, Args: req.Args, Env: req.Env, Cwd: req.Cwd}
	shell := req.Command == "" && len(req.Args) == 0
	if shell {
		cr.Args = []string{"sh"} // validated and resolved, then left to the agent's default
	}
	exec, err := s.commandSpec(ctx, tenant, id, cr)
	if err != nil {
		return Process{}, err
	}
	if shell {
		exec.Args = nil
	}
	info, err := s.agent(id).CreatePTY(ctx, agentproto.ProcRequest{
		Args: exec.Args, Env: exec.Env, Cwd: exec.Cwd, Cols: req.Cols, Rows: req.Rows,
	})
	if err != nil {
		return Process{}, err
	}
	return processFrom(info), nil
}

// ListPTYs lists a sandbox's terminal sessions, oldest first (exited ones
// until the agent forgets them: it keeps the last 16).
func (s *Service) ListPTYs(ctx context.Context, tenant, id string) ([]Process, error) {
	return s.listProcs(ctx, tenant, id, (*agentclient.Client).ListPTYs)
}

// PTYOutput calls onChunk for terminal session ptyID's output from
// offset, as ProcessOutput does.
func (s *Service) PTYOutput(ctx context.Context, tenant, id, ptyID string, offset int64, follow bool, onChunk func(ProcessChunk)) (ProcessOutputEnd, error) {
	return s.procOutput(ctx, tenant, id, ptyID, offset, follow, onChunk, (*agentclient.Client).PTYOutput)
}

// PTYInput writes data to a terminal session's terminal, as typed ("\x03"
// is Ctrl-C). A session that has exited is errdefs.ErrConflict.
func (s *Service) PTYInput(ctx context.Context, tenant, id, ptyID string, data []byte) (Process, error) {
	return s.procOp(ctx, tenant, id, ptyID, func(c *agentclient.Client) (agentproto.ProcInfo, error) {
		return c.PTYInput(ctx, ptyID, data)
	})
}

// ResizePTY sets a terminal session's size (1-MaxTermSize each).
func (s *Service) ResizePTY(ctx context.Context, tenant, id, ptyID string, cols, rows int) (Process, error) {
	if err := CheckTermSize(cols, rows, false); err != nil {
		return Process{}, err
	}
	return s.procOp(ctx, tenant, id, ptyID, func(c *agentclient.Client) (agentproto.ProcInfo, error) {
		return c.ResizePTY(ctx, ptyID, cols, rows)
	})
}

// SignalPTY sends a signal ("SIGINT", "INT", "2") to a terminal
// session's foreground process group.
func (s *Service) SignalPTY(ctx context.Context, tenant, id, ptyID, signal string) (Process, error) {
	if signal == "" {
		return Process{}, invalid("signal is required")
	}
	return s.procOp(ctx, tenant, id, ptyID, func(c *agentclient.Client) (agentproto.ProcInfo, error) {
		return c.SignalPTY(ctx, ptyID, signal)
	})
}

// KillPTY kills every process of a terminal session.
func (s *Service) KillPTY(ctx context.Context, tenant, id, ptyID string) (Process, error) {
	return s.procOp(ctx, tenant, id, ptyID, func(c *agentclient.Client) (agentproto.ProcInfo, error) {
		return c.KillPTY(ctx, ptyID)
	})
}
