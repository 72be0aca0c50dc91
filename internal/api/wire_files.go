package api

import (
	"time"

	"github.com/sdbx/sdbx/internal/sandbox"
)

// Requests of files and template creation.

// File content encodings of file:write and file:read.
const (
	encodingUTF8   = "utf8"
	encodingBase64 = "base64"
)

// fileWritePayload is the file:write payload. content is required (it may
// be empty).
type fileWritePayload struct {
	SandboxID     string  `json:"sandboxId"`
	Path          string  `json:"path"`
	Content       *string `json:"content"`
	Encoding      string  `json:"encoding"`
	CreateParents bool    `json:"createParents"`
}

// fileReadPayload is the file:read payload.
type fileReadPayload struct {
	SandboxID string `json:"sandboxId"`
	Path      string `json:"path"`
	Encoding  string `json:"encoding"`
}

// fileDeletePayload is the file:delete payload.
type fileDeletePayload struct {
	SandboxID string `json:"sandboxId"`
	Path      string `json:"path"`
	Recursive bool   `json:"recursive"`
}

// fileListPayload is the file:list payload; path defaults (in the
// service) to the template's working directory.
type fileListPayload struct {
	SandboxID string `json:"sandboxId"`
	Path      string `json:"path"`
}

// fileStatPayload is the file:stat and file:exists payload.
type fileStatPayload struct {
	SandboxID string `json:"sandboxId"`
	Path      string `json:"path"`
}

// makeDirBody is the body of POST .../files/mkdir.
type makeDirBody struct {
	Path    string `json:"path"`
	Parents bool   `json:"parents"`
}

// fileMkdirPayload is the file:mkdir payload.
type fileMkdirPayload struct {
	SandboxID string `json:"sandboxId"`
	Path      string `json:"path"`
	Parents   bool   `json:"parents"`
}

// moveFileBody is the body of POST .../files/move.
type moveFileBody struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite"`
}

// fileMovePayload is the file:move payload.
type fileMovePayload struct {
	SandboxID string `json:"sandboxId"`
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite"`
}

// templateConfigBody is TemplateConfig (POST /v1/templates and
// template:create).
type templateConfigBody struct {
	Name           string            `json:"name"`
	Language       string            `json:"language"`
	Version        string            `json:"version"`
	DockerImage    string            `json:"dockerImage"`
	Dependencies   []string          `json:"dependencies"`
	InstallCommand string            `json:"installCommand"`
	DefaultEnvVars map[string]string `json:"defaultEnvVars"`
}

func (b templateConfigBody) config() sandbox.TemplateConfig {
	return sandbox.TemplateConfig{
		Name:           b.Name,
		Language:       b.Language,
		Version:        b.Version,
		DockerImage:    b.DockerImage,
		Dependencies:   b.Dependencies,
		InstallCommand: b.InstallCommand,
		DefaultEnv:     b.DefaultEnvVars,
	}
}

// Responses.

type fileEntryJSON struct {
	Name       string    `json:"name"`
	Path       string    `json:"path"`
	Type       string    `json:"type"`
	Size       int64     `json:"size"`
	Mode       string    `json:"mode"`
	ModifiedAt time.Time `json:"modifiedAt"`
}

func toFileEntry(e sandbox.FileEntry) fileEntryJSON {
	return fileEntryJSON{
		Name:       e.Name,
		Path:       e.Path,
		Type:       e.Type,
		Size:       e.Size,
		Mode:       e.Mode,
		ModifiedAt: e.ModifiedAt.UTC(),
	}
}

type fileListJSON struct {
	Path    string          `json:"path"`
	Entries []fileEntryJSON `json:"entries"`
}

func toFileList(l sandbox.FileList) fileListJSON {
	out := fileListJSON{Path: l.Path, Entries: make([]fileEntryJSON, 0, len(l.Entries))}
	for _, e := range l.Entries {
		out.Entries = append(out.Entries, toFileEntry(e))
	}
	return out
}

// fileExistsJSON is the answer of GET .../files/exists and file:exists.
type fileExistsJSON struct {
	Exists bool `json:"exists"`
}

// fileContentJSON is the file:read answer; size is the file's length in
// bytes (not of the encoded content).
type fileContentJSON struct {
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
	Size     int64  `json:"size"`
}

// The payloads below name their sandbox (see decodeSandboxPayload).
func (p *fileDeletePayload) sandbox() string { return p.SandboxID }
func (p *fileListPayload) sandbox() string   { return p.SandboxID }
func (p *fileMkdirPayload) sandbox() string  { return p.SandboxID }
func (p *fileMovePayload) sandbox() string   { return p.SandboxID }
func (p *fileReadPayload) sandbox() string   { return p.SandboxID }
func (p *fileStatPayload) sandbox() string   { return p.SandboxID }
func (p *fileWritePayload) sandbox() string  { return p.SandboxID }
