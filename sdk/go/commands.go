package sdbx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// defaultCommandTimeout is the server's default command timeout; RunCommand
// uses it to bound its wait when Command.Timeout is 0.
const defaultCommandTimeout = 60 * time.Second

const ndjson = "application/x-ndjson"

// RunOption adds an optional behaviour to RunCommand. The RunOptions
// (OnStdout, OnStderr) are also CodeOptions and BatchOptions.
type RunOption func(*runOptions)

type runOptions struct {
	onStdout func(OutputLine)
	onStderr func(OutputLine)
}

// OnStdout calls fn for each stdout line, in order, as the server streams
// it. Calls come from the goroutine that called RunCommand (or RunCode,
// RunBatch), all before it returns; a slow fn slows the stream down
// (nothing is dropped).
func OnStdout(fn func(OutputLine)) RunOption {
	return func(o *runOptions) { o.onStdout = fn }
}

// OnStderr calls fn for each stderr line, like OnStdout.
func OnStderr(fn func(OutputLine)) RunOption {
	return func(o *runOptions) { o.onStderr = fn }
}

// commandBody is the wire form of Command.
type commandBody struct {
	Command   string            `json:"command,omitempty"`
	Args      []string          `json:"args,omitempty"`
	Envs      map[string]string `json:"envs,omitempty"`
	Cwd       string            `json:"cwd,omitempty"`
	TimeoutMs int64             `json:"timeoutMs,omitempty"`
}

// RunCommand runs cmd in sandbox id and returns its result once it has
// exited; a non-zero exit code is not an error. Output lines are streamed
// to the OnStdout/OnStderr callbacks while the command runs.
//
// A command killed at its timeout fails with a *TimeoutError. Bad input
// (neither or both of Command and Args, a relative Cwd, ...) fails with a
// *SandboxError matching ErrInvalidArgument, an unknown sandbox with one
// matching ErrNotFound, a sandbox that is not running with ErrConflict.
// RunCommand is never retried automatically; cancelling ctx closes the
// connection, and the server then kills the command.
func (c *Client) RunCommand(ctx context.Context, id string, cmd Command, opts ...RunOption) (*CommandResult, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	var o runOptions
	for _, opt := range opts {
		opt(&o)
	}
	r := &request{
		method: http.MethodPost,
		path:   []string{"sandboxes", id, "commands"},
		accept: ndjson,
		kind:   opSandbox, sandboxID: id,
	}
	body := commandBody{
		Command:   cmd.Command,
		Args:      cmd.Args,
		Envs:      cmd.Env,
		Cwd:       cmd.Cwd,
		TimeoutMs: durationMs(cmd.Timeout),
	}
	var res CommandResult
	sink := streamSink{h: &codeHandlers{runOptions: o}, out: &res, final: "the command's result", replay: func() {
		for _, l := range res.Stdout {
			emit(o.onStdout, OutputLine{Stream: "stdout", Line: l})
		}
		for _, l := range res.Stderr {
			emit(o.onStderr, OutputLine{Stream: "stderr", Line: l})
		}
	}}
	// The wait is bounded by the command's own timeout plus the client's
	// per-call timeout for setup and transfer.
	if err := c.streamCode(ctx, r, body, c.timeout+runLimit(cmd.Timeout), sink); err != nil {
		return nil, err
	}
	return &res, nil
}

func emit(fn func(OutputLine), l OutputLine) {
	if fn != nil {
		fn(l)
	}
}

// decodeError classifies a failure to decode a response body: malformed
// JSON is a server bug, anything else a broken connection.
func decodeError(r *request, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("%s: decode response: %v", r.op(), err)}
	}
	return connectionError(r.op()+": read response", err)
}
