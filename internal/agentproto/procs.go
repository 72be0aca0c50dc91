package agentproto

// Background processes: commands the agent starts without a client
// waiting for them. Their standard output and error are kept in a bounded
// ring buffer with absolute byte offsets (both streams share one offset
// space), so a client can re-attach after a reconnect and learn how many
// bytes it missed.
//
//   - proc.start {args, env, cwd} spawns the command in its own process
//     group (stdin is a pipe) and answers with a final EventProc whose
//     Proc.Info describes it. Ending the connection does not touch it.
//   - proc.list answers with a final EventProcs.
//   - proc.output {id, offset, follow} streams EventProcOutput events from
//     offset. The first one has Proc.Lost set when offset was older than
//     the buffer's start. Without follow the final EventProc comes as soon
//     as the buffered output was sent; with follow it comes when the
//     process has exited and all of its output was sent.
//   - proc.stdin {id, data, close} writes data to the process's stdin and
//     closes it when close is set; final EventProc.
//   - proc.signal {id, signal} sends a signal ("SIGTERM", "TERM" or a
//     number) to the process group; final EventProc.
//   - proc.kill {id} sends SIGKILL to the process group; final EventProc.
//
// Errors are final EventError events: not_found for an unknown id,
// invalid_argument for a bad field or an unknown signal, conflict for
// stdin or a signal to a process that has exited (or stdin after close).
const (
	OpProcStart  = "proc.start"
	OpProcList   = "proc.list"
	OpProcOutput = "proc.output"
	OpProcStdin  = "proc.stdin"
	OpProcSignal = "proc.signal"
	OpProcKill   = "proc.kill"
)

// Event types of the proc ops.
const (
	EventProc       = "proc"       // final answer: Proc.Info set
	EventProcs      = "procs"      // final answer to proc.list: Proc.List set
	EventProcOutput = "procOutput" // a chunk of output: Proc.Stream, Proc.Data, Proc.Offset
)

// Streams of an output chunk.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// ProcRequest is the payload of every proc op; each op reads its fields.
type ProcRequest struct {
	// ID names the process (all ops but start and list).
	ID string `json:"id,omitempty"`
	// Args, Env and Cwd are those of an ExecRequest (start).
	Args []string          `json:"args,omitempty"`
	Env  map[string]string `json:"env,omitempty"`
	Cwd  string            `json:"cwd,omitempty"`
	// Offset is the first byte of output wanted (output).
	Offset int64 `json:"offset,omitempty"`
	// Follow keeps streaming until the process exits (output).
	Follow bool `json:"follow,omitempty"`
	// Data is written to stdin (base64 on the wire); Close closes stdin
	// after it (stdin).
	Data  []byte `json:"data,omitempty"`
	Close bool   `json:"close,omitempty"`
	// Signal is a name ("SIGTERM", "TERM") or a number ("15") (signal).
	Signal string `json:"signal,omitempty"`
	// Cols and Rows are a terminal's size (pty.create, where 0 means
	// 80x24, and pty.resize): 1-MaxTermSize each.
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
}

// ProcPayload is the payload of the proc events.
type ProcPayload struct {
	// Info describes one process (EventProc).
	Info *ProcInfo `json:"info,omitempty"`
	// List is every known process (EventProcs), oldest first.
	List []ProcInfo `json:"list,omitempty"`
	// Stream, Data and Offset describe an output chunk (EventProcOutput):
	// Offset is the absolute offset of Data's first byte.
	Stream string `json:"stream,omitempty"`
	Data   []byte `json:"data,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	// Lost is how many bytes before the first chunk are no longer
	// buffered (first EventProcOutput of a proc.output, or the final
	// event when nothing is sent).
	Lost int64 `json:"lost,omitempty"`
	// End is the offset after the last byte sent (final event of
	// proc.output): where the next proc.output should start.
	End int64 `json:"end,omitempty"`
}

// ProcInfo describes a background process.
type ProcInfo struct {
	ID        string   `json:"id"`
	Pid       int      `json:"pid"`
	Args      []string `json:"args"`
	Cwd       string   `json:"cwd,omitempty"`
	Running   bool     `json:"running"`
	ExitCode  *int     `json:"exitCode,omitempty"` // set once it has exited
	StartedAt int64    `json:"startedAt"`          // Unix milliseconds
	ExitedAt  int64    `json:"exitedAt,omitempty"` // Unix milliseconds
	// Start and End are the offsets of the buffered output: bytes
	// [Start, End) can still be read.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Cols and Rows are the size of a terminal session's terminal.
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
}
