package template

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// keptXattrs are the extended attributes a layer keeps: the overlay
// markers of an upper dir (an opaque directory, a renamed directory) and
// user attributes. Others (overlay bookkeeping such as origin, security
// labels, capabilities) are dropped.
func keptXattr(name string) bool {
	return name == "trusted.overlay.opaque" || name == "trusted.overlay.redirect" || strings.HasPrefix(name, "user.")
}

// xattrs returns the kept extended attributes of path (not following a
// symlink), sorted by name.
func xattrs(path string) ([][2]string, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || !keptXattr(name) {
			continue
		}
		vs, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, vs)
		if vs > 0 {
			if vs, err = unix.Lgetxattr(path, name, v); err != nil {
				return nil, err
			}
		}
		out = append(out, [2]string{name, string(v[:vs])})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out, nil
}

// hashTree hashes a tree's names, types, modes, owners, contents, link
// targets, device numbers and kept xattrs (not times), so that two trees
// with the same hash make the same layer.
func hashTree(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		var uid, gid uint32
		var rdev uint64
		if st != nil {
			uid, gid, rdev = st.Uid, st.Gid, st.Rdev
		}
		rel := strings.TrimPrefix(path, root)
		fmt.Fprintf(h, "%q %o %d %d", rel, uint32(info.Mode()), uid, gid)
		xa, err := xattrs(path)
		if err != nil {
			return fmt.Errorf("read xattrs of %s: %w", rel, err)
		}
		for _, x := range xa {
			fmt.Fprintf(h, " x%q=%q", x[0], x[1])
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q", link)
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			fh := sha256.New()
			if _, err := io.Copy(fh, f); err != nil {
				return err
			}
			fmt.Fprintf(h, " %x", fh.Sum(nil))
		case info.Mode()&fs.ModeDevice != 0:
			fmt.Fprintf(h, " dev %d", rdev)
		}
		h.Write([]byte{'\n'})
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// copyTree copies the tree at src into the existing directory dst, keeping
// modes, owners, symlinks, FIFOs, whiteouts (character devices 0/0) and
// kept xattrs. Sockets and other devices are left out; hard links become
// separate files.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(path, src)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		mode := info.Mode()
		switch {
		case mode.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil && (rel != "" || !errors.Is(err, fs.ErrExist)) {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFileContent(path, target); err != nil {
				return err
			}
		case mode&fs.ModeNamedPipe != 0:
			if err := unix.Mkfifo(target, 0o600); err != nil {
				return err
			}
		case mode&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0:
			if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
				return err
			}
		default:
			return nil
		}
		return copyMeta(path, target, info)
	})
}

// copyMeta gives target the owner, mode and kept xattrs of path.
func copyMeta(path, target string, info fs.FileInfo) error {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if info.Mode()&fs.ModeSymlink == 0 {
		// After chown, which clears setuid bits.
		if err := unix.Chmod(target, uint32(info.Mode().Perm())|modeBits(info.Mode())); err != nil {
			return err
		}
	}
	xa, err := xattrs(path)
	if err != nil {
		return err
	}
	for _, x := range xa {
		if err := unix.Lsetxattr(target, x[0], []byte(x[1]), 0); err != nil {
			return fmt.Errorf("set %s on %s: %w", x[0], target, err)
		}
	}
	return nil
}

// modeBits returns the setuid, setgid and sticky bits of m as unix bits.
func modeBits(m fs.FileMode) uint32 {
	var b uint32
	if m&fs.ModeSetuid != 0 {
		b |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		b |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		b |= unix.S_ISVTX
	}
	return b
}

func copyFileContent(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// emptyDir reports whether dir has no entries.
func emptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}
