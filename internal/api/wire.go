package api

import (
	"math"
	"time"

	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/template"
)

// Requests. Field sets are exact: decodeObject refuses any other key.

// createSandboxBody is CreateSandbox (HTTP body and sandbox:create payload).
type createSandboxBody struct {
	TemplateID     string            `json:"templateId"`
	Name           string            `json:"name"`
	ExpiryTime     int64             `json:"expiryTime"`
	InitialEnvVars map[string]string `json:"initialEnvVars"`
	Resources      resourcesJSON     `json:"resources"`
	Network        networkJSON       `json:"network"`
}

// networkJSON is a sandbox's egress policy on the wire.
type networkJSON struct {
	Egress string   `json:"egress"`
	Allow  []string `json:"allow"`
}

// resourcesJSON is a sandbox's limits on the wire.
type resourcesJSON struct {
	CPU      float64 `json:"cpu"`
	MemoryMB int64   `json:"memoryMb"`
	PIDs     int64   `json:"pids"`
	DiskMB   int64   `json:"diskMb,omitempty"`
}

func (b createSandboxBody) options() sandbox.CreateOptions {
	return sandbox.CreateOptions{
		TemplateID: b.TemplateID,
		Name:       b.Name,
		Expiry:     msDuration(b.ExpiryTime),
		Env:        b.InitialEnvVars,
		Resources:  sandbox.Resources(b.Resources),
		Network:    runtime.Network(b.Network),
	}
}

// commandBody is Command (the body of POST .../commands).
type commandBody struct {
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	Envs      map[string]string `json:"envs"`
	Cwd       string            `json:"cwd"`
	TimeoutMs int64             `json:"timeoutMs"`
}

func (b commandBody) request() sandbox.CommandRequest {
	return sandbox.CommandRequest{
		Command: b.Command,
		Args:    b.Args,
		Env:     b.Envs,
		Cwd:     b.Cwd,
		Timeout: msDuration(b.TimeoutMs),
	}
}

// runPayload is the terminal:run payload: {sandboxId, streamId?, ...Command}.
type runPayload struct {
	SandboxID string            `json:"sandboxId"`
	StreamID  *string           `json:"streamId"`
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	Envs      map[string]string `json:"envs"`
	Cwd       string            `json:"cwd"`
	TimeoutMs int64             `json:"timeoutMs"`
}

func (p runPayload) request() sandbox.CommandRequest {
	return commandBody{Command: p.Command, Args: p.Args, Envs: p.Envs, Cwd: p.Cwd, TimeoutMs: p.TimeoutMs}.request()
}

// sandboxRef is the sandbox:get and sandbox:delete payload.
type sandboxRef struct {
	SandboxID string `json:"sandboxId"`
}

// templateRef is the template:get payload.
type templateRef struct {
	TemplateID string `json:"templateId"`
}

// pageQuery is the template:list payload.
type pageQuery struct {
	Page     *int `json:"page"`
	PageSize *int `json:"pageSize"`
}

// noFields is a payload that takes no fields (sandbox:list).
type noFields struct{}

// Paging defaults of docs/protocol.md, applied when the client sends none.
const (
	defaultPage     = 1
	defaultPageSize = 10
)

