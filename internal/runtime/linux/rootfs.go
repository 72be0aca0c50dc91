package linux

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// procMasked are /proc files that leak host kernel state or act on the
// host; /dev/null is bound over each (missing ones are skipped).
var procMasked = []string{
	"/proc/kcore", "/proc/keys", "/proc/key-users", "/proc/timer_list",
	"/proc/sched_debug", "/proc/sysrq-trigger", "/proc/kallsyms",
	"/proc/latency_stats", "/proc/kmsg", "/proc/config.gz",
	"/proc/vmallocinfo", "/proc/pagetypeinfo", "/proc/slabinfo",
	"/proc/buddyinfo", "/proc/zoneinfo", "/proc/iomem", "/proc/ioports",
	"/proc/kpagecount", "/proc/kpageflags", "/proc/kpagecgroup",
}

// procReadOnly are /proc directories bound read-only: a uid 0 process
// without capabilities could otherwise still write the root-owned files
// in them (kernel.* sysctls are global).
var procReadOnly = []string{"/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs"}

// procEmptied are /proc directories hidden under an empty read-only tmpfs.
var procEmptied = []string{"/proc/acpi", "/proc/scsi"}

// devices are the character devices created in /dev.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// devLinks are the symlinks created in /dev.
var devLinks = [][2]string{
	{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	{"pts/ptmx", "ptmx"},
}

// mergedUsr are the top-level links of a merged-/usr system, created when
// /usr is an overlay on a tmpfs root.
var mergedUsr = []string{"bin", "sbin", "lib", "lib64", "lib32", "libx32"}

// root builds the sandbox's file system tree under a host directory.
//
// Every path inside the sandbox is resolved with openat2(RESOLVE_IN_ROOT)
// from a descriptor of the root, so symlinks that the sandbox left in its
// persistent upper dirs (say /tmp -> /etc, with an overlay at "/") resolve
// inside the sandbox and can never send a mount onto the host's tree.
// Mounts then target /proc/self/fd/N of the opened directory.
type root struct {
	fd int // the root mount
}

// buildRoot mounts the sandbox's whole tree at cfg.Rootfs, inside this
// process's private mount namespace.
func buildRoot(cfg *initConfig) error {
	// Nothing mounted from here on may propagate back to the host (and
	// pivot_root refuses shared mounts).
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	tmpOpts := fmt.Sprintf("size=%dm", cfg.TmpMB)
	var rootOverlay *overlayMount
	for i := range cfg.Overlays {
		if cfg.Overlays[i].Target == "/" {
			rootOverlay = &cfg.Overlays[i]
		}
	}
	if rootOverlay != nil {
		if err := unix.Mount("overlay", cfg.Rootfs, "overlay", unix.MS_NOSUID|unix.MS_NODEV, overlayData(rootOverlay)); err != nil {
			return fmt.Errorf("mount overlay at /: %w", err)
		}
	} else {
		if err := unix.Mount("tmpfs", cfg.Rootfs, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,"+tmpOpts); err != nil {
			return fmt.Errorf("mount root tmpfs: %w", err)
		}
	}
	fd, err := unix.Open(cfg.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root: %w", err)
	}
	r := &root{fd: fd}
	defer unix.Close(fd)

	usrOverlay := false
	for i := range cfg.Overlays {
		o := &cfg.Overlays[i]
		if o.Target == "/" {
			continue
		}
		usrOverlay = usrOverlay || o.Target == "/usr"
		if err := r.mountDir("overlay", o.Target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, overlayData(o)); err != nil {
			return err
		}
	}
	if usrOverlay && rootOverlay == nil {
		if err := r.mergedUsrLinks(cfg); err != nil {
			return err
		}
	}
	binds := []struct{ src, dst string }{{cfg.Workspace, workspacePath}, {cfg.Home, "/root"}}
	for _, b := range binds {
		if err := r.bind(b.src, b.dst, true, true, false, unix.MS_NOSUID|unix.MS_NODEV); err != nil {
			return err
		}
	}
	tmpfs := []struct {
		dst, opts string
		flags     uintptr
	}{
		{"/tmp", "mode=1777," + tmpOpts, unix.MS_NOSUID | unix.MS_NODEV},
		{"/var/tmp", "mode=1777," + tmpOpts, unix.MS_NOSUID | unix.MS_NODEV},
		{"/run", "mode=755,size=16m", unix.MS_NOSUID | unix.MS_NODEV},
	}
	for _, m := range tmpfs {
		if err := r.mountDir("tmpfs", m.dst, "tmpfs", m.flags, m.opts); err != nil {
			return err
		}
	}
	if err := r.buildDev(tmpOpts); err != nil {
		return err
	}
	if err := r.buildProc(); err != nil {
		return err
	}
	if err := r.bind(cfg.Exe, agentPath, false, true, true, unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return err
	}
	if cfg.ResolvConf != "" {
		// A template whose /etc/resolv.conf can't be bound (a dangling
		// symlink) still starts; only names don't resolve in it.
		if err := r.bind(cfg.ResolvConf, "/etc/resolv.conf", false, true, true, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
			fmt.Fprintf(os.Stderr, "sdbx init: resolv.conf: %v\n", err)
		}
	}
	return nil
}

// overlayData is the mount data of one overlay. Paths were checked by the
// driver to hold no ',' or ':'.
func overlayData(o *overlayMount) string {
	return fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(o.Lower, ":"), o.Upper, o.Work)
}

