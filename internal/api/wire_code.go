package api

import (
	"time"

	"github.com/sdbx/sdbx/internal/sandbox"
)

// Requests of code execution, contexts and batches. Field sets are exact:
// decodeObject refuses any other key.

// runCodeBody is RunCode (the body of POST .../code).
type runCodeBody struct {
	Code      string            `json:"code"`
	Language  string            `json:"language"`
	Context   string            `json:"context"`
	Envs      map[string]string `json:"envs"`
	TimeoutMs int64             `json:"timeoutMs"`
}

func (b runCodeBody) request() sandbox.RunCodeRequest {
	return sandbox.RunCodeRequest{
		Code:      b.Code,
		Language:  b.Language,
		ContextID: b.Context,
		Env:       b.Envs,
		Timeout:   msDuration(b.TimeoutMs),
	}
}

// runCodePayload is the code:run payload: {sandboxId, streamId?, ...RunCode}.
type runCodePayload struct {
	SandboxID string            `json:"sandboxId"`
	StreamID  *string           `json:"streamId"`
	Code      string            `json:"code"`
	Language  string            `json:"language"`
	Context   string            `json:"context"`
	Envs      map[string]string `json:"envs"`
	TimeoutMs int64             `json:"timeoutMs"`
}

func (p runCodePayload) request() sandbox.RunCodeRequest {
	return runCodeBody{Code: p.Code, Language: p.Language, Context: p.Context, Envs: p.Envs, TimeoutMs: p.TimeoutMs}.request()
}

// contextBody is the body of POST .../contexts.
type contextBody struct {
	Language string            `json:"language"`
	Cwd      string            `json:"cwd"`
	Envs     map[string]string `json:"envs"`
}

func (b contextBody) options() sandbox.ContextOptions {
	return sandbox.ContextOptions{Language: b.Language, Cwd: b.Cwd, Env: b.Envs}
}

// contextPayload is the context:create payload.
type contextPayload struct {
	SandboxID string            `json:"sandboxId"`
	Language  string            `json:"language"`
	Cwd       string            `json:"cwd"`
	Envs      map[string]string `json:"envs"`
}

// contextRef is the context:delete payload.
type contextRef struct {
	ContextID string `json:"contextId"`
}

// batchJobJSON is one job of a Batch; timeout is in milliseconds.
type batchJobJSON struct {
	ID       string `json:"id"`
	Code     string `json:"code"`
	Timeout  int64  `json:"timeout"`
	Priority int    `json:"priority"`
	Language string `json:"language"`
	Context  string `json:"context"`
}

// batchBody is Batch (the body of POST .../batch).
type batchBody struct {
	Jobs        []batchJobJSON    `json:"jobs"`
	Concurrency int               `json:"concurrency"`
	Envs        map[string]string `json:"envs"`
}

func (b batchBody) request() sandbox.BatchRequest {
	req := sandbox.BatchRequest{
		Jobs:        make([]sandbox.BatchJob, 0, len(b.Jobs)),
		Concurrency: b.Concurrency,
		Env:         b.Envs,
	}
	for _, j := range b.Jobs {
		req.Jobs = append(req.Jobs, sandbox.BatchJob{
			ID:        j.ID,
			Code:      j.Code,
			Timeout:   msDuration(j.Timeout),
			Priority:  j.Priority,
			Language:  j.Language,
			ContextID: j.Context,
		})
	}
	return req
}

// batchPayload is the batch:run payload: {sandboxId, streamId?, ...Batch}.
type batchPayload struct {
	SandboxID   string            `json:"sandboxId"`
	StreamID    *string           `json:"streamId"`
	Jobs        []batchJobJSON    `json:"jobs"`
	Concurrency int               `json:"concurrency"`
	Envs        map[string]string `json:"envs"`
}

func (p batchPayload) request() sandbox.BatchRequest {
	return batchBody{Jobs: p.Jobs, Concurrency: p.Concurrency, Envs: p.Envs}.request()
}

// Responses.

type executionErrorJSON struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Traceback string `json:"traceback"`
}

func toExecutionError(e *sandbox.ExecutionError) *executionErrorJSON {
	if e == nil {
		return nil
	}
	return &executionErrorJSON{Name: e.Name, Value: e.Value, Traceback: e.Traceback}
}

type logsJSON struct {
	Stdout []string `json:"stdout"`
	Stderr []string `json:"stderr"`
}

type executionJSON struct {
	Logs           logsJSON            `json:"logs"`
	Results        []sandbox.Result    `json:"results"`
	Error          *executionErrorJSON `json:"error,omitempty"`
	ExecutionCount int                 `json:"executionCount"`
	Truncated      bool                `json:"truncated"`
}

func toExecution(e sandbox.Execution) executionJSON {
	out := executionJSON{
		Logs:           logsJSON{Stdout: orEmptySlice(e.Logs.Stdout), Stderr: orEmptySlice(e.Logs.Stderr)},
		Results:        make([]sandbox.Result, 0, len(e.Results)),
		Error:          toExecutionError(e.Error),
		ExecutionCount: e.ExecutionCount,
		Truncated:      e.Truncated,
	}
	for _, r := range e.Results {
		out.Results = append(out.Results, orEmptyResult(r))
	}
	return out
}

type executionMetadataJSON struct {
	DurationMs int64  `json:"durationMs"`
	ContextID  string `json:"contextId"`
	Language   string `json:"language"`
	SandboxID  string `json:"sandboxId"`
}

type executionResultJSON struct {
	Execution executionJSON         `json:"execution"`
	Metadata  executionMetadataJSON `json:"metadata"`
}

