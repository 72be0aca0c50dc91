package sdbx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// CodeOption adds an optional setting or callback to RunCode. OnStdout and
// OnStderr are CodeOptions too.
type CodeOption interface {
	applyCode(*codeOptions)
}

// BatchOption adds an optional setting or callback to RunBatch. OnStdout,
// OnStderr and Env are BatchOptions too; the lines they see carry the
// job's id in OutputLine.JobID.
type BatchOption interface {
	applyBatch(*batchOptions)
}

// codeHandlers are the callbacks of a code or batch stream.
type codeHandlers struct {
	runOptions
	onResult func(Result)
	onError  func(ExecutionError)
}

type codeOptions struct {
	codeHandlers
	language  string
	contextID string
	env       map[string]string
	timeout   time.Duration
}

type batchOptions struct {
	codeHandlers
	concurrency int
	env         map[string]string
}

func (o RunOption) applyCode(c *codeOptions)   { o(&c.runOptions) }
func (o RunOption) applyBatch(b *batchOptions) { o(&b.runOptions) }

// codeOption is a CodeOption made of a function.
type codeOption func(*codeOptions)

func (f codeOption) applyCode(c *codeOptions) { f(c) }

// batchOption is a BatchOption made of a function.
type batchOption func(*batchOptions)

func (f batchOption) applyBatch(b *batchOptions) { f(b) }

// Language runs the code as LanguagePython or LanguageJavaScript. Without
// it the code runs in the language of the context, or else of the
// sandbox's template.
func Language(language string) CodeOption {
	return codeOption(func(o *codeOptions) { o.language = language })
}

// InContext runs the code in the code context with this id (see
// CreateContext) instead of the sandbox's default context. The context must
// belong to the sandbox.
func InContext(contextID string) CodeOption {
	return codeOption(func(o *codeOptions) { o.contextID = contextID })
}

// Timeout bounds the run: past it the interpreter is interrupted and the
// call fails with a *TimeoutError whose message says whether the context's
// state was kept. 0 means the server's default (60s); at most 24 hours.
func Timeout(d time.Duration) CodeOption {
	return codeOption(func(o *codeOptions) { o.timeout = d })
}

// OnResult calls fn for each rich result (display(...), a figure, the
// trailing expression's value) as the server streams it, like OnStdout.
func OnResult(fn func(Result)) CodeOption {
	return codeOption(func(o *codeOptions) { o.onResult = fn })
}

// OnError calls fn when the code raises, as the server streams the
// exception (before RunCode returns the same error in
// Execution.Error). A raised exception is not an error of the call.
func OnError(fn func(ExecutionError)) CodeOption {
	return codeOption(func(o *codeOptions) { o.onError = fn })
}

// Concurrency sets how many jobs of a batch run at once: 1-16; 0 means the
// server's default (4).
func Concurrency(n int) BatchOption {
	return batchOption(func(o *batchOptions) { o.concurrency = n })
}

// EnvOption is the option Env returns; it applies to RunCode and RunBatch.
type EnvOption map[string]string

// Env adds variables to the environment of this run only (for RunBatch:
// of every job). Names match [A-Za-z_][A-Za-z0-9_]*.
func Env(env map[string]string) EnvOption { return EnvOption(env) }

func (e EnvOption) applyCode(o *codeOptions)   { o.env = e }
func (e EnvOption) applyBatch(o *batchOptions) { o.env = e }

// runCodeBody is the wire form of a RunCode request.
type runCodeBody struct {
	Code      string            `json:"code"`
	Language  string            `json:"language,omitempty"`
	Context   string            `json:"context,omitempty"`
	Envs      map[string]string `json:"envs,omitempty"`
	TimeoutMs int64             `json:"timeoutMs,omitempty"`
}

