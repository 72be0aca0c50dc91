package agentproto

import "encoding/json"

// Code contexts: persistent interpreters (one driver process each) that
// the agent keeps between requests. The server picks each context's id.
//
//   - context.create {id, language, cwd, env} starts the interpreter and
//     answers with a final EventContext.
//   - context.exec {id, code, env, timeoutMs} runs code and streams
//     EventStdout/EventStderr lines, EventDisplay rich results and at most
//     one EventException, then the final EventDone. Runs of one context
//     are serialized: a request that arrives while another runs waits its
//     turn (first come, first served). Closing the connection interrupts
//     the run (as a timeout does) or takes it out of the queue.
//   - context.delete {id} kills the interpreter and every process started
//     from it, and answers with a final EventContext.
//   - context.list answers with a final EventContexts.
//
// Errors are final EventError events: not_found for an unknown context id,
// conflict for a create with an id in use, invalid_argument for a bad
// field, not_found when the language's interpreter is missing.
const (
	OpContextCreate = "context.create"
	OpContextExec   = "context.exec"
	OpContextDelete = "context.delete"
	OpContextList   = "context.list"
)

// Languages of code contexts.
const (
	LanguagePython     = "python"
	LanguageJavaScript = "javascript"
)

// Event types of the context ops.
const (
	EventDisplay   = "display"   // a rich result of a context.exec: Result set
	EventException = "exception" // the code raised: Exception set
	EventDone      = "done"      // final event of context.exec: Done set
	EventContext   = "context"   // final answer to context.create and context.delete: Context set
	EventContexts  = "contexts"  // final answer to context.list: Contexts set (nil when none)
)

// MaxResult is the largest rich result (one EventDisplay line) the agent
// sends; a driver replaces a larger one by its text form.
const MaxResult = 48 << 20

// ContextCreateRequest starts a code context.
type ContextCreateRequest struct {
	// ID names the context; chosen by the server, unique in the sandbox.
	ID string `json:"id"`
	// Language is LanguagePython or LanguageJavaScript.
	Language string `json:"language"`
	// Cwd is the interpreter's working directory, created when missing;
	// empty means the agent's default (/workspace).
	Cwd string `json:"cwd,omitempty"`
	// Env is the complete environment of the interpreter (the server has
	// merged template, sandbox and context variables).
	Env map[string]string `json:"env,omitempty"`
	// Bytecode, when set, is the Python driver already compiled by the
	// server with its own interpreter; a driver whose interpreter has the
	// same cache tag runs it instead of compiling the source (which costs
	// milliseconds per start). Ignored for other languages.
	Bytecode *Bytecode `json:"bytecode,omitempty"`
}

// Bytecode is a marshalled Python code object and the interpreter cache
// tag (sys.implementation.cache_tag, e.g. "cpython-311") it is valid for.
type Bytecode struct {
	CacheTag string `json:"cacheTag"`
	Code     []byte `json:"code"`
}

// ContextExecRequest runs code in a context.
type ContextExecRequest struct {
	ID   string `json:"id"`
	Code string `json:"code"`
	// Env is set in the interpreter's environment for this run only.
	Env map[string]string `json:"env,omitempty"`
	// TimeoutMs interrupts the run after this many milliseconds (SIGINT:
	// KeyboardInterrupt in Python); a run that does not stop is killed and
	// the interpreter restarted. 0 means no timeout.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// ContextDeleteRequest deletes a context.
type ContextDeleteRequest struct {
	ID string `json:"id"`
}

// Result is a rich value: the trailing expression of the code, an object
// passed to display(), a matplotlib figure. Text is set whenever the value
// has a plain-text form; the other fields only when the value offers that
// MIME type. Binary forms (PNG, JPEG, PDF) are base64.
type Result struct {
	Text       string          `json:"text,omitempty"`       // text/plain
	HTML       string          `json:"html,omitempty"`       // text/html
	Markdown   string          `json:"markdown,omitempty"`   // text/markdown
	SVG        string          `json:"svg,omitempty"`        // image/svg+xml
	PNG        string          `json:"png,omitempty"`        // image/png, base64
	JPEG       string          `json:"jpeg,omitempty"`       // image/jpeg, base64
	PDF        string          `json:"pdf,omitempty"`        // application/pdf, base64
	LaTeX      string          `json:"latex,omitempty"`      // text/latex
	JSON       json.RawMessage `json:"json,omitempty"`       // application/json
	JavaScript string          `json:"javascript,omitempty"` // application/javascript
	// Data holds the value's other MIME types, keyed by MIME type.
	Data map[string]json.RawMessage `json:"data,omitempty"`
	// IsMainResult marks the value of the code's trailing expression.
	IsMainResult bool `json:"isMainResult,omitempty"`
	// Extra is driver-specific metadata.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// Exception describes an error the code raised.
type Exception struct {
	Name      string `json:"name"`      // e.g. "ZeroDivisionError"
	Value     string `json:"value"`     // the message, e.g. "division by zero"
	Traceback string `json:"traceback"` // formatted, showing the code's own lines
}

// ContextDone ends a context.exec.
type ContextDone struct {
	// ExecutionCount numbers the runs of the context, from 1.
	ExecutionCount int `json:"executionCount"`
	// TimedOut is set when the run passed its timeout (or was cancelled).
	TimedOut bool `json:"timedOut"`
	// StateKept says whether the interpreter's state (variables, imports)
	// survived the run: false when it had to be killed or it exited.
	StateKept bool `json:"stateKept"`
}

// ContextInfo describes a context.
type ContextInfo struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
	// Pid is the interpreter's process id; 0 while it is not running (it
	// restarts on the next run).
	Pid            int   `json:"pid,omitempty"`
	ExecutionCount int   `json:"executionCount"`
	CreatedAt      int64 `json:"createdAt"` // Unix milliseconds
}
