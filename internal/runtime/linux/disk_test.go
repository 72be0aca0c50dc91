package linux

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// newDiskEnv is newTestEnv with a 1 GiB disk pool, unmounted at the end.
func newDiskEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := newTestEnv(t, append(opts, withDiskPool)...)
	if err := e.d.DiskQuota(); err != nil {
		t.Fatalf("DiskQuota: %v (is btrfs-progs installed?)", err)
	}
	return e
}

// withDiskPool gives the test driver a disk pool in the test's data dir,
// checked to be unmounted at the end.
func withDiskPool(t testing.TB, data string, cfg *Config) func(*Driver) {
	cfg.Disk = DiskPool{Image: filepath.Join(data, "sandboxes.img"), SizeMB: 1024}
	stateDir := cfg.StateDir
	return func(d *Driver) {
		// removeAll has closed d.
		if isBtrfsMount(stateDir) {
			t.Errorf("the disk pool is still mounted after Close with no sandbox left")
			unix.Unmount(stateDir, unix.MNT_DETACH)
		}
	}
}

// allocated is how many bytes of the host's disk a file takes.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// qgroups lists the qgroups ("0_257", ...) of the btrfs at dir, but the
// top level's.
func qgroups(t *testing.T, dir string) []string {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var info [1024]byte // struct btrfs_ioctl_fs_info_args; fsid at offset 16
	if err := ioctlPtr(fd, 0x8400941f, unsafe.Pointer(&info)); err != nil {
		t.Fatalf("BTRFS_IOC_FS_INFO: %v", err)
	}
	u := info[16:32]
	fsid := strings.Join([]string{hexs(u[0:4]), hexs(u[4:6]), hexs(u[6:8]), hexs(u[8:10]), hexs(u[10:16])}, "-")
	entries, err := os.ReadDir(filepath.Join("/sys/fs/btrfs", fsid, "qgroups"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "0_") && e.Name() != "0_5" {
			out = append(out, e.Name())
		}
	}
	return out
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func TestDiskQuota(t *testing.T) {
	e := newDiskEnv(t)
	ctx := t.Context()
	img := e.d.cfg.Disk.Image
	small := e.create(t, "disk", func(s *runtime.Spec) { s.Resources.DiskMB = 64 })
	other := e.create(t, "disko", nil)
	before := allocated(t, img)

	// A disk fill stops at the quota, in /workspace and in the overlays.
	for _, path := range []string{"/workspace/big", "/usr/local/big", "/root/big"} {
		code, out := sh(t, e.d, small, "dd if=/dev/zero of="+path+" bs=1M count=200 2>&1; rc=$?; sync; rm -f "+path+"; exit $rc")
		if code == 0 || !strings.Contains(out, "Disk quota exceeded") {
			t.Errorf("dd of 200 MiB to %s with a 64 MiB quota: exit %d, %q", path, code, out)
		}
	}
	if grew := allocated(t, img) - before; grew > 100<<20 {
		t.Errorf("the host disk gave the pool %d MiB for a 64 MiB quota", grew>>20)
	}
	// The sandbox still answers, the other one still writes, and the
	// first one's deleted file freed its quota.
	runtimetest.MustExec(t, e.d, small, "true")
	runtimetest.MustExec(t, e.d, other, "dd", "if=/dev/zero", "of=/workspace/f", "bs=1M", "count=100")
	runtimetest.MustExec(t, e.d, small, "dd", "if=/dev/zero", "of=/workspace/f", "bs=1M", "count=40")

	// A restarted server finds the pool mounted and the quota kept.
	d2, err := New(e.d.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := d2.DiskQuota(); err != nil {
		t.Fatalf("DiskQuota after restart: %v", err)
	}
	// Filled to the brim (the file is kept), it still stops and starts.
	if code, out := sh(t, d2, small, "dd if=/dev/zero of=/workspace/g bs=1M count=100 2>&1"); code == 0 || !strings.Contains(out, "Disk quota exceeded") {
		t.Errorf("after a restart, dd past the quota: exit %d, %q", code, out)
	}
	if err := d2.Stop(ctx, small); err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(ctx, small); err != nil {
		t.Fatalf("Start with a full disk quota: %v", err)
	}
	if code, out := sh(t, d2, small, "dd if=/dev/zero of=/workspace/h bs=1M count=4 2>&1"); code == 0 || !strings.Contains(out, "Disk quota exceeded") {
		t.Errorf("a write to the full sandbox after Start: exit %d, %q", code, out)
	}
	if err := d2.Close(); err != nil { // sandboxes are left: stays mounted
		t.Fatal(err)
	}
	if !isBtrfsMount(e.d.cfg.StateDir) {
		t.Fatal("Close unmounted the pool under running sandboxes")
	}

	// Delete removes the subvolumes; btrfs then drops their qgroups.
	if n := len(qgroups(t, e.d.cfg.StateDir)); n != 2 {
		t.Errorf("%d qgroups for 2 sandboxes", n)
	}
	for _, id := range []string{small, other} {
		if err := d2.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	d2.reapers.Wait()
	waitNoQgroups(t, e.d.cfg.StateDir)
}

// waitNoQgroups waits until btrfs has dropped the qgroups of the deleted
// subvolumes under dir.
func waitNoQgroups(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(qgroups(t, dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("qgroups left a minute after delete: %v", qgroups(t, dir))
		}
		// BTRFS_IOC_SYNC commits and wakes the cleaner, which drops
		// deleted subvolumes (else it runs every 30 s).
		if fd, err := unix.Open(dir, unix.O_RDONLY, 0); err == nil {
			ioctlPtr(fd, 0x9408, nil)
			unix.Close(fd)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Without a usable pool the driver still works, and says why quotas are
// off.
func TestDiskQuotaUnavailable(t *testing.T) {
	e := newTestEnv(t)
	if err := e.d.DiskQuota(); err == nil {
		t.Fatal("DiskQuota = nil for a driver without a pool")
	}
	// A state dir holding sandboxes from before the pool is not hidden
	// under a mount.
	cfg := e.d.cfg
	id := e.create(t, "nopool", nil)
	cfg.Disk = DiskPool{Image: filepath.Join(e.data, "sandboxes.img"), SizeMB: 1024}
	d2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.DiskQuota(); err == nil || !strings.Contains(err.Error(), "made without the disk pool") {
		t.Errorf("DiskQuota = %v", err)
	}
	if isBtrfsMount(cfg.StateDir) {
		t.Fatal("the pool was mounted over existing sandboxes")
	}
	runtimetest.MustExec(t, d2, id, "true")
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
}
