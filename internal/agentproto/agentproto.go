// Package agentproto is the wire protocol between the sdbx server and the
// agent that runs as PID 1 inside every sandbox.
//
// The protocol runs over any stream transport (a unix socket for the linux
// runtime, TCP for pod-based runtimes). A connection carries one request
// at a time:
//
//  1. The client opens a connection and writes one Request as a JSON line.
//  2. The agent answers with Event JSON lines until a final event (Exit,
//     Pong, Error, or the final event of the op), then closes the
//     connection — unless the request asked for keep-alive and the final
//     event says KeepAlive: then the connection stays open and the client
//     may write its next request on it (see Request.KeepAlive).
//  3. Closing the connection before the final event cancels the request: a
//     running command's process group is killed. The agent notices
//     through a read that returns, so a half-close (shutting down only the
//     client's write side) cancels too: keep the connection open until the
//     final event.
//
// Because a request owns its connection until its final event, streams
// need no multiplexing and cancellation needs no extra message.
package agentproto

// Ops a Request can name.
const (
	OpPing = "ping"
	OpExec = "exec"
)

// Request is the JSON line a client sends to start a request.
type Request struct {
	Op string `json:"op"`
	// KeepAlive asks the agent to keep the connection open after the
	// request's final event. An agent that does so marks that final event
	// KeepAlive; otherwise (an older agent, an op that ends with its
	// connection) it closes the connection as usual, and the client dials
	// anew for its next request. While a kept-alive request runs the
	// client writes nothing: the agent reads the connection only to notice
	// that the client left. KeepAliveOp says which ops honour it.
	KeepAlive bool         `json:"keepAlive,omitempty"`
	Exec      *ExecRequest `json:"exec,omitempty"`
	// Requests of the context ops (see context.go).
	ContextCreate *ContextCreateRequest `json:"contextCreate,omitempty"`
	ContextExec   *ContextExecRequest   `json:"contextExec,omitempty"`
	ContextDelete *ContextDeleteRequest `json:"contextDelete,omitempty"`
	// File is the request of the file ops (see files.go).
	File *FileRequest `json:"file,omitempty"`
	Proc *ProcRequest `json:"proc,omitempty"` // the proc ops (see procs.go)
	// Port is the request of OpPortConnect (see port.go).
	Port *PortRequest `json:"port,omitempty"`
}

// ExecRequest starts a process in the sandbox.
type ExecRequest struct {
	// Args is the argv; Args[0] is looked up in PATH of Env when it has no
	// slash.
	Args []string `json:"args"`
	// Env is the complete environment of the process (the server has
	// already merged template, sandbox and per-command variables).
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the working directory; empty means /workspace.
	Cwd string `json:"cwd,omitempty"`
	// TimeoutMs kills the process group after this many milliseconds;
	// 0 means no timeout.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// Event types sent by the agent.
const (
	EventStarted = "started" // process spawned; Pid set
	EventStdout  = "stdout"  // one line of standard output in Data
	EventStderr  = "stderr"  // one line of standard error in Data
	EventExit    = "exit"    // final: ExitCode set, TimedOut when killed by the timeout
	EventPong    = "pong"    // final answer to OpPing; Version set
	EventError   = "error"   // final: Code is an errdefs wire code, Message says why
)

// Event is one JSON line sent by the agent.
type Event struct {
	Type string `json:"t"`
	// Data is a line of output without its trailing newline. Lines longer
	// than MaxLine bytes are split.
	Data string `json:"d,omitempty"`
	// TS is when the agent read the line, in Unix milliseconds.
	TS       int64  `json:"ts,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	ExitCode int    `json:"code,omitempty"`
	TimedOut bool   `json:"timedOut,omitempty"`
	Version  string `json:"version,omitempty"`
	// ErrCode and Message describe an EventError.
	ErrCode string `json:"err,omitempty"`
	Message string `json:"msg,omitempty"`
	// Payloads of the context events (see context.go).
	Result    *Result       `json:"result,omitempty"`
	Exception *Exception    `json:"exception,omitempty"`
	Done      *ContextDone  `json:"done,omitempty"`
	Context   *ContextInfo  `json:"context,omitempty"`
	Contexts  []ContextInfo `json:"contexts,omitempty"`
	// Payloads of the file events (see files.go).
	Entry   *FileEntry   `json:"entry,omitempty"`
	Entries []FileEntry  `json:"entries,omitempty"`
	Exists  bool         `json:"exists,omitempty"`
	Proc    *ProcPayload `json:"proc,omitempty"` // payload of the proc events (see procs.go)
	// Change is the payload of EventFileChange (see watch.go).
	Change *Change `json:"change,omitempty"`
	// KeepAlive, on a final event, says that the agent keeps the
	// connection open for the client's next request.
	KeepAlive bool `json:"keepAlive,omitempty"`
}

// KeepAliveOp reports whether the agent honours Request.KeepAlive for op:
// ping, exec and the context ops. The other ops end with their connection
// (streams such as watch, follow and port connections) or are rare.
func KeepAliveOp(op string) bool {
	switch op {
	case OpPing, OpExec, OpContextCreate, OpContextExec, OpContextDelete, OpContextList:
		return true
	}
	return false
}

// MaxLine is the longest output line the agent sends in one event.
const MaxLine = 64 * 1024

// MaxRequest is the largest request line the agent accepts.
const MaxRequest = 1 << 20
