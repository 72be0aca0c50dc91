package linux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DiskPool configures per-sandbox disk quotas.
//
// Every file a sandbox writes on the host (its overlay upper dirs,
// /workspace, /root) lives in its state directory. With a pool, the
// StateDir is a btrfs file system held in a sparse image file and
// loop-mounted there; the data of each sandbox (<id>/data: upper dirs,
// workspace, home) is a btrfs subvolume whose qgroup has a hard limit of
// Resources.DiskMB, so writes past it fail with EDQUOT ("Disk quota
// exceeded") and the host's disk only ever gives the image its size. This kernel has no XFS or ext4 quota support
// (CONFIG_XFS_QUOTA, CONFIG_QFMT_V2 unset), hence btrfs qgroups.
type DiskPool struct {
	// Image is the sparse image file; "" turns quotas off. It is made
	// (mkfs.btrfs) when missing and mounted at StateDir unless StateDir
	// already is a btrfs mount (a restarted server finds it so).
	Image string
	// SizeMB is the image's size when it is made. 0 = half the free
	// space of the file system that holds Image, between 1 GiB and
	// 256 GiB. An existing image keeps its size.
	SizeMB int64
}

// btrfs ioctls (linux/btrfs.h) and the file system's magic number.
const (
	btrfsMagic           = 0x9123683e
	btrfsIocSubvolCreate = 0x5000940e // _IOW(0x94, 14, struct btrfs_ioctl_vol_args)
	btrfsIocSnapDestroy  = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	btrfsIocQuotaCtl     = 0xc0109428 // _IOWR(0x94, 40, struct btrfs_ioctl_quota_ctl_args)
	btrfsIocQgroupLimit  = 0x8030942b // _IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args)

	btrfsQuotaCtlEnable       = 1
	btrfsQuotaCtlEnableSimple = 4 // simple quotas (kernel 6.7+): cheap accounting by extent owner

	btrfsLimitMaxRfer = 1 << 0
	btrfsLimitMaxExcl = 1 << 1

	// btrfsSubvolIno is the inode number of every subvolume's root.
	btrfsSubvolIno = 256
)

// btrfsVolArgs is struct btrfs_ioctl_vol_args.
type btrfsVolArgs struct {
	fd   int64
	name [4088]byte
}

// btrfsQgroupLimitArgs is struct btrfs_ioctl_qgroup_limit_args.
type btrfsQgroupLimitArgs struct {
	qgroupID uint64
	flags    uint64
	maxRfer  uint64
	maxExcl  uint64
	rsvRfer  uint64
	rsvExcl  uint64
}

// btrfsQuotaCtlArgs is struct btrfs_ioctl_quota_ctl_args.
type btrfsQuotaCtlArgs struct {
	cmd    uint64
	status uint64
}

// diskPool is an open pool: StateDir on btrfs with quotas enabled.
type diskPool struct {
	dir   string // StateDir
	image string
}

// openDiskPool makes and mounts the pool's image when needed and enables
// quotas. On error nothing was mounted.
func openDiskPool(ctx context.Context, dir string, cfg DiskPool) (*diskPool, error) {
	p := &diskPool{dir: dir, image: cfg.Image}
	if !isBtrfsMount(dir) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read state dir: %w", err)
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("the state dir holds %d sandbox(es) made without the disk pool; quotas start once it is empty", len(entries))
		}
		if _, err := os.Stat(cfg.Image); errors.Is(err, fs.ErrNotExist) {
			if err := makeImage(ctx, cfg); err != nil {
				return nil, err
			}
		}
		if out, err := exec.CommandContext(ctx, "mount", "-t", "btrfs", "-o", "loop", cfg.Image, dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mount %s: %v: %s", cfg.Image, err, strings.TrimSpace(string(out)))
		}
	}
	if err := p.enableQuota(); err != nil {
		p.unmount()
		return nil, err
	}
	// The image's root directory is 0755; the state dir stays private.
	if err := os.Chmod(dir, 0o700); err != nil {
		p.unmount()
		return nil, fmt.Errorf("chmod state dir: %w", err)
	}
	return p, nil
}

