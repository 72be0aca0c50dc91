package linux

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
)

// Lower bounds for explicit resource limits: below them the agent itself
// cannot run.
const (
	minMemoryMB = 32
	minPIDs     = 16
	minDiskMB   = 16
)

// reservedTargets are paths the driver mounts itself; overlays may not
// cover them.
var reservedTargets = []string{"/proc", "/dev", "/sys", "/.sdbx", "/workspace", "/root", "/tmp", "/var/tmp", "/run"}

func validID(id string) bool {
	if id == "" || len(id) > 63 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !validID(id) {
		return fmt.Errorf("sandbox id %q: must be 1-63 characters of [a-z0-9-]: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// validateSpec checks a Spec before anything is created.
func validateSpec(spec runtime.Spec) error {
	if err := checkID(spec.ID); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, o := range spec.Overlays {
		field := fmt.Sprintf("overlays[%d]", i)
		if !path.IsAbs(o.Target) || path.Clean(o.Target) != o.Target {
			return fmt.Errorf("%s.target %q: must be a clean absolute path: %w", field, o.Target, errdefs.ErrInvalidArgument)
		}
		if seen[o.Target] {
			return fmt.Errorf("%s.target %q: mounted twice: %w", field, o.Target, errdefs.ErrInvalidArgument)
		}
		seen[o.Target] = true
		for _, r := range reservedTargets {
			if o.Target == r || strings.HasPrefix(o.Target, r+"/") {
				return fmt.Errorf("%s.target %q: reserved for the runtime: %w", field, o.Target, errdefs.ErrInvalidArgument)
			}
		}
		if len(o.Lower) == 0 {
			return fmt.Errorf("%s.lower: at least one directory is needed: %w", field, errdefs.ErrInvalidArgument)
		}
		for j, l := range o.Lower {
			lf := fmt.Sprintf("%s.lower[%d]", field, j)
			if !filepath.IsAbs(l) || strings.ContainsAny(l, ",:\\\n") {
				return fmt.Errorf("%s %q: must be an absolute path without ',' ':' or '\\': %w", lf, l, errdefs.ErrInvalidArgument)
			}
			st, err := os.Stat(l)
			if err != nil || !st.IsDir() {
				return fmt.Errorf("%s %q: not a directory: %w", lf, l, errdefs.ErrInvalidArgument)
			}
		}
	}
	r := spec.Resources
	switch {
	case r.CPU < 0:
		return fmt.Errorf("resources.cpu %v: must not be negative: %w", r.CPU, errdefs.ErrInvalidArgument)
	case r.MemoryMB < 0 || (r.MemoryMB > 0 && r.MemoryMB < minMemoryMB):
		return fmt.Errorf("resources.memoryMB %d: must be at least %d: %w", r.MemoryMB, minMemoryMB, errdefs.ErrInvalidArgument)
	case r.PIDs < 0 || (r.PIDs > 0 && r.PIDs < minPIDs):
		return fmt.Errorf("resources.pids %d: must be at least %d: %w", r.PIDs, minPIDs, errdefs.ErrInvalidArgument)
	case r.DiskMB < 0 || (r.DiskMB > 0 && r.DiskMB < minDiskMB):
		return fmt.Errorf("resources.diskMB %d: must be at least %d: %w", r.DiskMB, minDiskMB, errdefs.ErrInvalidArgument)
	case r.CPU > 0 && r.CPU*cpuPeriod < 1000:
		return fmt.Errorf("resources.cpu %v: must be at least 0.01: %w", r.CPU, errdefs.ErrInvalidArgument)
	}
	return nil
}

// withDefaults fills zero limits from def.
func withDefaults(r, def runtime.Resources) runtime.Resources {
	if r.CPU == 0 {
		r.CPU = def.CPU
	}
	if r.MemoryMB == 0 {
		r.MemoryMB = def.MemoryMB
	}
	if r.PIDs == 0 {
		r.PIDs = def.PIDs
	}
	if r.DiskMB == 0 {
		r.DiskMB = def.DiskMB
	}
	return r
}

// layout names the files of one sandbox under <StateDir>/<id>:
//
//	spec.json      the Spec (with defaults applied), for Start after a restart
//	rootfs/        mount point of the sandbox's root (inside its mount ns only)
//	agent.sock     the agent's listening socket (host side only)
//	init.pid       host pid of the sandbox's PID 1
//	init.log       stdout and stderr of init and the agent
//	resolv.conf    bound at /etc/resolv.conf (with a network manager)
//
// and, under the data directory (<StateDir>/<id> itself, or with a disk
// pool the subvolume <StateDir>/<id>/data, whose quota they share):
//
//	upper/<n>/     overlay upper dir of Spec.Overlays[n] (the sandbox's writes)
//	work/<n>/      overlay work dir of Spec.Overlays[n]
//	workspace/     bound at /workspace
//	home/          bound at /root
//
// The driver's own files stay out of the quota, so a sandbox that filled
// its disk still starts (the socket is bound anew at each start).
type layout struct {
	base, data string
}

func (l layout) dir() string                { return l.base }
func (l layout) spec() string               { return filepath.Join(l.base, "spec.json") }
func (l layout) rootfs() string             { return filepath.Join(l.base, "rootfs") }
func (l layout) upper(n int) string         { return filepath.Join(l.data, "upper", strconv.Itoa(n)) }
func (l layout) work(n int) string          { return filepath.Join(l.data, "work", strconv.Itoa(n)) }
func (l layout) workspace() string          { return filepath.Join(l.data, "workspace") }
func (l layout) home() string               { return filepath.Join(l.data, "home") }
func (l layout) socket() string             { return filepath.Join(l.base, "agent.sock") }
func (l layout) pidFile() string            { return filepath.Join(l.base, "init.pid") }
func (l layout) logFile() string            { return filepath.Join(l.base, "init.log") }
func (l layout) resolvConf() string         { return filepath.Join(l.base, "resolv.conf") }
func (l layout) overlayDirs(n int) []string { return []string{l.upper(n), l.work(n)} }

// prepare creates the sandbox's directories (existing ones are kept) and
// writes spec.json.
func (l layout) prepare(spec runtime.Spec) error {
	dirs := []string{l.rootfs(), l.workspace(), l.home()}
	for i := range spec.Overlays {
		dirs = append(dirs, l.overlayDirs(i)...)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create sandbox directory: %w", err)
		}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	tmp := l.spec() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	if err := os.Rename(tmp, l.spec()); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	return nil
}

// sandboxSpec reads the spec of sandbox id (under its lock) and returns
// it with the sandbox's layout: errdefs.ErrNotFound for an unknown id.
func (d *Driver) sandboxSpec(id string) (layout, runtime.Spec, error) {
	l := d.layout(id)
	spec, err := l.loadSpec()
	if errors.Is(err, fs.ErrNotExist) {
		return l, spec, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return l, spec, fmt.Errorf("sandbox %s: %v: %w", id, err, errdefs.ErrInternal)
	}
	return l, spec, nil
}

// loadSpec reads spec.json back.
func (l layout) loadSpec() (runtime.Spec, error) {
	var spec runtime.Spec
	b, err := os.ReadFile(l.spec())
	if err != nil {
		return spec, err
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return spec, fmt.Errorf("decode %s: %w", l.spec(), err)
	}
	return spec, nil
}
