package sandbox

import (
	"context"
	"time"
)

// Store persists sandbox records. Implementations: store/sqlite.
type Store interface {
	// CreateSandbox inserts a new record. Returns errdefs.ErrConflict if the
	// id exists.
	CreateSandbox(ctx context.Context, sb Sandbox) error
	// UpdateSandbox replaces the mutable fields (status, error, env,
	// updatedAt, expiresAt) of an existing record. Returns
	// errdefs.ErrNotFound for an unknown id.
	UpdateSandbox(ctx context.Context, sb Sandbox) error
	// GetSandbox returns errdefs.ErrNotFound for an unknown id.
	GetSandbox(ctx context.Context, id string) (Sandbox, error)
	// ListSandboxes returns the records of tenant ("" = every tenant) whose
	// status is not terminated, newest first.
	ListSandboxes(ctx context.Context, tenant string) ([]Sandbox, error)
	// ListExpired returns live records whose expiresAt is at or before now.
	ListExpired(ctx context.Context, now time.Time) ([]Sandbox, error)
	// DeleteSandbox removes a record; unknown ids are not an error.
	DeleteSandbox(ctx context.Context, id string) error
	// PruneTerminated removes terminated records last updated before cutoff.
	PruneTerminated(ctx context.Context, cutoff time.Time) error
}
