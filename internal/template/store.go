package template

import (
	"context"
)

// Store persists the records of custom templates (built-ins are not
// stored). Implementations: store/sqlite.
type Store interface {
	// CreateTemplate inserts a record. Returns errdefs.ErrConflict if the
	// id exists or the tenant has a template of that name.
	CreateTemplate(ctx context.Context, t Template) error
	// UpdateTemplate replaces the mutable fields (version, status, error,
	// default env, layers, build log, updatedAt) of a record. Returns
	// errdefs.ErrNotFound for an unknown id.
	UpdateTemplate(ctx context.Context, t Template) error
	// ListTemplates returns every record, oldest first.
	ListTemplates(ctx context.Context) ([]Template, error)
	// DeleteTemplate removes a record; an unknown id is not an error.
	DeleteTemplate(ctx context.Context, id string) error
}

// UpperDirReader is what builds need of a runtime driver besides
// runtime.Driver (the linux driver has it): the host directories that
// hold a stopped sandbox's writes to each overlay of its Spec, in order —
// overlayfs upper dirs, whiteouts included. The build turns them into
// layers.
type UpperDirReader interface {
	// UpperDirs returns errdefs.ErrNotFound for an unknown id.
	UpperDirs(ctx context.Context, id string) ([]string, error)
}
