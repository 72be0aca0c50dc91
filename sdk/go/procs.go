package sdbx

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Process is a background process of a sandbox (see StartProcess).
type Process struct {
	ID        string     `json:"id"`
	Pid       int        `json:"pid"`
	Args      []string   `json:"args"`
	Cwd       string     `json:"cwd,omitempty"`
	Running   bool       `json:"running"`
	ExitCode  *int       `json:"exitCode,omitempty"` // set once it has exited
	StartedAt time.Time  `json:"startedAt"`
	ExitedAt  *time.Time `json:"exitedAt,omitempty"`
	// OutputStart and OutputEnd are the offsets of the output the sandbox
	// still buffers: bytes [OutputStart, OutputEnd) can be read.
	OutputStart int64 `json:"outputStart"`
	OutputEnd   int64 `json:"outputEnd"`
	// Cols and Rows are a terminal session's size (see OpenPTY).
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
}

// ProcessChunk is a piece of a background process's output. Stdout and
// stderr share one offset space; Offset is that of Data's first byte. Lost
// counts bytes before the chunk that the sandbox no longer buffered (its
// ring buffer holds the last 1 MiB).
type ProcessChunk struct {
	Stream string `json:"stream"` // "stdout" or "stderr"
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
	Lost   int64  `json:"lost,omitempty"`
}

// ProcessOutputEnd ends a ProcessOutput call.
type ProcessOutputEnd struct {
	// Exited is set when the process had exited (and all its output was
	// delivered); ExitCode is then its exit code (128+signal when killed).
	Exited   bool
	ExitCode int
	// End is the offset to pass to the next ProcessOutput to resume.
	End int64
	// Lost counts dropped bytes not reported with a chunk.
	Lost int64
	// Process is the process as the call ended.
	Process Process
}

type procStartBody struct {
	Command string            `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Envs    map[string]string `json:"envs,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
}