// buildDev mounts a minimal /dev: a few character devices, a private
// devpts instance and /dev/shm.
func (r *root) buildDev(tmpOpts string) error {
	if err := r.mountDir("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return err
	}
	dev, err := r.open("/dev", false, true)
	if err != nil {
		return err
	}
	defer unix.Close(dev)
	for _, d := range devices {
		if err := unix.Mknodat(dev, d.name, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", d.name, err)
		}
	}
	for _, l := range devLinks {
		if err := unix.Symlinkat(l[0], dev, l[1]); err != nil {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	if err := r.mountDir("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	return r.mountDir("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,"+tmpOpts)
}

// buildProc mounts a proc of the sandbox's pid namespace and masks the
// parts that reach the host kernel.
func (r *root) buildProc() error {
	if err := r.mountDir("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	for _, p := range procMasked {
		err := r.bind("/dev/null", p, false, false, false, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return err
		}
	}
	for _, p := range procReadOnly {
		err := r.bind("", p, true, false, true, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return err
		}
	}
	for _, p := range procEmptied {
		fd, err := r.open(p, false, true)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return err
		}
		err = mountFD("tmpfs", fd, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("mount tmpfs over %s: %w", p, err)
		}
	}
	return nil
}

// mergedUsrLinks creates /bin -> usr/bin etc. on the tmpfs root, for the
// directories that exist in the /usr overlay's layers.
func (r *root) mergedUsrLinks(cfg *initConfig) error {
	var lowers []string
	for _, o := range cfg.Overlays {
		if o.Target == "/usr" {
			lowers = o.Lower
		}
	}
	for _, name := range mergedUsr {
		found := false
		for _, l := range lowers {
			if _, err := os.Stat(filepath.Join(l, name)); err == nil {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		if err := unix.Symlinkat("usr/"+name, r.fd, name); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /%s: %w", name, err)
		}
	}
	return nil
}

// open resolves p (absolute, inside the sandbox) under the root and returns
// an O_PATH descriptor of it. With create, missing directories are made
// (and a missing last component is made as a directory, or as an empty
// file when dir is false).
func (r *root) open(p string, create, dir bool) (int, error) {
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" {
		return unix.Dup(r.fd)
	}
	how := func(d bool) *unix.OpenHow {
		flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
		if d {
			flags |= unix.O_DIRECTORY
		}
		return &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	}
	fd, err := unix.Openat2(r.fd, rel, how(dir))
	if err == nil || !create || !errors.Is(err, unix.ENOENT) {
		if err != nil {
			return -1, fmt.Errorf("open %s in sandbox root: %w", p, err)
		}
		return fd, nil
	}
	parentPath, name := path.Split(rel)
	parent, err := r.open("/"+parentPath, true, true)
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	// parent is an O_PATH descriptor; *at calls on it accept it.
	if dir {
		err = unix.Mkdirat(parent, name, 0o755)
	} else {
		var f int
		f, err = unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(f)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create %s in sandbox root: %w", p, err)
	}
	fd, err = unix.Openat2(r.fd, rel, how(dir))
	if err != nil {
		return -1, fmt.Errorf("open %s in sandbox root: %w", p, err)
	}
	return fd, nil
}

// mountFD mounts onto the file or directory that fd refers to.
func mountFD(source string, fd int, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, fmt.Sprintf("/proc/self/fd/%d", fd), fstype, flags, data)
}

// mountDir mounts a file system on directory p inside the root, creating p.
func (r *root) mountDir(source, p, fstype string, flags uintptr, data string) error {
	fd, err := r.open(p, true, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := mountFD(source, fd, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s at %s: %w", fstype, p, err)
	}
	return nil
}

// bind binds src onto dst inside the root and then, when ro or flags ask
// for it, remounts the new mount read-only and/or with flags. src is a
// host path, or "" to bind dst onto itself (used to make parts of /proc
// read-only). dir says whether dst is a directory or a file; with create a
// missing dst is made.
func (r *root) bind(src, dst string, dir, create, ro bool, flags uintptr) error {
	if src == "" {
		fd, err := r.open(dst, false, dir)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		src = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	fd, err := r.open(dst, create, dir)
	if err != nil {
		return err
	}
	err = mountFD(src, fd, "", unix.MS_BIND|unix.MS_REC, "")
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("bind mount at %s: %w", dst, err)
	}
	if ro {
		flags |= unix.MS_RDONLY
	}
	if flags == 0 {
		return nil
	}
	// A bind mount's flags only change with a remount of the new mount,
	// which the path resolves to now.
	fd, err = r.open(dst, false, dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := mountFD("", fd, "", unix.MS_BIND|unix.MS_REMOUNT|flags, ""); err != nil {
		return fmt.Errorf("remount %s: %w", dst, err)
	}
	return nil
}
