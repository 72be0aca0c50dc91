package linux

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/runtime"
)

// cgroups places a sandbox's processes in control groups that limit them
// and lets the driver find, kill and remove them later, also from another
// server process (everything is read back from cgroupfs, nothing is kept in
// memory).
type cgroups interface {
	// Create makes the sandbox's cgroups (an existing one is reused) and
	// writes the limits.
	Create(ctx context.Context, id string, res runtime.Resources) error
	// Add moves a process (all its threads) into the sandbox's cgroups.
	Add(id string, pid int) error
	// SelfMove returns the files a thread writes "0" to in order to move
	// itself (only the calling thread) into the sandbox's cgroups, or nil
	// when processes are moved with Add only. A v1 hierarchy moves the
	// writing thread without the global lock that Add's whole-process
	// move takes, whose RCU grace period costs milliseconds per create.
	SelfMove(id string) []string
	// Procs lists the processes in the sandbox's cgroup; none when the
	// cgroup does not exist.
	Procs(id string) ([]int, error)
	// Exists reports whether any of the sandbox's cgroup directories exist.
	Exists(id string) bool
	// Kill SIGKILLs every process of the sandbox and waits until the
	// cgroup is empty.
	Kill(ctx context.Context, id string) error
	// Remove deletes the sandbox's cgroup directories; missing ones are
	// fine.
	Remove(ctx context.Context, id string) error
	// List returns the ids that have a cgroup directory.
	List() ([]string, error)
	// RemoveParents deletes the parent directories (a missing one is
	// fine). Those still holding a cgroup (EBUSY: a sandbox, or another
	// process's) are kept and returned; Create makes them again.
	RemoveParents() (kept []string, err error)
}

// pollInterval is how often Kill and Remove look again while they wait for
// the kernel to finish tearing processes down.
const pollInterval = 2 * time.Millisecond

// cpuPeriod is the CFS period in microseconds used for CPU quotas.
const cpuPeriod = 100000

// newCgroups picks cgroup v2 when root is a unified hierarchy, v1 otherwise.
// It creates the parent directories.
func newCgroups(root, parent string) (cgroups, error) {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		g := &cgroupV2{dir: filepath.Join(root, parent)}
		return g, g.init(root, parent)
	}
	g := &cgroupV1{}
	return g, g.init(root, parent)
}

// ---- cgroup v1 ----

// cgroupV1 keeps one directory per controller hierarchy.
type cgroupV1 struct {
	// parents maps a controller name to <mount>/<parent>.
	parents map[string]string
}

// v1Required and v1Optional are the controllers the driver uses; a
// missing required one is an error at New.
var (
	v1Required = []string{"memory", "cpu", "pids"}
	v1Optional = []string{"cpuacct", "freezer"}
)

func (g *cgroupV1) init(root, parent string) error {
	g.parents = map[string]string{}
	seen := map[string]bool{} // co-mounted controllers ("cpu,cpuacct") share a directory
	add := func(ctrl string, required bool) error {
		mnt, err := filepath.EvalSymlinks(filepath.Join(root, ctrl))
		if err != nil {
			if required {
				return fmt.Errorf("cgroup v1 controller %s is not mounted under %s: %w", ctrl, root, err)
			}
			return nil
		}
		if seen[mnt] {
			return nil
		}
		seen[mnt] = true
		dir := filepath.Join(mnt, parent)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		g.parents[ctrl] = dir
		return nil
	}
	for _, c := range v1Required {
		if err := add(c, true); err != nil {
			return err
		}
	}
	for _, c := range v1Optional {
		if err := add(c, false); err != nil {
			return err
		}
	}
	return nil
}

func (g *cgroupV1) dir(ctrl, id string) string { return filepath.Join(g.parents[ctrl], id) }

// procsDir is the hierarchy whose cgroup.procs is read: freezer when there
// is one (Kill freezes it), pids otherwise.
func (g *cgroupV1) procsDir(id string) string {
	if _, ok := g.parents["freezer"]; ok {
		return g.dir("freezer", id)
	}
	return g.dir("pids", id)
}

