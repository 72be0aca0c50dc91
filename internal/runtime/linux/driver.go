// Package linux is the runtime driver that isolates sandboxes on the local
// machine with Linux namespaces, cgroups, overlayfs, capabilities and
// seccomp.
//
// Create hands the sandbox to an "sdbx __init" process (InitMain) that
// runs in new mount, pid, network, uts and ipc namespaces, started ahead
// of time (spare.go) or then. Init moves itself into the sandbox's cgroups
// (v1; on v2 the driver moves it), builds the root file system (a tmpfs or
// an overlay, the template's overlays, /workspace, /tmp, a fresh /proc with
// host-revealing files masked, a minimal /dev), pivots into it, drops every
// capability, sets no_new_privs, installs a seccomp deny-list and executes
// the agent ("/.sdbx/sdbx agent --listen-fd 3"), which becomes the
// sandbox's PID 1 and serves the agent protocol on a unix socket that the
// driver created at <StateDir>/<id>/agent.sock. With Config.Network, a
// sandbox whose Spec.Network allows egress gets its link and rules
// (package network) while init sets up, before Create returns, so its
// first command has them.
//
// Everything the driver needs later lives on disk or in cgroupfs, so a
// restarted server finds, stops and deletes sandboxes that an earlier
// server process created. docs/runtime-linux.md describes the layers and
// their pitfalls.
package linux

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
)

// Config configures a Driver.
type Config struct {
	// StateDir holds one directory per sandbox (upper dirs, workspace,
	// agent socket). Required; created if missing.
	StateDir string
	// Exe is the sdbx executable started as the sandbox's init and
	// bind-mounted into it as the agent. Default: os.Executable().
	Exe string
	// CgroupParent is the cgroup, relative to each hierarchy's root, under
	// which sandboxes get theirs. Default "sdbx".
	CgroupParent string
	// CgroupRoot is where cgroupfs is mounted. Default "/sys/fs/cgroup".
	CgroupRoot string
	// DefaultResources fill the zero fields of a Spec's Resources.
	// Zero fields here default to 1 CPU, 1024 MiB, 512 pids and 2048 MiB
	// of disk (enforced only with a disk pool).
	DefaultResources runtime.Resources
	// Logger receives lifecycle events. Default: discard.
	Logger *slog.Logger
	// Network wires sandboxes whose Spec.Network lets them reach the
	// outside (package network). Nil: only egress none is accepted.
	Network Network

	// Disk enables per-sandbox disk quotas (see DiskPool). When the pool
	// cannot be set up, New logs why and the driver runs without quotas
	// (DiskQuota says so).
	Disk DiskPool
}

// Network connects a sandbox's network namespace to the host and enforces
// its egress policy from the host side.
type Network interface {
	// Apply gives sandbox id, whose init is host process pid, policy n
	// (normalized), replacing what it had; EgressNone removes its link. It
	// returns the sandbox's nameserver, invalid for EgressNone.
	Apply(ctx context.Context, id string, pid int, n runtime.Network) (netip.Addr, error)
	// Release removes the sandbox's link and rules; nothing left is fine.
	Release(ctx context.Context, id string) error
}

// Driver runs sandboxes on this machine. It needs root.
type Driver struct {
	cfg   Config
	log   *slog.Logger
	cg    cgroups
	locks idLocks
	// reapers counts the goroutines that wait for sandbox inits this
	// process started; each ends when its sandbox's init exits.
	reapers sync.WaitGroup
	// disk holds the sandboxes' directories with quotas; nil when quotas
	// are off, and then diskErr says why.
	disk    *diskPool
	diskErr error

	// spareMu guards spare (an init started ahead of the next Create, nil
	// when none is ready), refilling (one is being started) and closed
	// (Close was called: no more spares). refills counts the goroutines
	// that start and renew spares; a spare is renewed after spareAge.
	spareAge  time.Duration
	spareMu   sync.Mutex
	spare     *initProc
	refilling bool
	closed    bool
	refills   sync.WaitGroup
}

var (
	_ runtime.Driver        = (*Driver)(nil)
	_ runtime.NetworkSetter = (*Driver)(nil)
)