// RunCode runs code in a persistent interpreter of sandbox sandboxID and
// returns what it printed and produced. Without InContext the code goes
// to the sandbox's default context of its language, so state survives
// between runs: "x = 10" then "print(x)" prints 10.
//
// Output lines, rich results and a raised exception are streamed to the
// OnStdout, OnStderr, OnResult and OnError callbacks while the code runs.
// An exception is not an error: it is in Execution.Error. A run past its
// timeout fails with a *TimeoutError whose message says whether the
// context's state survived. Bad input (empty code, an unknown language, a
// negative timeout) fails with a *SandboxError matching ErrInvalidArgument
// that names the field; an unknown sandbox or context with one matching
// ErrNotFound. RunCode is never retried automatically; cancelling ctx
// closes the connection, and the server then interrupts the code.
func (c *Client) RunCode(ctx context.Context, sandboxID, code string, opts ...CodeOption) (*ExecutionResult, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var o codeOptions
	for _, opt := range opts {
		if opt != nil {
			opt.applyCode(&o)
		}
	}
	r := &request{
		method: http.MethodPost,
		path:   []string{"sandboxes", sandboxID, "code"},
		accept: ndjson,
		kind:   opSandbox, sandboxID: sandboxID,
	}
	body := runCodeBody{
		Code:      code,
		Language:  o.language,
		Context:   o.contextID,
		Envs:      o.env,
		TimeoutMs: durationMs(o.timeout),
	}
	var res ExecutionResult
	sink := streamSink{h: &o.codeHandlers, out: &res, final: "the final result",
		replay: func() { replayExecution(&o.codeHandlers, "", &res.Execution) }}
	if err := c.streamCode(ctx, r, body, c.timeout+runLimit(o.timeout), sink); err != nil {
		return nil, err
	}
	if res.Execution.Logs.Stdout == nil {
		res.Execution.Logs.Stdout = []string{}
	}
	if res.Execution.Logs.Stderr == nil {
		res.Execution.Logs.Stderr = []string{}
	}
	if res.Execution.Results == nil {
		res.Execution.Results = []Result{}
	}
	return &res, nil
}

// runLimit is how long a run of timeout d may take on the server.
func runLimit(d time.Duration) time.Duration {
	switch {
	case d > 0:
		return d
	case d == 0:
		return defaultCommandTimeout
	default:
		return 0 // refused by the server at once
	}
}

// batchJobBody is the wire form of a BatchJob.
type batchJobBody struct {
	ID       string `json:"id"`
	Code     string `json:"code"`
	Timeout  int64  `json:"timeout,omitempty"`
	Priority int    `json:"priority,omitempty"`
	Language string `json:"language,omitempty"`
	Context  string `json:"context,omitempty"`
}

type batchBody struct {
	Jobs        []batchJobBody    `json:"jobs"`
	Concurrency int               `json:"concurrency,omitempty"`
	Envs        map[string]string `json:"envs,omitempty"`
}

// RunBatch runs jobs in sandbox sandboxID, at most Concurrency at once,
// higher Priority first, and returns their results in job order. A job
// that raises or fails never stops the others: its BatchResult says so.
// Jobs without a Context each run in a fresh context that is deleted
// afterwards. The jobs' output lines are streamed to OnStdout/OnStderr with
// OutputLine.JobID set (lines of different jobs interleave; each job's
// keep their order).
//
// Bad input (no jobs, a missing or repeated job id, empty code, a
// concurrency out of range) fails with a *SandboxError matching
// ErrInvalidArgument whose message names the job and field. RunBatch is
// never retried automatically.
func (c *Client) RunBatch(ctx context.Context, sandboxID string, jobs []BatchJob, opts ...BatchOption) ([]BatchResult, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var o batchOptions
	for _, opt := range opts {
		if opt != nil {
			opt.applyBatch(&o)
		}
	}
	r := &request{
		method: http.MethodPost,
		path:   []string{"sandboxes", sandboxID, "batch"},
		accept: ndjson,
		kind:   opSandbox, sandboxID: sandboxID,
	}
	body := batchBody{Jobs: make([]batchJobBody, 0, len(jobs)), Concurrency: o.concurrency, Envs: o.env}
	for _, j := range jobs {
		body.Jobs = append(body.Jobs, batchJobBody{
			ID: j.ID, Code: j.Code, Timeout: durationMs(j.Timeout), Priority: j.Priority,
			Language: j.Language, Context: j.Context,
		})
	}
	var out struct {
		Results []BatchResult `json:"results"`
	}
	sink := streamSink{h: &o.codeHandlers, out: &out, final: "the final result", replay: func() {
		for _, br := range out.Results {
			if br.Execution != nil {
				replayExecution(&o.codeHandlers, br.JobID, br.Execution)
			}
		}
	}}
	if err := c.streamCode(ctx, r, body, c.timeout+batchLimit(jobs, o.concurrency), sink); err != nil {
		return nil, err
	}
	if out.Results == nil {
		out.Results = []BatchResult{}
	}
	return out.Results, nil
}