func (g *cgroupV1) Create(ctx context.Context, id string, res runtime.Resources) error {
	mem := strconv.FormatInt(res.MemoryMB<<20, 10)
	quota := strconv.FormatInt(int64(res.CPU*cpuPeriod), 10)
	limits := map[string][][2]string{
		"memory": {{"memory.limit_in_bytes", mem}, {"memory.memsw.limit_in_bytes", mem}},
		"cpu":    {{"cpu.cfs_period_us", strconv.Itoa(cpuPeriod)}, {"cpu.cfs_quota_us", quota}},
		"pids":   {{"pids.max", strconv.FormatInt(res.PIDs, 10)}},
	}
	// Each mkdir in a v1 hierarchy takes milliseconds (the kernel waits for
	// an RCU grace period), so the controllers are done concurrently.
	var wg sync.WaitGroup
	errs := make([]error, 0, len(g.parents))
	var mu sync.Mutex
	for ctrl := range g.parents {
		wg.Go(func() {
			if err := g.create(ctrl, id, limits[ctrl]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (g *cgroupV1) create(ctrl, id string, limits [][2]string) error {
	dir := g.dir(ctrl, id)
	// MkdirAll: the parent is gone when a closed driver removed it.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	for _, kv := range limits {
		err := writeFile(filepath.Join(dir, kv[0]), kv[1])
		if err != nil && kv[0] == "memory.memsw.limit_in_bytes" && errors.Is(err, fs.ErrNotExist) {
			continue // no swap accounting on this kernel
		}
		if err != nil {
			return fmt.Errorf("set cgroup limit %s: %w", kv[0], err)
		}
	}
	return nil
}

func (g *cgroupV1) Add(id string, pid int) error {
	for ctrl := range g.parents {
		if err := writeFile(filepath.Join(g.dir(ctrl, id), "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("move pid %d into %s cgroup: %w", pid, ctrl, err)
		}
	}
	return nil
}

func (g *cgroupV1) SelfMove(id string) []string {
	files := make([]string, 0, len(g.parents))
	for ctrl := range g.parents {
		files = append(files, filepath.Join(g.dir(ctrl, id), "tasks"))
	}
	return files
}

func (g *cgroupV1) Procs(id string) ([]int, error) { return readProcs(g.procsDir(id)) }

func (g *cgroupV1) Exists(id string) bool {
	for ctrl := range g.parents {
		if _, err := os.Stat(g.dir(ctrl, id)); err == nil {
			return true
		}
	}
	return false
}

func (g *cgroupV1) Kill(ctx context.Context, id string) error {
	freezer := ""
	if _, ok := g.parents["freezer"]; ok {
		freezer = filepath.Join(g.dir("freezer", id), "freezer.state")
	}
	// Freezing first stops a fork bomb from outrunning the kill loop and
	// keeps pids from being recycled between reading and killing them.
	frozen := false
	if freezer != "" {
		if err := writeFile(freezer, "FROZEN"); err == nil {
			frozen = true
			waitFrozen(ctx, freezer)
		}
	}
	killAll := func() error {
		procs, err := readProcs(g.procsDir(id))
		if err != nil {
			return err
		}
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	}
	err := killAll()
	if frozen {
		// Killed tasks only die once thawed.
		if terr := writeFile(freezer, "THAWED"); terr != nil && err == nil {
			err = fmt.Errorf("thaw cgroup: %w", terr)
		}
	}
	if err != nil {
		return err
	}
	return waitEmpty(ctx, func() (bool, error) {
		procs, err := readProcs(g.procsDir(id))
		if err != nil || len(procs) == 0 {
			return true, err
		}
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return false, nil
	})
}

func (g *cgroupV1) Remove(ctx context.Context, id string) error {
	var errs []error
	for ctrl := range g.parents {
		errs = append(errs, rmdirCgroup(ctx, g.dir(ctrl, id)))
	}
	return errors.Join(errs...)
}

func (g *cgroupV1) RemoveParents() ([]string, error) {
	dirs := make([]string, 0, len(g.parents))
	for _, dir := range g.parents {
		dirs = append(dirs, dir)
	}
	return rmdirParents(dirs)
}

func (g *cgroupV1) List() ([]string, error) {
	set := map[string]bool{}
	for _, parent := range g.parents {
		ids, err := listDirs(parent)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			set[id] = true
		}
	}
	return keys(set), nil
}

// waitFrozen waits until a v1 freezer reports FROZEN (it passes through
// FREEZING), at most a second: killing works on a half-frozen group too.
func waitFrozen(ctx context.Context, stateFile string) {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b, err := os.ReadFile(stateFile)
		if err != nil || strings.TrimSpace(string(b)) == "FROZEN" {
			return
		}
		time.Sleep(pollInterval)
	}
}

// ---- cgroup v2 ----

// cgroupV2 keeps one directory per sandbox in the unified hierarchy.
type cgroupV2 struct {
	dir          string // <root>/<parent>
	root, parent string // as given to init, to make dir again
}

func (g *cgroupV2) init(root, parent string) error {
	g.root, g.parent = root, parent
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", g.dir, err)
	}
	// Enable the controllers for the children of every level from the
	// root down to the parent.
	rel, err := filepath.Rel(root, g.dir)
	if err != nil {
		return fmt.Errorf("cgroup parent %s: %w", parent, err)
	}
	levels := []string{root}
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		levels = append(levels, filepath.Join(levels[len(levels)-1], part))
	}
	for _, dir := range levels {
		for _, c := range []string{"memory", "cpu", "pids"} {
			if err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+c); err != nil {
				return fmt.Errorf("enable cgroup controller %s in %s: %w", c, dir, err)
			}
		}
	}
	return nil
}