// stopTimeout bounds cleanup work done after the caller's context is gone.
const stopTimeout = 30 * time.Second

// New checks cfg, applies defaults and prepares the state directory and
// the parent cgroups.
func New(cfg Config) (*Driver, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("linux runtime: needs root: %w", errdefs.ErrUnavailable)
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("linux runtime: StateDir is required: %w", errdefs.ErrInvalidArgument)
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("linux runtime: StateDir: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	cfg.StateDir = dir
	if cfg.Exe == "" {
		if cfg.Exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("linux runtime: find own executable: %v: %w", err, errdefs.ErrInternal)
		}
	}
	if cfg.Exe, err = filepath.EvalSymlinks(cfg.Exe); err == nil {
		cfg.Exe, err = filepath.Abs(cfg.Exe)
	}
	if err != nil {
		return nil, fmt.Errorf("linux runtime: Exe: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if st, err := os.Stat(cfg.Exe); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("linux runtime: Exe %s is not a regular file: %w", cfg.Exe, errdefs.ErrInvalidArgument)
	}
	if strings.ContainsAny(cfg.StateDir, ",:\\\n") {
		return nil, fmt.Errorf("linux runtime: StateDir %q: must not contain ',' ':' or '\\': %w", cfg.StateDir, errdefs.ErrInvalidArgument)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "sdbx"
	}
	if p := filepath.Clean(cfg.CgroupParent); filepath.IsAbs(p) || p != cfg.CgroupParent || p == "." || strings.HasPrefix(p, "..") {
		return nil, fmt.Errorf("linux runtime: CgroupParent %q: must be a clean relative path: %w", cfg.CgroupParent, errdefs.ErrInvalidArgument)
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/sys/fs/cgroup"
	}
	cfg.DefaultResources = withDefaults(cfg.DefaultResources, runtime.Resources{CPU: 1, MemoryMB: 1024, PIDs: 512, DiskMB: 2048})
	if err := validateSpec(runtime.Spec{ID: "defaults", Resources: cfg.DefaultResources}); err != nil {
		return nil, fmt.Errorf("linux runtime: DefaultResources: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("linux runtime: create StateDir: %v: %w", err, errdefs.ErrInternal)
	}
	cg, err := newCgroups(cfg.CgroupRoot, cfg.CgroupParent)
	if err != nil {
		return nil, fmt.Errorf("linux runtime: %v: %w", err, errdefs.ErrUnavailable)
	}
	d := &Driver{cfg: cfg, log: log, cg: cg, diskErr: errors.New("no disk pool is configured"), spareAge: spareMaxAge}
	if cfg.Disk.Image != "" {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if d.disk, err = openDiskPool(ctx, cfg.StateDir, cfg.Disk); err != nil {
			d.diskErr = err
			log.Warn("disk quotas are off: resources.diskMb is refused", "err", err)
		} else {
			d.diskErr = nil
			log.Info("disk quotas on", "pool", cfg.Disk.Image)
		}
	}
	return d, nil
}

// DiskQuota implements runtime.DiskQuotas: nil when Resources.DiskMB is
// enforced, else the reason it is not.
func (d *Driver) DiskQuota() error {
	if d.diskErr != nil {
		return fmt.Errorf("disk quotas are not available: %v: %w", d.diskErr, errdefs.ErrUnavailable)
	}
	return nil
}

// Close removes the parent cgroups and releases the disk pool when no
// sandbox is left: the pool is unmounted and the parents deleted (running
// sandboxes keep both for the next server; a later Create makes the
// parents again).
func (d *Driver) Close() error {
	d.closeSpare()
	var errs []error
	switch ids, err := d.List(context.Background()); {
	case err != nil:
		errs = append(errs, err)
	case len(ids) > 0:
		d.log.Info("parent cgroups kept: sandboxes are left", "sandboxes", len(ids))
	default:
		kept, err := d.cg.RemoveParents()
		if len(kept) > 0 {
			d.log.Info("parent cgroups kept: something else lives there", "cgroups", kept)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("linux runtime: close: %w", err))
		}
	}
	if d.disk != nil {
		errs = append(errs, d.disk.close())
	}
	return errors.Join(errs...)
}

// makeDir creates the sandbox's state directory and, when the driver has
// a pool, its data subvolume with its disk quota. It returns an error
// matching fs.ErrExist for an existing one.
func (d *Driver) makeDir(id string, diskMB int64) error {
	l := d.layout(id)
	if err := os.Mkdir(l.dir(), 0o700); err != nil || d.disk == nil {
		return err
	}
	return d.disk.create(l.dir(), dataDir, diskMB)
}

// removeDir removes the sandbox's state directory and everything in it.
func (d *Driver) removeDir(id string) error {
	l := d.layout(id)
	if d.disk != nil {
		if err := d.disk.destroy(l.dir(), dataDir); err != nil {
			return err
		}
	}
	// Overlay work dirs hold mode-000 directories; root removes them all.
	return os.RemoveAll(l.dir())
}

// dataDir is the name of a sandbox's data subvolume in a disk pool.
const dataDir = "data"

func (d *Driver) layout(id string) layout {
	dir := filepath.Join(d.cfg.StateDir, id)
	if d.disk != nil {
		return layout{base: dir, data: filepath.Join(dir, dataDir)}
	}
	return layout{base: dir, data: dir}
}

// Create implements runtime.Driver.
func (d *Driver) Create(ctx context.Context, spec runtime.Spec) (err error) {
	if err := validateSpec(spec); err != nil {
		return err
	}
	if spec.Network, err = d.checkNetwork(spec.Network); err != nil {
		return err
	}
	spec.Resources = withDefaults(spec.Resources, d.cfg.DefaultResources)
	spec.Overlays = slices.Clone(spec.Overlays)
	id := spec.ID
	defer d.locks.lock(id)()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sandbox %s: create: %w", id, kindOf(ctx, err))
	}
	l := d.layout(id)
	if err := d.makeDir(id, spec.Resources.DiskMB); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("sandbox %s: already exists: %w", id, errdefs.ErrConflict)
		}
		return fmt.Errorf("sandbox %s: create state directory: %v: %w", id, err, errdefs.ErrInternal)
	}
	start := time.Now()
	defer func() {
		if err == nil {
			d.log.Debug("sandbox created", "sandbox_id", id, "duration", time.Since(start))
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if derr := d.destroy(cctx, id); derr != nil {
			d.log.Error("clean up after failed create", "sandbox_id", id, "err", derr)
		}
	}()
	// The cgroups are made while the files are: each waits on the kernel.
	cgDone := make(chan error, 1)
	go func() { cgDone <- d.makeCgroups(ctx, id, spec.Resources) }()
	perr := l.prepare(spec)
	if err := <-cgDone; err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("sandbox %s: %v: %w", id, perr, errdefs.ErrInternal)
	}
	return d.start(ctx, id, l, spec)
}

