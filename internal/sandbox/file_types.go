package sandbox

import "time"

// File entry types.
const (
	FileTypeFile    = "file"
	FileTypeDir     = "dir"
	FileTypeSymlink = "symlink"
	FileTypeOther   = "other"
)

// FileEntry describes one file or directory in a sandbox.
type FileEntry struct {
	Name       string    `json:"name"`
	Path       string    `json:"path"`
	Type       string    `json:"type"`
	Size       int64     `json:"size"`
	Mode       string    `json:"mode"` // octal permission bits, "0644"
	ModifiedAt time.Time `json:"modifiedAt"`
}

// FileList is a directory listing, sorted by name.
type FileList struct {
	Path    string      `json:"path"`
	Entries []FileEntry `json:"entries"`
}

// WriteFileOptions modify WriteFile.
type WriteFileOptions struct {
	// CreateParents creates missing parent directories.
	CreateParents bool
}

// TemplateConfig is a request to build a custom template.
type TemplateConfig struct {
	Name           string
	Language       string
	Version        string
	DockerImage    string
	Dependencies   []string
	InstallCommand string
	DefaultEnv     map[string]string
}