func (g *cgroupV2) path(id string) string { return filepath.Join(g.dir, id) }

func (g *cgroupV2) Create(ctx context.Context, id string, res runtime.Resources) error {
	// The parent is gone when a closed driver removed it.
	if _, err := os.Stat(g.dir); errors.Is(err, fs.ErrNotExist) {
		if err := g.init(g.root, g.parent); err != nil {
			return err
		}
	}
	dir := g.path(id)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	limits := [][2]string{
		{"memory.max", strconv.FormatInt(res.MemoryMB<<20, 10)},
		{"memory.swap.max", "0"},
		{"cpu.max", fmt.Sprintf("%d %d", int64(res.CPU*cpuPeriod), cpuPeriod)},
		{"pids.max", strconv.FormatInt(res.PIDs, 10)},
	}
	for _, kv := range limits {
		err := writeFile(filepath.Join(dir, kv[0]), kv[1])
		if err != nil && kv[0] == "memory.swap.max" && errors.Is(err, fs.ErrNotExist) {
			continue // no swap accounting
		}
		if err != nil {
			return fmt.Errorf("set cgroup limit %s: %w", kv[0], err)
		}
	}
	return nil
}

func (g *cgroupV2) Add(id string, pid int) error {
	if err := writeFile(filepath.Join(g.path(id), "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("move pid %d into cgroup: %w", pid, err)
	}
	return nil
}

// SelfMove is nil: in the unified hierarchy a thread alone can't move
// out of its process's cgroup (threaded mode aside), so Add moves init.
func (g *cgroupV2) SelfMove(string) []string { return nil }

func (g *cgroupV2) Procs(id string) ([]int, error) { return readProcs(g.path(id)) }

func (g *cgroupV2) Exists(id string) bool {
	_, err := os.Stat(g.path(id))
	return err == nil
}

func (g *cgroupV2) Kill(ctx context.Context, id string) error {
	dir := g.path(id)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// cgroup.kill (Linux 5.14) kills the whole subtree atomically; older
	// kernels get the freeze-and-kill loop.
	if err := writeFile(filepath.Join(dir, "cgroup.kill"), "1"); err != nil {
		frozen := writeFile(filepath.Join(dir, "cgroup.freeze"), "1") == nil
		procs, err := readProcs(dir)
		if err != nil {
			return err
		}
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if frozen {
			_ = writeFile(filepath.Join(dir, "cgroup.freeze"), "0")
		}
	}
	return waitEmpty(ctx, func() (bool, error) {
		procs, err := readProcs(dir)
		if err != nil || len(procs) == 0 {
			return true, err
		}
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return false, nil
	})
}

func (g *cgroupV2) Remove(ctx context.Context, id string) error {
	return rmdirCgroup(ctx, g.path(id))
}

func (g *cgroupV2) RemoveParents() ([]string, error) { return rmdirParents([]string{g.dir}) }

func (g *cgroupV2) List() ([]string, error) {
	ids, err := listDirs(g.dir)
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// ---- shared helpers ----

// writeFile writes a cgroup control file (which must exist: no O_CREATE).
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readProcs reads a cgroup.procs file; a missing cgroup has no processes.
func readProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cgroup procs: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// waitEmpty calls check until it reports done or ctx ends.
func waitEmpty(ctx context.Context, check func() (bool, error)) error {
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for sandbox processes to exit: %w", ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// rmdirCgroup removes a cgroup directory, retrying while the kernel still
// counts exiting tasks in it (EBUSY).
func rmdirCgroup(ctx context.Context, dir string) error {
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove cgroup %s: %w (%w)", dir, err, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// rmdirParents removes each of dirs once (no waiting: an EBUSY one holds
// a cgroup that lives on) and returns the busy ones.
func rmdirParents(dirs []string) (kept []string, err error) {
	var errs []error
	for _, dir := range dirs {
		switch err := syscall.Rmdir(dir); {
		case err == nil, errors.Is(err, syscall.ENOENT):
		case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.ENOTEMPTY):
			kept = append(kept, dir)
		default:
			errs = append(errs, fmt.Errorf("remove parent cgroup %s: %w", dir, err))
		}
	}
	return kept, errors.Join(errs...)
}

// listDirs returns the names of the sub-directories of dir that are valid
// sandbox ids.
func listDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && validID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func keys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}