// makeCgroups creates the sandbox's cgroups with res, emptied first.
func (d *Driver) makeCgroups(ctx context.Context, id string, res runtime.Resources) error {
	// A cgroup without a state directory is what a crash between the two
	// left behind: empty it before reuse.
	if err := d.cg.Kill(ctx, id); err != nil {
		return fmt.Errorf("sandbox %s: %w", id, kindOf(ctx, err))
	}
	if err := d.cg.Create(ctx, id, res); err != nil {
		return fmt.Errorf("sandbox %s: %v: %w", id, err, errdefs.ErrInternal)
	}
	return nil
}

// Start implements runtime.Driver.
func (d *Driver) Start(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	defer d.locks.lock(id)()
	l, spec, err := d.sandboxSpec(id)
	if err != nil {
		return err
	}
	if d.running(id) {
		return nil
	}
	// Half-dead leftovers (an agent that lost its socket, a stray
	// process, the old namespace's link) go before the new init starts.
	if err := d.cg.Kill(ctx, id); err != nil {
		return fmt.Errorf("sandbox %s: %w", id, kindOf(ctx, err))
	}
	if err := d.releaseNetwork(ctx, id); err != nil {
		return err
	}
	// The cgroups may be gone (host reboot); Create is idempotent.
	if err := d.cg.Create(ctx, id, spec.Resources); err != nil {
		return fmt.Errorf("sandbox %s: %v: %w", id, err, errdefs.ErrInternal)
	}
	if err := l.prepare(spec); err != nil {
		return fmt.Errorf("sandbox %s: %v: %w", id, err, errdefs.ErrInternal)
	}
	return d.start(ctx, id, l, spec)
}

