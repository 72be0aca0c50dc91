package sandbox

import "time"

// Languages a code context can run.
const (
	LanguagePython     = "python"
	LanguageJavaScript = "javascript"
)

// RunCodeRequest runs code in a code context.
type RunCodeRequest struct {
	Code string
	// Language defaults to the template's language.
	Language string
	// ContextID selects a context; empty means the sandbox's default
	// context for Language.
	ContextID string
	// Env applies to this run only.
	Env     map[string]string
	Timeout time.Duration
}

// Result is one rich value: MIME-keyed fields as in docs/protocol.md
// ("text", "html", "png" (base64), "json", ..., "isMainResult").
type Result map[string]any

// ExecutionError describes an exception raised by the code.
type ExecutionError struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Traceback string `json:"traceback"`
}

// Logs holds the lines a run printed.
type Logs struct {
	Stdout []string `json:"stdout"`
	Stderr []string `json:"stderr"`
}

// Execution is what a run produced.
type Execution struct {
	Logs           Logs            `json:"logs"`
	Results        []Result        `json:"results"`
	Error          *ExecutionError `json:"error,omitempty"`
	ExecutionCount int             `json:"executionCount"`
	// Truncated says Logs hold only the first lines (all were streamed).
	Truncated bool `json:"truncated"`
}

// ExecutionMetadata describes where and how long a run ran.
type ExecutionMetadata struct {
	DurationMs int64  `json:"durationMs"`
	ContextID  string `json:"contextId"`
	Language   string `json:"language"`
	SandboxID  string `json:"sandboxId"`
}

// ExecutionResult is the final value of a run.
type ExecutionResult struct {
	Execution Execution         `json:"execution"`
	Metadata  ExecutionMetadata `json:"metadata"`
}

// Code event types, streamed while code runs.
const (
	CodeStdout    = "stdout"
	CodeStderr    = "stderr"
	CodeDisplay   = "display"   // Result is set
	CodeException = "exception" // Error is set
)

// CodeEvent is one streamed event of a run.
type CodeEvent struct {
	Type      string
	Line      string
	Timestamp time.Time
	Result    Result
	Error     *ExecutionError
}

// ContextOptions create a code context.
type ContextOptions struct {
	// Language defaults to the template's language.
	Language string
	// Cwd defaults to the template's working directory; created if missing.
	Cwd string
	Env map[string]string
}

// BatchJob is one job of a batch.
type BatchJob struct {
	ID       string
	Code     string
	Timeout  time.Duration
	Priority int
	Language string
	// ContextID runs the job in an existing context; empty means a fresh
	// context that is deleted afterwards.
	ContextID string
}

// BatchRequest runs jobs concurrently.
type BatchRequest struct {
	Jobs []BatchJob
	// Concurrency bounds the jobs running at once (default 4, max 16).
	Concurrency int
	// Env applies to every job.
	Env map[string]string
}

// BatchResult is the outcome of one job, in job order.
type BatchResult struct {
	JobID   string `json:"jobId"`
	Success bool   `json:"success"`
	// Error is "Name: value" of the raised exception, or the operation
	// error (timeout, ...).
	Error     string     `json:"error,omitempty"`
	Duration  int64      `json:"duration"`
	Execution *Execution `json:"execution"`
}