// StartProcess starts cmd in the background in sandbox id and returns at
// once; cmd.Timeout must be 0 (a background process runs until it exits
// or is killed). The process outlives the call and the client; read its
// output with ProcessOutput.
func (c *Client) StartProcess(ctx context.Context, id string, cmd Command) (*Process, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	var p Process
	r := &request{
		method: http.MethodPost, path: []string{"sandboxes", id, "processes"},
		body: procStartBody{Command: cmd.Command, Args: cmd.Args, Envs: cmd.Env, Cwd: cmd.Cwd},
		kind: opSandbox, sandboxID: id,
	}
	if cmd.Timeout != 0 {
		return nil, &SandboxError{Code: CodeInvalidArgument, Message: r.op() + ": a background process takes no timeout", SandboxID: id}
	}
	if err := c.call(ctx, r, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListProcesses lists the background processes of sandbox id, oldest
// first (exited ones until the sandbox forgets them: it keeps the last
// 100).
func (c *Client) ListProcesses(ctx context.Context, id string) ([]Process, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	var out struct {
		Processes []Process `json:"processes"`
	}
	r := &request{method: http.MethodGet, path: []string{"sandboxes", id, "processes"}, kind: opSandbox, sandboxID: id}
	if err := c.call(ctx, r, &out); err != nil {
		return nil, err
	}
	if out.Processes == nil {
		out.Processes = []Process{}
	}
	return out.Processes, nil
}

// procLine is one NDJSON line of GET .../output.
type procLine struct {
	Type     string     `json:"type"`
	Stream   string     `json:"stream"`
	Data     string     `json:"data"`
	Offset   int64      `json:"offset"`
	Lost     int64      `json:"lost"`
	End      int64      `json:"end"`
	ExitCode *int       `json:"exitCode"`
	Process  Process    `json:"process"`
	Error    *wireError `json:"error"`
}

// ProcessOutput calls onChunk (from the calling goroutine, in order) for
// the output of process procID of sandbox id from offset. Without follow
// it returns once the buffered output was delivered; with follow it
// returns when the process has exited and all of its output was
// delivered, so its wait is bounded only by ctx. Re-attach after a
// disconnect by passing the End of the previous call (or the Offset plus
// length of the last chunk seen).
func (c *Client) ProcessOutput(ctx context.Context, id, procID string, offset int64, follow bool, onChunk func(ProcessChunk)) (*ProcessOutputEnd, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	if err := checkID(opSandbox, "processId", procID); err != nil {
		return nil, err
	}
	q := url.Values{}
	if offset != 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	if follow {
		q.Set("follow", "true")
	}
	r := &request{
		method: http.MethodGet, path: []string{"sandboxes", id, "processes", procID, "output"}, query: q,
		accept: ndjson, kind: opSandbox, sandboxID: id,
	}
	var end *ProcessOutputEnd
	err := c.readLines(ctx, r, follow, func(raw json.RawMessage) (bool, error) {
		var l procLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return false, decodeError(r, err)
		}
		switch l.Type {
		case "output":
			if onChunk != nil {
				onChunk(ProcessChunk{Stream: l.Stream, Data: l.Data, Offset: l.Offset, Lost: l.Lost})
			}
		case "exit", "end":
			end = &ProcessOutputEnd{End: l.End, Lost: l.Lost, Process: l.Process}
			if l.Type == "exit" && l.ExitCode != nil {
				end.Exited, end.ExitCode = true, *l.ExitCode
			}
			return true, nil
		case "error":
			return false, streamError(r, l.Error)
		}
		// Unknown line types are ignored so that the server can add new ones.
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return end, nil
}

// readLines performs r (an NDJSON stream) and hands each line to line
// until it reports the end line or an error. Without follow, the whole
// stream is bounded by the client's timeout; with follow, by ctx only. A
// stream that ends before its end line is a connection error.
func (c *Client) readLines(ctx context.Context, r *request, follow bool, line func(json.RawMessage) (bool, error)) error {
	streamCtx := ctx
	if !follow {
		var cancel context.CancelFunc
		streamCtx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	resp, err := c.send(streamCtx, r, nil)
	if err != nil {
		if streamCtx.Err() != nil {
			return c.contextError(ctx, r.op(), c.timeout)
		}
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if streamCtx.Err() != nil {
				return c.contextError(ctx, r.op(), c.timeout)
			}
			if errors.Is(err, io.EOF) {
				return connectionError(r.op(), errors.New("stream ended before its end line"))
			}
			return decodeError(r, err)
		}
		done, err := line(raw)
		if done || err != nil {
			return err
		}
	}
}

type procStdinBody struct {
	Data     string `json:"data"`
	Encoding string `json:"encoding,omitempty"`
	Close    bool   `json:"close,omitempty"`
}

// WriteStdin writes data to the stdin of process procID of sandbox id and
// then closes its stdin when closeStdin is set. Writing to a process that
// has exited, or after closing, fails with a *SandboxError matching
// ErrConflict.
func (c *Client) WriteStdin(ctx context.Context, id, procID string, data []byte, closeStdin bool) (*Process, error) {
	return c.procCall(ctx, http.MethodPost, id, procID, "stdin", procStdinBody{
		Data: base64.StdEncoding.EncodeToString(data), Encoding: "base64", Close: closeStdin,
	})
}

// SignalProcess sends signal ("SIGTERM", "TERM" or a number like "15") to
// the process group of process procID of sandbox id. An unknown signal
// fails with a *SandboxError matching ErrInvalidArgument, a process that
// has exited with ErrConflict.
func (c *Client) SignalProcess(ctx context.Context, id, procID, signal string) (*Process, error) {
	return c.procCall(ctx, http.MethodPost, id, procID, "signal", struct {
		Signal string `json:"signal"`
	}{signal})
}

// KillProcess sends SIGKILL to the process group of process procID of
// sandbox id. Killing a process that has exited is not an error.
func (c *Client) KillProcess(ctx context.Context, id, procID string) (*Process, error) {
	return c.procCall(ctx, http.MethodDelete, id, procID, "", nil)
}

// procCall sends method to process procID of sandbox id (to its action
// sub-path unless action is empty) and decodes the process it answers.
func (c *Client) procCall(ctx context.Context, method, id, procID, action string, body any) (*Process, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	if err := checkID(opSandbox, "processId", procID); err != nil {
		return nil, err
	}
	var p Process
	path := []string{"sandboxes", id, "processes", procID}
	if action != "" {
		path = append(path, action)
	}
	r := &request{method: method, path: path, body: body, kind: opSandbox, sandboxID: id}
	if err := c.call(ctx, r, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
