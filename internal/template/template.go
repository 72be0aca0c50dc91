// Package template is the catalog of sandbox templates: what a sandbox's
// root filesystem is made of, its language and version, its default
// environment and working directory.
package template

import (
	"time"

	"github.com/sdbx/sdbx/internal/runtime"
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
	BuiltIn      bool              `json:"builtIn"`
	CreatedAt    time.Time         `json:"createdAt"`
	// Overlays make up the root filesystem of the template's sandboxes.
	Overlays []runtime.Overlay `json:"-"`
}