// batchLimit bounds how long the server may take to run jobs with
// concurrency n: the work spread over n runners, plus the longest job.
func batchLimit(jobs []BatchJob, n int) time.Duration {
	if n <= 0 {
		n = 4
	}
	var sum, longest time.Duration
	for _, j := range jobs {
		d := runLimit(j.Timeout)
		sum += d
		longest = max(longest, d)
	}
	return sum/time.Duration(n) + longest
}

// codeEvent is one line of the NDJSON response of POST .../code or
// .../batch. What "result" and "error" hold depends on the type.
type codeEvent struct {
	Type      string          `json:"type"`
	JobID     string          `json:"jobId"`
	Line      string          `json:"line"`
	Timestamp int64           `json:"timestamp"`
	Result    json.RawMessage `json:"result"`
	Error     json.RawMessage `json:"error"`
}

// streamSink is where streamCode delivers a stream.
type streamSink struct {
	h      *codeHandlers
	out    any    // the final result is decoded into it
	replay func() // calls h from out when the server answered with plain JSON
	final  string // names the final result when the stream ends without it
}

// streamCode sends body as r, bounded by limit, calls s.h for each
// streamed event and decodes the final result into s.out. A server that
// ignored Accept answers with plain JSON; s.replay then calls s.h from
// s.out. RunCommand, RunCode and RunBatch all stream through it.
func (c *Client) streamCode(ctx context.Context, r *request, body any, limit time.Duration, s streamSink) error {
	data, err := json.Marshal(body)
	if err != nil {
		return &SandboxError{Code: CodeInvalidArgument, Message: fmt.Sprintf("%s: encode request: %v", r.op(), err), SandboxID: r.sandboxID}
	}
	streamCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	resp, err := c.send(streamCtx, r, data)
	if err != nil {
		if streamCtx.Err() != nil {
			return c.contextError(ctx, r.op(), limit)
		}
		return err
	}
	defer resp.Body.Close()
	err = readCodeStream(resp, r, s)
	if err != nil && streamCtx.Err() != nil {
		return c.contextError(ctx, r.op(), limit)
	}
	return err
}