func toExecutionResult(r sandbox.ExecutionResult) executionResultJSON {
	return executionResultJSON{
		Execution: toExecution(r.Execution),
		Metadata: executionMetadataJSON{
			DurationMs: r.Metadata.DurationMs,
			ContextID:  r.Metadata.ContextID,
			Language:   r.Metadata.Language,
			SandboxID:  r.Metadata.SandboxID,
		},
	}
}

type codeContextJSON struct {
	ID        string            `json:"id"`
	SandboxID string            `json:"sandboxId"`
	Language  string            `json:"language"`
	Cwd       string            `json:"cwd"`
	EnvVars   map[string]string `json:"envVars"`
	CreatedAt time.Time         `json:"createdAt"`
	Default   bool              `json:"default"`
}

func toCodeContext(c sandbox.CodeContext) codeContextJSON {
	return codeContextJSON{
		ID:        c.ID,
		SandboxID: c.SandboxID,
		Language:  c.Language,
		Cwd:       c.Cwd,
		EnvVars:   orEmptyMap(c.EnvVars),
		CreatedAt: c.CreatedAt.UTC(),
		Default:   c.Default,
	}
}

type contextListJSON struct {
	Contexts []codeContextJSON `json:"contexts"`
}

func toContextList(list []sandbox.CodeContext) contextListJSON {
	out := contextListJSON{Contexts: make([]codeContextJSON, 0, len(list))}
	for _, c := range list {
		out.Contexts = append(out.Contexts, toCodeContext(c))
	}
	return out
}

// batchResultJSON is one BatchResult; execution is null when the job did
// not run to an outcome (an operation error such as a timeout).
type batchResultJSON struct {
	JobID     string         `json:"jobId"`
	Success   bool           `json:"success"`
	Error     string         `json:"error,omitempty"`
	Duration  int64          `json:"duration"`
	Execution *executionJSON `json:"execution"`
}

type batchResultsJSON struct {
	Results []batchResultJSON `json:"results"`
}

func toBatchResults(list []sandbox.BatchResult) batchResultsJSON {
	out := batchResultsJSON{Results: make([]batchResultJSON, 0, len(list))}
	for _, r := range list {
		br := batchResultJSON{JobID: r.JobID, Success: r.Success, Error: r.Error, Duration: r.Duration}
		if r.Execution != nil {
			e := toExecution(*r.Execution)
			br.Execution = &e
		}
		out.Results = append(out.Results, br)
	}
	return out
}

// Streamed code events. jobID is nil outside batches; in a batch every
// event carries its job's id.

// ndjsonCodeOutput is a stdout/stderr line of an NDJSON code stream.
type ndjsonCodeOutput struct {
	Type      string  `json:"type"`
	JobID     *string `json:"jobId,omitempty"`
	Line      string  `json:"line"`
	Timestamp int64   `json:"timestamp"`
}

type ndjsonDisplay struct {
	Type   string         `json:"type"` // "display"
	JobID  *string        `json:"jobId,omitempty"`
	Result sandbox.Result `json:"result"`
}

type ndjsonException struct {
	Type  string              `json:"type"` // "exception"
	JobID *string             `json:"jobId,omitempty"`
	Error *executionErrorJSON `json:"error"`
}

// ndjsonCodeEvent is the NDJSON line of ev, or nil for an event type the
// wire does not know.
func ndjsonCodeEvent(jobID *string, ev sandbox.CodeEvent) any {
	switch ev.Type {
	case sandbox.CodeStdout, sandbox.CodeStderr:
		return ndjsonCodeOutput{Type: ev.Type, JobID: jobID, Line: ev.Line, Timestamp: ev.Timestamp.UnixMilli()}
	case sandbox.CodeDisplay:
		return ndjsonDisplay{Type: "display", JobID: jobID, Result: orEmptyResult(ev.Result)}
	case sandbox.CodeException:
		return ndjsonException{Type: "exception", JobID: jobID, Error: orEmptyError(ev.Error)}
	}
	return nil
}

// streamResultJSON is the Socket.IO stream:result event.
type streamResultJSON struct {
	StreamID string         `json:"streamId"`
	JobID    *string        `json:"jobId,omitempty"`
	Result   sandbox.Result `json:"result"`
}

// streamErrorJSON is the Socket.IO stream:error event.
type streamErrorJSON struct {
	StreamID string              `json:"streamId"`
	JobID    *string             `json:"jobId,omitempty"`
	Error    *executionErrorJSON `json:"error"`
}

// socketCodeEvent is the Socket.IO event name and payload of ev, or "" for
// an event type the wire does not know.
func socketCodeEvent(streamID string, jobID *string, ev sandbox.CodeEvent) (string, any) {
	switch ev.Type {
	case sandbox.CodeStdout, sandbox.CodeStderr:
		return "stream:output", streamOutputJSON{
			StreamID: streamID, JobID: jobID, Stream: ev.Type, Line: ev.Line, Timestamp: ev.Timestamp.UnixMilli(),
		}
	case sandbox.CodeDisplay:
		return "stream:result", streamResultJSON{StreamID: streamID, JobID: jobID, Result: orEmptyResult(ev.Result)}
	case sandbox.CodeException:
		return "stream:error", streamErrorJSON{StreamID: streamID, JobID: jobID, Error: orEmptyError(ev.Error)}
	}
	return "", nil
}

func orEmptyResult(r sandbox.Result) sandbox.Result {
	if r == nil {
		return sandbox.Result{}
	}
	return r
}

func orEmptyError(e *sandbox.ExecutionError) *executionErrorJSON {
	if e == nil {
		return &executionErrorJSON{}
	}
	return toExecutionError(e)
}

// The payloads below name their sandbox (see decodeSandboxPayload).
func (p *batchPayload) sandbox() string   { return p.SandboxID }
func (p *contextPayload) sandbox() string { return p.SandboxID }
func (p *runCodePayload) sandbox() string { return p.SandboxID }
