package sdbx

import "time"

// Sandbox statuses.
const (
	StatusCreating   = "creating"   // being set up
	StatusReady      = "ready"      // running and idle
	StatusRunning    = "running"    // a command is executing
	StatusStopped    = "stopped"    // files kept, nothing runs
	StatusError      = "error"      // setup or runtime failed; Sandbox.Error says why
	StatusTerminated = "terminated" // deleted or expired
)

// Sandbox is the record of one sandbox (SandboxConfig/SandboxStatus in the
// TypeScript SDK). Its JSON form is the wire form.
type Sandbox struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	TemplateID string            `json:"templateId"`
	Status     string            `json:"status"`
	EnvVars    map[string]string `json:"envVars"`
	CreatedAt  time.Time         `json:"createdAt"`
	UpdatedAt  time.Time         `json:"updatedAt"`
	// ExpiresAt is when the server terminates the sandbox; nil means never.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Error says why Status is "error".
	Error string `json:"error,omitempty"`
	// Resources are the sandbox's limits.
	Resources Resources `json:"resources"`
	// Network is the sandbox's egress policy.
	Network Network `json:"network"`
}

// Egress policies of Network.Egress.
const (
	EgressNone      = "none"      // loopback only
	EgressInternet  = "internet"  // public addresses; never private ranges, metadata, the host or other sandboxes
	EgressAllowlist = "allowlist" // only the CIDRs and domains of Network.Allow
)

// Network is a sandbox's egress policy. In CreateSandboxOptions a zero
// Network means the server's default (--network-default, usually
// internet).
type Network struct {
	// Egress is EgressNone, EgressInternet or EgressAllowlist.
	Egress string `json:"egress,omitempty"`
	// Allow lists IPv4 CIDRs ("203.0.113.0/24"), domains
	// ("registry.npmjs.org") and wildcards ("*.example.org"), at most 64;
	// only with EgressAllowlist.
	Allow []string `json:"allow,omitempty"`
}

// Resources are a sandbox's hard limits. In CreateSandboxOptions a zero
// field means the server's default; the server refuses values above its
// maxima (--max-cpu, --max-memory-mb, --max-pids, --max-disk-mb).
type Resources struct {
	CPU      float64 `json:"cpu,omitempty"`
	MemoryMB int64   `json:"memoryMb,omitempty"`
	PIDs     int64   `json:"pids,omitempty"`
	// DiskMB is the disk quota of what the sandbox writes (writes past it
	// fail with "Disk quota exceeded"; in a files call with a
	// *SandboxError matching ErrResourceExhausted). Zero in a sandbox record when the
	// server does not enforce disk quotas; asking for it then is refused
	// (ErrInvalidArgument).
	DiskMB int64 `json:"diskMb,omitempty"`
}

// Template is an entry of the server's template catalog.
type Template struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Language string `json:"language"`
	// Version is the version that really runs in the sandbox.
	Version        string            `json:"version"`
	Description    string            `json:"description,omitempty"`
	Dependencies   []string          `json:"dependencies"`
	DefaultEnvVars map[string]string `json:"defaultEnvVars"`
	DefaultCwd     string            `json:"defaultCwd"`
	Status         string            `json:"status"`
	BuiltIn        bool              `json:"builtIn"`
	CreatedAt      time.Time         `json:"createdAt"`
	// Error says why Status is "failed" (a template build that failed).
	Error string `json:"error,omitempty"`
}

// TemplatePage is one page of the template catalog.
type TemplatePage struct {
	Templates []Template `json:"templates"`
	// Total is the number of templates in the whole catalog.
	Total int `json:"total"`
	// Page starts at 1.
	Page     int `json:"page"`
	PageSize int `json:"pageSize"`
}

// Health is the server's answer to GET /v1/health.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// CreateSandboxOptions describe a new sandbox.
type CreateSandboxOptions struct {
	// TemplateID is required (e.g. "python-3-11").
	TemplateID string
	// Name is optional, 1-128 characters.
	Name string
	// Expiry is how long the sandbox lives before the server terminates it;
	// 0 means the server's default. It is sent in whole milliseconds
	// (rounded up); the server refuses more than 7 days.
	Expiry time.Duration
	// Env is the sandbox's environment; names match [A-Za-z_][A-Za-z0-9_]*.
	Env map[string]string
	// Resources override the server's default limits.
	Resources Resources
	// Network is the egress policy; zero means the server's default.
	Network Network
}

// Command is a command to run in a sandbox. Exactly one of Command and Args
// is set.
type Command struct {
	// Command is run by the sandbox's shell (/bin/bash -c, or /bin/sh).
	Command string
	// Args is run directly as argv (no shell).
	Args []string
	// Env is added to the environment; it overrides the sandbox's env,
	// which overrides the template's defaults.
	Env map[string]string
	// Cwd is an absolute path; "" means the template's default (/workspace).
	Cwd string
	// Timeout kills the command's process group when it passes, and the
	// call fails with a *TimeoutError. 0 means the server's default (60s);
	// the server refuses more than 24 hours.
	Timeout time.Duration
}

// OutputLine is one line of the output of a command or code, as it is
// streamed.
type OutputLine struct {
	// Stream is "stdout" or "stderr".
	Stream string
	// Line is the text without its newline.
	Line string
	// Timestamp is when the server read the line (millisecond precision).
	Timestamp time.Time
	// JobID is the batch job that printed the line (RunBatch only).
	JobID string
}

// CommandResult is the outcome of a command that ran to its end. A non-zero
// ExitCode is not an error.
type CommandResult struct {
	ExitCode int `json:"exitCode"`
	// Stdout and Stderr keep the first lines only: at most 10,000 each
	// and 10 MiB for both together; Truncated says lines were left out.
	// Every line was still streamed to the callbacks.
	Stdout     []string `json:"stdout"`
	Stderr     []string `json:"stderr"`
	DurationMs int64    `json:"durationMs"`
	Truncated  bool     `json:"truncated,omitempty"`
}

// Duration returns how long the command ran.
func (r *CommandResult) Duration() time.Duration {
	return time.Duration(r.DurationMs) * time.Millisecond
}

// durationMs converts d to whole milliseconds, rounding a positive
// sub-millisecond rest up so that a small positive duration never becomes
// 0 (which means "default" on the wire).
func durationMs(d time.Duration) int64 {
	ms := d.Milliseconds()
	if d > 0 && d%time.Millisecond != 0 {
		ms++
	}
	return ms
}
