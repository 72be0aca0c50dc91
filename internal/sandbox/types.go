package sandbox

import (
	"time"

	"github.com/sdbx/sdbx/internal/runtime"
)

// Status is a sandbox's lifecycle state as clients see it.
type Status string

const (
	StatusCreating   Status = "creating"   // being set up
	StatusReady      Status = "ready"      // running and idle
	StatusRunning    Status = "running"    // running, with at least one command executing
	StatusStopped    Status = "stopped"    // files kept, nothing runs
	StatusError      Status = "error"      // setup or runtime failed; Error says why
	StatusTerminated Status = "terminated" // deleted or expired; everything freed
)

// Sandbox is the record of one sandbox.
type Sandbox struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	TemplateID string            `json:"templateId"`
	Status     Status            `json:"status"`
	EnvVars    map[string]string `json:"envVars"`
	CreatedAt  time.Time         `json:"createdAt"`
	UpdatedAt  time.Time         `json:"updatedAt"`
	// ExpiresAt is when the server terminates the sandbox; nil means never.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Error explains StatusError.
	Error string `json:"error,omitempty"`
	// Resources are the sandbox's limits.
	Resources Resources `json:"resources"`
	// Network is the sandbox's egress policy.
	Network runtime.Network `json:"network"`
	// Tenant owns the sandbox; it is never sent to clients.
	Tenant string `json:"-"`
}

// Resources are a sandbox's hard limits. In a request, zero fields mean
// the server's default.
type Resources struct {
	CPU      float64 `json:"cpu"`
	MemoryMB int64   `json:"memoryMb"`
	PIDs     int64   `json:"pids"`
	// DiskMB is the disk quota of the sandbox's writable files (overlay
	// upper dirs, /workspace, /root). Zero (omitted) when the server does
	// not enforce disk quotas; asking for it then is refused.
	DiskMB int64 `json:"diskMb,omitempty"`
}

// CreateOptions are the inputs of Service.Create.
type CreateOptions struct {
	// Resources override the server's default limits, up to its maxima.
	Resources  Resources
	TemplateID string
	Name       string
	// Expiry is how long the sandbox lives; 0 means the server default.
	Expiry time.Duration
	Env    map[string]string
	// Network is the egress policy; an empty Egress means the server's
	// default.
	Network runtime.Network
}

// CommandRequest runs one command in a sandbox. Exactly one of Command
// (run by the shell) and Args (run directly) is set.
type CommandRequest struct {
	Command string
	Args    []string
	Env     map[string]string
	Cwd     string
	Timeout time.Duration
}

// Output is one line of a command's output.
type Output struct {
	Stream    string    `json:"stream"` // "stdout" or "stderr"
	Line      string    `json:"line"`
	Timestamp time.Time `json:"timestamp"`
}

// CommandResult is the outcome of a finished command.
type CommandResult struct {
	ExitCode   int      `json:"exitCode"`
	Stdout     []string `json:"stdout"`
	Stderr     []string `json:"stderr"`
	DurationMs int64    `json:"durationMs"`
	// Truncated says that Stdout/Stderr hold only the first lines of the
	// output (every line was still streamed).
	Truncated bool `json:"truncated,omitempty"`
}

// CodeContext is a persistent interpreter in a sandbox.
type CodeContext struct {
	ID        string            `json:"id"`
	SandboxID string            `json:"sandboxId"`
	Language  string            `json:"language"`
	Cwd       string            `json:"cwd"`
	EnvVars   map[string]string `json:"envVars"`
	CreatedAt time.Time         `json:"createdAt"`
	// Default marks the context code goes to when a run names none.
	Default bool `json:"default"`
}