// Stop implements runtime.Driver.
func (d *Driver) Stop(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	defer d.locks.lock(id)()
	if !d.exists(id) {
		return fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	return d.stop(ctx, id)
}

// stop kills every process of the sandbox and removes its socket.
func (d *Driver) stop(ctx context.Context, id string) error {
	if err := d.cg.Kill(ctx, id); err != nil {
		return fmt.Errorf("sandbox %s: stop: %w", id, kindOf(ctx, err))
	}
	if err := d.releaseNetwork(ctx, id); err != nil {
		return err
	}
	l := d.layout(id)
	for _, f := range []string{l.socket(), l.pidFile()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sandbox %s: stop: %v: %w", id, err, errdefs.ErrInternal)
		}
	}
	return nil
}

// Delete implements runtime.Driver.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	defer d.locks.lock(id)()
	return d.destroy(ctx, id)
}

// destroy kills the sandbox and removes its cgroups and files; whatever is
// already gone is skipped.
func (d *Driver) destroy(ctx context.Context, id string) error {
	if err := d.cg.Kill(ctx, id); err != nil {
		return fmt.Errorf("sandbox %s: delete: %w", id, kindOf(ctx, err))
	}
	if err := d.cg.Remove(ctx, id); err != nil {
		return fmt.Errorf("sandbox %s: delete: %w", id, kindOf(ctx, err))
	}
	if err := d.releaseNetwork(ctx, id); err != nil {
		return err
	}
	if err := d.removeDir(id); err != nil {
		return fmt.Errorf("sandbox %s: delete files: %v: %w", id, err, errdefs.ErrInternal)
	}
	return nil
}

// Status implements runtime.Driver.
func (d *Driver) Status(ctx context.Context, id string) (runtime.State, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if !d.exists(id) {
		return "", fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	if d.running(id) {
		return runtime.StateRunning, nil
	}
	return runtime.StateStopped, nil
}

// exists reports whether anything of the sandbox is left.
func (d *Driver) exists(id string) bool {
	if _, err := os.Stat(d.layout(id).dir()); err == nil {
		return true
	}
	return d.cg.Exists(id)
}

// running reports whether the sandbox has processes and a socket.
func (d *Driver) running(id string) bool {
	procs, err := d.cg.Procs(id)
	if err != nil || len(procs) == 0 {
		return false
	}
	_, err = os.Stat(d.layout(id).socket())
	return err == nil
}

// List implements runtime.Driver.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	dirs, err := listDirs(d.cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %v: %w", err, errdefs.ErrInternal)
	}
	cgs, err := d.cg.List()
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %v: %w", err, errdefs.ErrInternal)
	}
	for _, id := range append(dirs, cgs...) {
		set[id] = true
	}
	ids := keys(set)
	slices.Sort(ids)
	return ids, nil
}

// Dial implements runtime.Driver.
func (d *Driver) Dial(ctx context.Context, id string) (net.Conn, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	// Connect first (the hot path: a running agent accepts at once) and
	// only look at the sandbox's state to explain a failure.
	conn, err := dialUnix(ctx, d.layout(id).socket())
	if err == nil {
		return conn, nil
	}
	st, serr := d.Status(ctx, id)
	if serr != nil {
		return nil, serr
	}
	if st != runtime.StateRunning {
		return nil, fmt.Errorf("sandbox %s: not running: %w", id, errdefs.ErrUnavailable)
	}
	return nil, fmt.Errorf("sandbox %s: connect to agent: %v: %w", id, err, errdefs.ErrUnavailable)
}

// kindOf wraps a failure of cleanup work with the error kind that fits the
// context's state.
func kindOf(ctx context.Context, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%v: %w", err, errdefs.ErrTimeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%v: %w", err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("%v: %w", err, errdefs.ErrInternal)
}

// idLocks serializes the operations on one sandbox id.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks id and returns the unlock function.
func (l *idLocks) lock(id string) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*idLock{}
	}
	e := l.m[id]
	if e == nil {
		e = &idLock{}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}