// readCodeStream decodes the response of a command, code run or batch.
func readCodeStream(resp *http.Response, r *request, s streamSink) error {
	h := s.h
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	dec := json.NewDecoder(resp.Body)
	if mt == "application/json" {
		if err := dec.Decode(s.out); err != nil {
			return decodeError(r, err)
		}
		s.replay()
		return nil
	}
	malformed := func(what string) error {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("%s: %s", r.op(), what), StatusCode: resp.StatusCode}
	}
	for {
		var ev codeEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return connectionError(r.op(), errors.New("stream ended before "+s.final))
			}
			return decodeError(r, err)
		}
		switch ev.Type {
		case "stdout", "stderr":
			l := OutputLine{Stream: ev.Type, Line: ev.Line, JobID: ev.JobID}
			if ev.Timestamp != 0 {
				l.Timestamp = time.UnixMilli(ev.Timestamp)
			}
			if ev.Type == "stdout" {
				emit(h.onStdout, l)
			} else {
				emit(h.onStderr, l)
			}
		case "display":
			var res Result
			if err := json.Unmarshal(ev.Result, &res); err != nil {
				return malformed(fmt.Sprintf("display event: %v", err))
			}
			if h.onResult != nil {
				h.onResult(res)
			}
		case "exception":
			var e ExecutionError
			if err := json.Unmarshal(ev.Error, &e); err != nil {
				return malformed(fmt.Sprintf("exception event: %v", err))
			}
			if h.onError != nil {
				h.onError(e)
			}
		case "result":
			if len(ev.Result) == 0 || string(ev.Result) == "null" {
				return malformed(`result event without "result"`)
			}
			if err := json.Unmarshal(ev.Result, s.out); err != nil {
				return malformed(fmt.Sprintf("decode result: %v", err))
			}
			return nil
		case "error":
			var got *wireError
			if json.Unmarshal(ev.Error, &got) != nil || got != nil && got.Code == "" {
				got = nil
			}
			return streamError(r, got)
		default:
			// Unknown event types are ignored so that the server can add
			// new ones.
		}
	}
}

// replayExecution calls h for the lines, results and exception of e, for
// a response that was not streamed.
func replayExecution(h *codeHandlers, jobID string, e *Execution) {
	for _, l := range e.Logs.Stdout {
		emit(h.onStdout, OutputLine{Stream: "stdout", Line: l, JobID: jobID})
	}
	for _, l := range e.Logs.Stderr {
		emit(h.onStderr, OutputLine{Stream: "stderr", Line: l, JobID: jobID})
	}
	if h.onResult != nil {
		for _, res := range e.Results {
			h.onResult(res)
		}
	}
	if h.onError != nil && e.Error != nil {
		h.onError(*e.Error)
	}
}

// contextBody is the wire form of ContextOptions.
type contextBody struct {
	Language string            `json:"language,omitempty"`
	Cwd      string            `json:"cwd,omitempty"`
	Envs     map[string]string `json:"envs,omitempty"`
}

// CreateContext starts a new code context (a persistent interpreter) in
// sandbox sandboxID; run code in it with InContext. Bad options fail with a
// *SandboxError matching ErrInvalidArgument. It is never retried
// automatically.
func (c *Client) CreateContext(ctx context.Context, sandboxID string, opts ContextOptions) (*CodeContext, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var cc CodeContext
	r := &request{
		method: http.MethodPost,
		path:   []string{"sandboxes", sandboxID, "contexts"},
		body:   contextBody{Language: opts.Language, Cwd: opts.Cwd, Envs: opts.Env},
		kind:   opSandbox, sandboxID: sandboxID,
	}
	if err := c.call(ctx, r, &cc); err != nil {
		return nil, err
	}
	return &cc, nil
}

// ListContexts returns the code contexts of sandbox sandboxID, oldest
// first, default contexts included.
func (c *Client) ListContexts(ctx context.Context, sandboxID string) ([]CodeContext, error) {
	if err := checkID(opSandbox, "sandboxId", sandboxID); err != nil {
		return nil, err
	}
	var out struct {
		Contexts []CodeContext `json:"contexts"`
	}
	r := &request{method: http.MethodGet, path: []string{"sandboxes", sandboxID, "contexts"}, kind: opSandbox, sandboxID: sandboxID}
	if err := c.call(ctx, r, &out); err != nil {
		return nil, err
	}
	if out.Contexts == nil {
		out.Contexts = []CodeContext{}
	}
	return out.Contexts, nil
}

// DeleteContext stops a code context and everything it started. An unknown
// id (or one of another tenant) fails with an *Error matching ErrNotFound.
func (c *Client) DeleteContext(ctx context.Context, contextID string) error {
	if err := checkID(opOther, "contextId", contextID); err != nil {
		return err
	}
	return c.call(ctx, &request{method: http.MethodDelete, path: []string{"contexts", contextID}}, nil)
}
