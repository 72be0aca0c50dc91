package sandbox

import (
	"context"
	"time"
)

// Store persists sandbox and code context records. Implementations:
// store/sqlite.
type Store interface {
	ContextStore
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

// ContextStore persists code context records. A context's record is
// removed with its sandbox's.
type ContextStore interface {
	// CreateContext inserts a record. Returns errdefs.ErrConflict if the id
	// exists, or if c.Default and the sandbox has a default context for
	// c.Language already.
	CreateContext(ctx context.Context, c CodeContext) error
	// GetContext returns errdefs.ErrNotFound for an unknown id.
	GetContext(ctx context.Context, id string) (CodeContext, error)
	// ListContexts returns a sandbox's contexts, oldest first.
	ListContexts(ctx context.Context, sandboxID string) ([]CodeContext, error)
	// DeleteContext removes a record; unknown ids are not an error.
	DeleteContext(ctx context.Context, id string) error
}
