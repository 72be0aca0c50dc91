package agentproto

import (
	"fmt"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// Terminal sessions: a command (by default an interactive shell) on a
// pseudo-terminal, in a session of its own with the terminal as its
// controlling terminal. A session is kept by the agent like a background
// process, and its ops take the same ProcRequest and answer with the same
// events (see procs.go); its output is the terminal's, one stream
// (StreamPTY) in a bounded ring buffer with absolute offsets.
//
//   - pty.create {args, env, cwd, cols, rows} starts the session (args
//     empty: /bin/bash -i, or /bin/sh -i without bash); final EventProc.
//     At most MaxPTYs sessions run at once: one more is conflict.
//   - pty.list answers with a final EventProcs.
//   - pty.output {id, offset, follow} streams EventProcOutput events, as
//     proc.output does.
//   - pty.input {id, data} writes data to the terminal (what a user
//     types: "\x03" is Ctrl-C); final EventProc.
//   - pty.resize {id, cols, rows} sets the terminal's size (the session
//     gets SIGWINCH); final EventProc.
//   - pty.signal {id, signal} sends a signal to the terminal's foreground
//     process group; final EventProc.
//   - pty.kill {id} kills every process of the session (the session's
//     process group and any job it started); final EventProc.
//
// When the session's main process exits, the rest of its session is
// killed too. Errors are those of the proc ops; cols or rows outside
// 1-MaxTermSize are invalid_argument, input to a session that has exited
// is conflict.
const (
	OpPTYCreate = "pty.create"
	OpPTYList   = "pty.list"
	OpPTYOutput = "pty.output"
	OpPTYInput  = "pty.input"
	OpPTYResize = "pty.resize"
	OpPTYSignal = "pty.signal"
	OpPTYKill   = "pty.kill"
)

// StreamPTY is the stream of a terminal session's output chunks.
const StreamPTY = "pty"

// MaxTermSize bounds a terminal's columns and rows.
const MaxTermSize = 1000

// MaxPTYs bounds the terminal sessions running at once in a sandbox.
const MaxPTYs = 16

// CheckTermSize validates a terminal size: cols and rows 1-MaxTermSize
// each, or (create) both 0 for the default 80x24. Errors wrap
// errdefs.ErrInvalidArgument and name the field.
func CheckTermSize(cols, rows int, create bool) error {
	if create && cols == 0 && rows == 0 {
		return nil
	}
	if cols < 1 || cols > MaxTermSize {
		return fmt.Errorf("cols: must be 1-%d, got %d: %w", MaxTermSize, cols, errdefs.ErrInvalidArgument)
	}
	if rows < 1 || rows > MaxTermSize {
		return fmt.Errorf("rows: must be 1-%d, got %d: %w", MaxTermSize, rows, errdefs.ErrInvalidArgument)
	}
	return nil
}
