package template

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// OCI whiteout names (image-spec "Whiteouts").
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	whiteoutMeta   = ".wh..wh."
)

// extractOptions adapt extractTar to a kind of archive.
type extractOptions struct {
	// rename maps an entry's cleaned name to the name in the layer; false
	// skips the entry. nil keeps names.
	rename func(name string) (string, bool)
	// rootOwned makes every entry owned by root (npm tarballs carry the
	// packer's ids).
	rootOwned bool
	// whiteouts turns OCI whiteouts into overlayfs ones: ".wh.NAME" into a
	// character device 0/0 NAME, ".wh..wh..opq" into the
	// trusted.overlay.opaque xattr of its directory.
	whiteouts bool
}

// extractTar unpacks a tar stream into the directory dir (a new layer).
//
// Every path is resolved with openat2(RESOLVE_IN_ROOT) from a descriptor of
// dir, so that "..", absolute names and symlinks in the archive (even one
// pointing at /etc, then a file under it) can never write outside dir.
// Device nodes other than whiteouts are skipped (sandboxes mount their
// layers nodev), as are xattrs other than user.*.
func extractTar(ctx context.Context, r io.Reader, dir string, opts extractOptions) error {
	rootFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open layer directory: %w", err)
	}
	defer unix.Close(rootFD)
	x := &extractor{root: rootFD, opts: opts, cachedFD: -1}
	defer x.dropCache()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name, ok := cleanEntryName(hdr.Name)
		if !ok {
			continue
		}
		if opts.rename != nil {
			if name, ok = opts.rename(name); !ok {
				continue
			}
		}
		if err := x.entry(hdr, name, tr); err != nil {
			return fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
	}
}

// cleanEntryName makes an archive name relative and clean; "" and "." (the
// root itself) are skipped.
func cleanEntryName(name string) (string, bool) {
	name = path.Clean("/" + name)[1:]
	return name, name != ""
}

type extractor struct {
	root int
	opts extractOptions
	// cachedDir/cachedFD is the last parent directory opened (archives
	// list a directory's entries together). Replacing that directory
	// takes an entry of another parent, which moves the cache first, so
	// the cache never outlives its directory.
	cachedDir string
	cachedFD  int
}

func (x *extractor) dropCache() {
	if x.cachedFD >= 0 {
		unix.Close(x.cachedFD)
	}
	x.cachedFD, x.cachedDir = -1, ""
}

// parent returns an O_PATH descriptor of dir (relative to the root),
// creating missing directories. The caller does not close it.
func (x *extractor) parent(dir string) (int, error) {
	if dir == x.cachedDir && x.cachedFD >= 0 {
		return x.cachedFD, nil
	}
	fd, err := x.mkdirAll(dir, 0)
	if err != nil {
		return -1, err
	}
	x.dropCache()
	x.cachedDir, x.cachedFD = dir, fd
	return fd, nil
}

func (x *extractor) openIn(rel string, flags uint64) (int, error) {
	if rel == "" || rel == "." {
		return unix.Dup(x.root)
	}
	return unix.Openat2(x.root, rel, &unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

// mkdirAll opens dir under the root, creating it and its parents (mode
// 0755) when missing.
func (x *extractor) mkdirAll(dir string, depth int) (int, error) {
	fd, err := x.openIn(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || !errors.Is(err, unix.ENOENT) || depth > 255 {
		return fd, err
	}
	up, name := path.Split(dir)
	pfd, err := x.mkdirAll(strings.TrimSuffix(up, "/"), depth+1)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	fd, err = x.openIn(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("directory %q: %w (a dangling symlink on the way?)", dir, err)
	}
	return fd, nil
}

// entry writes one archive entry at name (relative, clean).
func (x *extractor) entry(hdr *tar.Header, name string, body io.Reader) error {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if x.opts.whiteouts && strings.HasPrefix(base, whiteoutPrefix) {
		pfd, err := x.parent(dir)
		if err != nil {
			return err
		}
		switch {
		case base == whiteoutOpaque:
			return setOpaque(pfd)
		case strings.HasPrefix(base, whiteoutMeta):
			return nil // other AUFS metadata: meaningless to overlayfs
		}
		target := strings.TrimPrefix(base, whiteoutPrefix)
		if err := removeAt(pfd, target); err != nil {
			return err
		}
		return unix.Mknodat(pfd, target, unix.S_IFCHR, 0)
	}
	pfd, err := x.parent(dir)
	if err != nil {
		return err
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
			if !errors.Is(err, unix.EEXIST) {
				return err
			}
			var st unix.Stat_t
			if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err := removeAt(pfd, base); err != nil {
					return err
				}
				if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
					return err
				}
			}
		}
	case tar.TypeReg, tar.TypeRegA:
		if err := removeAt(pfd, base); err != nil {
			return err
		}
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := fdFile(fd, name)
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := removeAt(pfd, base); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		target, ok := cleanEntryName(hdr.Linkname)
		if !ok {
			return fmt.Errorf("hard link to the root")
		}
		if x.opts.rename != nil {
			if target, ok = x.opts.rename(target); !ok {
				return nil
			}
		}
		tfd, err := x.openIn(target, unix.O_PATH|unix.O_NOFOLLOW)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		if err := removeAt(pfd, base); err != nil {
			return err
		}
		return unix.Linkat(tfd, "", pfd, base, unix.AT_EMPTY_PATH)
	case tar.TypeFifo:
		if err := removeAt(pfd, base); err != nil {
			return err
		}
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return err
		}
	default:
		return nil // devices, sockets, GNU extensions: not part of a layer
	}
	return x.meta(pfd, base, hdr, mode)
}

// meta sets owner, mode, times and user xattrs of an entry just written.
func (x *extractor) meta(pfd int, base string, hdr *tar.Header, mode uint32) error {
	uid, gid := hdr.Uid, hdr.Gid
	if x.opts.rootOwned {
		uid, gid = 0, 0
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return err
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !strings.HasPrefix(name, "user.") {
			continue
		}
		fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d", fd), name, []byte(v), 0)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	if !hdr.ModTime.IsZero() {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// setOpaque marks the directory of pfd opaque for overlayfs: the layers
// below it do not show through.
func setOpaque(pfd int) error {
	return unix.Setxattr(fmt.Sprintf("/proc/self/fd/%d", pfd), "trusted.overlay.opaque", []byte("y"), 0)
}

// removeAt removes name in the directory of pfd (a tree, when it is a
// directory); a missing name is not an error.
func removeAt(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := fdFile(fd, name)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return err
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			f.Close()
			return err
		}
	}
	f.Close()
	return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
}

// fdFile wraps a descriptor the caller owns from now on.
func fdFile(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }
