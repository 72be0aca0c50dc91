package sdbx

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Languages a code context can run.
const (
	LanguagePython     = "python"
	LanguageJavaScript = "javascript"
)

// ExecutionResult is the outcome of RunCode: what the code printed and
// produced, and where it ran. Its JSON form is the wire form.
type ExecutionResult struct {
	Execution Execution         `json:"execution"`
	Metadata  ExecutionMetadata `json:"metadata"`
}

// Execution is what one run of code produced.
type Execution struct {
	Logs Logs `json:"logs"`
	// Results are the rich values, in order: display(...) calls, figures,
	// and last the trailing expression's value (IsMainResult).
	Results []Result `json:"results"`
	// Error is set when the code raised; that is not an error of the call.
	Error *ExecutionError `json:"error,omitempty"`
	// ExecutionCount numbers the runs of the context, from 1.
	ExecutionCount int `json:"executionCount"`
	// Truncated says Logs hold only the first lines (every line was still
	// streamed to the callbacks).
	Truncated bool `json:"truncated"`
}

// Logs are the lines a run printed, without their newlines; at most the
// first 10,000 lines (and 10 MiB) of each stream.
type Logs struct {
	Stdout []string `json:"stdout"`
	Stderr []string `json:"stderr"`
}

// ExecutionMetadata says where and how long code ran.
type ExecutionMetadata struct {
	DurationMs int64  `json:"durationMs"`
	ContextID  string `json:"contextId"`
	Language   string `json:"language"`
	SandboxID  string `json:"sandboxId"`
}

// Duration returns how long the code ran.
func (m ExecutionMetadata) Duration() time.Duration {
	return time.Duration(m.DurationMs) * time.Millisecond
}

// ExecutionError describes an exception the code raised.
type ExecutionError struct {
	// Name is the exception's type, e.g. "ZeroDivisionError".
	Name string `json:"name"`
	// Value is its message, e.g. "division by zero".
	Value string `json:"value"`
	// Traceback is formatted, showing the code's own lines.
	Traceback string `json:"traceback"`
}

// Result is a rich value: the trailing expression of the code, an object
// passed to display(), a matplotlib figure. Text is set whenever the value
// has a plain-text form; the other fields only when the value offers that
// MIME type. Fields the server adds later are ignored when decoding.
type Result struct {
	Text     string `json:"text,omitempty"`     // text/plain
	HTML     string `json:"html,omitempty"`     // text/html
	Markdown string `json:"markdown,omitempty"` // text/markdown
	SVG      string `json:"svg,omitempty"`      // image/svg+xml
	// PNG, JPEG and PDF are base64 (standard alphabet).
	PNG        string          `json:"png,omitempty"`        // image/png
	JPEG       string          `json:"jpeg,omitempty"`       // image/jpeg
	PDF        string          `json:"pdf,omitempty"`        // application/pdf
	LaTeX      string          `json:"latex,omitempty"`      // text/latex
	JSON       json.RawMessage `json:"json,omitempty"`       // application/json
	JavaScript string          `json:"javascript,omitempty"` // application/javascript
	// Data holds the value's other MIME types, keyed by MIME type.
	Data map[string]json.RawMessage `json:"data,omitempty"`
	// IsMainResult marks the value of the code's trailing expression.
	IsMainResult bool `json:"isMainResult,omitempty"`
	// Extra is interpreter-specific metadata.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// Formats lists the MIME types the result offers: those of the named
// fields, richest first (images, then HTML and the other text forms,
// text/plain last), followed by the keys of Data, sorted.
func (r Result) Formats() []string {
	var out []string
	for _, f := range []struct {
		set  bool
		mime string
	}{
		{r.PNG != "", "image/png"},
		{r.JPEG != "", "image/jpeg"},
		{r.SVG != "", "image/svg+xml"},
		{r.PDF != "", "application/pdf"},
		{r.HTML != "", "text/html"},
		{r.Markdown != "", "text/markdown"},
		{r.LaTeX != "", "text/latex"},
		{len(r.JSON) > 0 && string(r.JSON) != "null", "application/json"},
		{r.JavaScript != "", "application/javascript"},
		{r.Text != "", "text/plain"},
	} {
		if f.set {
			out = append(out, f.mime)
		}
	}
	return append(out, slices.Sorted(maps.Keys(r.Data))...)
}

// CodeContext is a persistent interpreter in a sandbox: variables,
// imports and functions survive between runs of the same context.
type CodeContext struct {
	ID        string            `json:"id"`
	SandboxID string            `json:"sandboxId"`
	Language  string            `json:"language"`
	Cwd       string            `json:"cwd"`
	EnvVars   map[string]string `json:"envVars"`
	CreatedAt time.Time         `json:"createdAt"`
	// Default marks the sandbox's default context of its language, which
	// runs code given no context.
	Default bool `json:"default"`
}

// ContextOptions describe a new code context. Every field is optional.
type ContextOptions struct {
	// Language is LanguagePython or LanguageJavaScript; "" means the
	// template's language.
	Language string
	// Cwd is the interpreter's working directory, an absolute path; it is
	// created when missing. "" means the template's (/workspace).
	Cwd string
	// Env is added to the interpreter's environment.
	Env map[string]string
}

// BatchJob is one piece of code of RunBatch.
type BatchJob struct {
	// ID names the job in its BatchResult and streamed lines; required and
	// unique within the batch.
	ID   string
	Code string
	// Timeout bounds the job's run; 0 means the server's default (60s).
	Timeout time.Duration
	// Priority orders the start of jobs: higher first; equal priorities
	// start in job order.
	Priority int
	// Language defaults to the template's.
	Language string
	// Context runs the job in this context; without one the job runs in a
	// fresh context that is deleted afterwards.
	Context string
}

// BatchResult is the outcome of one job, in job order.
type BatchResult struct {
	JobID string `json:"jobId"`
	// Success is true when the job ran and did not raise.
	Success bool `json:"success"`
	// Error says why the job failed: "Name: value" of the exception, or
	// the operation's error (e.g. its timeout).
	Error string `json:"error,omitempty"`
	// DurationMs is how long the job took, in milliseconds.
	DurationMs int64 `json:"duration"`
	// Execution is nil when the job did not run to an outcome (an
	// operation error such as a timeout).
	Execution *Execution `json:"execution"`
}

// Duration returns how long the job took.
func (r BatchResult) Duration() time.Duration {
	return time.Duration(r.DurationMs) * time.Millisecond
}