// makeImage creates a sparse image file holding an empty btrfs, under a
// temporary name first so a crash never leaves a half-made image.
func makeImage(ctx context.Context, cfg DiskPool) error {
	size := cfg.SizeMB << 20
	if size == 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Dir(cfg.Image), &st); err != nil {
			return fmt.Errorf("statfs %s: %w", filepath.Dir(cfg.Image), err)
		}
		size = min(max(int64(st.Bavail)*st.Bsize/2, 1<<30), 256<<30)
	}
	tmp := cfg.Image + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create disk image: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var out []byte
		if out, err = exec.CommandContext(ctx, "mkfs.btrfs", "-q", tmp).CombinedOutput(); err != nil {
			err = fmt.Errorf("mkfs.btrfs (Debian package btrfs-progs): %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if err == nil {
		err = os.Rename(tmp, cfg.Image)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("make disk image: %w", err)
	}
	return nil
}

// isBtrfsMount reports whether dir is the root of a mounted btrfs.
func isBtrfsMount(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil || st.Type != btrfsMagic {
		return false
	}
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

func (p *diskPool) enableQuota() error {
	fd, err := unix.Open(p.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open state dir: %w", err)
	}
	defer unix.Close(fd)
	// Enabling an enabled quota is a no-op; simple quotas need a newer
	// kernel, full qgroups work everywhere.
	var errs []error
	for _, cmd := range []uint64{btrfsQuotaCtlEnableSimple, btrfsQuotaCtlEnable} {
		args := btrfsQuotaCtlArgs{cmd: cmd}
		err := ioctlPtr(fd, btrfsIocQuotaCtl, unsafe.Pointer(&args))
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("enable btrfs quotas: %w", errors.Join(errs...))
}

// create makes parent/name a subvolume limited to mb MiB.
func (p *diskPool) create(parent, name string, mb int64) error {
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open sandbox dir: %w", err)
	}
	defer unix.Close(pfd)
	var args btrfsVolArgs
	copy(args.name[:], name)
	if err := ioctlPtr(pfd, btrfsIocSubvolCreate, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("create subvolume: %w", err)
	}
	err = p.limit(pfd, name, mb)
	if err == nil {
		err = unix.Fchmodat(pfd, name, 0o700, 0)
	}
	if err != nil {
		p.destroy(parent, name)
		return err
	}
	return nil
}

// limit sets the hard limit of subvolume name's qgroup.
func (p *diskPool) limit(parent int, name string, mb int64) error {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open subvolume: %w", err)
	}
	defer unix.Close(fd)
	// qgroup id 0 means the subvolume fd is in.
	bytes := uint64(mb) << 20
	args := btrfsQgroupLimitArgs{flags: btrfsLimitMaxRfer | btrfsLimitMaxExcl, maxRfer: bytes, maxExcl: bytes}
	if err := ioctlPtr(fd, btrfsIocQgroupLimit, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("set disk quota: %w", err)
	}
	return nil
}

// destroy deletes subvolume parent/name whole (btrfs drops its qgroup
// once its cleaner has dropped the subvolume). A missing one, or a plain
// directory there, is left to the caller.
func (p *diskPool) destroy(parent, name string) error {
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(parent, name), &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Ino != btrfsSubvolIno || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var args btrfsVolArgs
	copy(args.name[:], name)
	if err := ioctlPtr(pfd, btrfsIocSnapDestroy, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("delete subvolume: %w", err)
	}
	return nil
}

// close unmounts the pool when no sandbox is left in it and it is the
// loop mount of this pool's image; with sandboxes left it stays mounted
// for the next server (a second mount of the same image would corrupt it).
func (p *diskPool) close() error {
	entries, err := os.ReadDir(p.dir)
	if err != nil || len(entries) > 0 || !p.ownsMount() {
		return err
	}
	return p.unmount()
}

func (p *diskPool) unmount() error {
	if err := unix.Unmount(p.dir, 0); err != nil {
		return fmt.Errorf("unmount disk pool: %w", err)
	}
	return nil
}

// ownsMount reports whether the mount at the state dir is a loop device
// backed by the pool's image.
func (p *diskPool) ownsMount() bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	img, err := filepath.EvalSymlinks(p.image)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts... - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[4] != p.dir {
			continue
		}
		i := slices.Index(fields, "-")
		if i < 0 || i+2 >= len(fields) || !strings.HasPrefix(fields[i+2], "/dev/loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(fields[i+2]), "loop", "backing_file"))
		if err == nil && strings.TrimSpace(string(b)) == img {
			return true
		}
	}
	return false
}

// ioctlPtr is ioctl(2) with a pointer argument.
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}