// msDuration converts milliseconds to a Duration, saturating instead of
// overflowing (the service refuses out-of-range values).
func msDuration(ms int64) time.Duration {
	const limit = math.MaxInt64 / int64(time.Millisecond)
	switch {
	case ms > limit:
		return math.MaxInt64
	case ms < -limit:
		return math.MinInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// Responses. They pin the wire shape independently of the domain types'
// tags: times in UTC, absent collections as {} / [] rather than null.

type sandboxJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	TemplateID string            `json:"templateId"`
	Status     string            `json:"status"`
	EnvVars    map[string]string `json:"envVars"`
	CreatedAt  time.Time         `json:"createdAt"`
	UpdatedAt  time.Time         `json:"updatedAt"`
	ExpiresAt  *time.Time        `json:"expiresAt,omitempty"`
	Error      string            `json:"error"`
	Resources  resourcesJSON     `json:"resources"`
	Network    networkJSON       `json:"network"`
}

func toSandbox(s sandbox.Sandbox) sandboxJSON {
	out := sandboxJSON{
		ID:         s.ID,
		Name:       s.Name,
		TemplateID: s.TemplateID,
		Status:     string(s.Status),
		EnvVars:    orEmptyMap(s.EnvVars),
		CreatedAt:  s.CreatedAt.UTC(),
		UpdatedAt:  s.UpdatedAt.UTC(),
		Error:      s.Error,
		Resources:  resourcesJSON(s.Resources),
		Network:    networkJSON{Egress: s.Network.Egress, Allow: orEmptySlice(s.Network.Allow)},
	}
	if s.ExpiresAt != nil {
		t := s.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

func toSandboxes(list []sandbox.Sandbox) []sandboxJSON {
	out := make([]sandboxJSON, 0, len(list))
	for _, s := range list {
		out = append(out, toSandbox(s))
	}
	return out
}

type createdJSON struct {
	Sandbox sandboxJSON `json:"sandbox"`
}

type sandboxListJSON struct {
	Sandboxes []sandboxJSON `json:"sandboxes"`
}

type templateJSON struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Language     string            `json:"language"`
	Version      string            `json:"version"`
	Description  string            `json:"description"`
	Dependencies []string          `json:"dependencies"`
	DefaultEnv   map[string]string `json:"defaultEnvVars"`
	DefaultCwd   string            `json:"defaultCwd"`
	Status       string            `json:"status"`
	Error        string            `json:"error,omitempty"`
	BuiltIn      bool              `json:"builtIn"`
	CreatedAt    time.Time         `json:"createdAt"`
}

func toTemplate(t template.Template) templateJSON {
	return templateJSON{
		ID:           t.ID,
		Name:         t.Name,
		Language:     t.Language,
		Version:      t.Version,
		Description:  t.Description,
		Dependencies: orEmptySlice(t.Dependencies),
		DefaultEnv:   orEmptyMap(t.DefaultEnv),
		DefaultCwd:   t.DefaultCwd,
		Status:       t.Status,
		Error:        t.Error,
		BuiltIn:      t.BuiltIn,
		CreatedAt:    t.CreatedAt.UTC(),
	}
}

type templatePageJSON struct {
	Templates []templateJSON `json:"templates"`
	Total     int            `json:"total"`
	Page      int            `json:"page"`
	PageSize  int            `json:"pageSize"`
}

func toTemplatePage(p sandbox.TemplatePage) templatePageJSON {
	out := templatePageJSON{
		Templates: make([]templateJSON, 0, len(p.Templates)),
		Total:     p.Total,
		Page:      p.Page,
		PageSize:  p.PageSize,
	}
	for _, t := range p.Templates {
		out.Templates = append(out.Templates, toTemplate(t))
	}
	return out
}

type commandResultJSON struct {
	ExitCode   int      `json:"exitCode"`
	Stdout     []string `json:"stdout"`
	Stderr     []string `json:"stderr"`
	DurationMs int64    `json:"durationMs"`
	Truncated  bool     `json:"truncated"`
}

func toCommandResult(r sandbox.CommandResult) commandResultJSON {
	return commandResultJSON{
		ExitCode:   r.ExitCode,
		Stdout:     orEmptySlice(r.Stdout),
		Stderr:     orEmptySlice(r.Stderr),
		DurationMs: r.DurationMs,
		Truncated:  r.Truncated,
	}
}

// NDJSON lines of an HTTP stream: output lines (type stdout or stderr),
// then the result or the error.
type ndjsonOutput struct {
	Type      string `json:"type"`
	Line      string `json:"line"`
	Timestamp int64  `json:"timestamp"`
}

// ndjsonResult is the last line of a successful stream; result is what the
// operation answers without streaming.
type ndjsonResult struct {
	Type   string `json:"type"` // "result"
	Result any    `json:"result"`
}

type ndjsonError struct {
	Type  string    `json:"type"` // "error"
	Error wireError `json:"error"`
}

// streamOutputJSON is the Socket.IO stream:output event.
// jobId is set in batches only.
type streamOutputJSON struct {
	StreamID  string  `json:"streamId"`
	JobID     *string `json:"jobId,omitempty"`
	Stream    string  `json:"stream"`
	Line      string  `json:"line"`
	Timestamp int64   `json:"timestamp"`
}

// ackJSON is a Socket.IO acknowledgement.
type ackJSON struct {
	OK    bool       `json:"ok"`
	Data  any        `json:"data,omitempty"`
	Error *wireError `json:"error,omitempty"`
}

// emptyJSON encodes as {}.
type emptyJSON struct{}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orEmptySlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// The payloads below name their sandbox (see decodeSandboxPayload).
func (p *runPayload) sandbox() string { return p.SandboxID }
func (p *sandboxRef) sandbox() string { return p.SandboxID }
