// Package runtime defines the Driver interface that isolates sandboxes.
//
// A driver turns a Spec into a running sandbox whose PID 1 is the sdbx agent,
// and gives back connections to that agent. Everything above the driver
// (sandbox service, transports) talks to the sandbox only through the agent
// protocol (package agentproto), so drivers are interchangeable.
package runtime

import (
	"context"
	"net"
)

// Overlay is one overlay mount in the sandbox's root filesystem.
type Overlay struct {
	// Target is the absolute path inside the sandbox ("/usr", "/etc", or
	// "/" for a full root filesystem).
	Target string
	// Lower lists read-only host directories, topmost first (overlayfs
	// lowerdir order). The sandbox's writes go to a per-sandbox upper dir.
	Lower []string
}

// Resources are hard limits enforced by the driver. Zero means the driver's
// default.
type Resources struct {
	CPU      float64 // CPUs (1.5 = one and a half cores)
	MemoryMB int64
	PIDs     int64
	DiskMB   int64
}

// DiskQuotas is the optional ability of a driver to enforce
// Resources.DiskMB.
type DiskQuotas interface {
	// DiskQuota returns nil when DiskMB is enforced, else an error
	// (errdefs.ErrUnavailable) saying why not.
	DiskQuota() error
}

// Spec describes a sandbox to create.
type Spec struct {
	// ID is the sandbox id: [a-z0-9-], at most 63 bytes. It is also the
	// sandbox's hostname.
	ID string
	// Overlays make up the root filesystem, in mount order.
	Overlays []Overlay
	// Resources are the sandbox's limits.
	Resources Resources
	// Network is the sandbox's egress policy; an empty Egress means
	// EgressNone (loopback only).
	Network Network
}

// State is what a driver knows about one sandbox.
type State string

const (
	// StateRunning means the sandbox's agent is alive.
	StateRunning State = "running"
	// StateStopped means the sandbox's files exist but nothing runs.
	StateStopped State = "stopped"
)

// Driver creates and destroys isolated sandboxes.
//
// Methods are safe for concurrent use for different ids. Errors wrap the
// kinds of package errdefs.
type Driver interface {
	// Create prepares the sandbox's files and limits and starts it. It
	// returns once the agent accepts connections (connections made through
	// Dial right after Create are served). Returns errdefs.ErrConflict if the
	// id exists and errdefs.ErrInvalidArgument for a bad Spec. On error
	// nothing is left behind.
	Create(ctx context.Context, spec Spec) error
	// Start starts a stopped sandbox again with its files. Returns
	// errdefs.ErrNotFound for an unknown id; a running sandbox is left alone.
	Start(ctx context.Context, id string) error
	// Stop kills every process of the sandbox and keeps its files. Stopping
	// a stopped sandbox is a no-op. Returns errdefs.ErrNotFound for an
	// unknown id.
	Stop(ctx context.Context, id string) error
	// Delete kills every process and removes every mount, cgroup and file
	// of the sandbox. Deleting an unknown id returns nil, so Delete can be
	// retried after a partial failure.
	Delete(ctx context.Context, id string) error
	// Status reports the sandbox's state. Returns errdefs.ErrNotFound for an
	// unknown id.
	Status(ctx context.Context, id string) (State, error)
	// List returns the ids of every sandbox the driver has files for,
	// including ones left by an earlier server process.
	List(ctx context.Context) ([]string, error)
	// Dial opens a new connection to the sandbox's agent. Returns
	// errdefs.ErrNotFound for an unknown id and errdefs.ErrUnavailable when
	// the sandbox is not running.
	Dial(ctx context.Context, id string) (net.Conn, error)
}
