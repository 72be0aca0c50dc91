package template

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// hostEtc lists what of the host's /etc a sandbox sees (an allow-list: host
// secrets such as shadow, ssh keys or package-manager credentials never
// enter a sandbox).
var hostEtc = []string{
	"alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf",
	"debian_version", "environment", "fonts", "gai.conf", "group", "host.conf",
	"inputrc", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
	"login.defs", "magic", "magic.mime", "matplotlibrc", "mime.types",
	"networks", "nsswitch.conf", "os-release", "passwd", "profile",
	"protocols", "python3", "python3.11", "services", "shells", "ssl",
	"terminfo", "timezone", "xdg",
}

// skeletonDirs are the empty directories of the root skeleton (the usual
// places an install writes to outside /usr and /etc).
var skeletonDirs = []string{"opt", "srv", "mnt", "home", "media", "var/lib", "var/cache", "var/log"}

// mergedUsr are the top-level links of a merged-/usr system.
var mergedUsr = []string{"bin", "sbin", "lib", "lib64", "lib32", "libx32"}

// hostVersion runs a host binary and extracts its version with pattern;
// "" when the binary is missing or says something else.
func hostVersion(ctx context.Context, pattern string, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	m := regexp.MustCompile(pattern).FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// prepareEtc (re)builds the sandbox's /etc lower layer from the allow-list.
// It is rebuilt on every start into a fresh directory and swapped in, so a
// host change (new package, new CA) reaches new sandboxes.
func (c *Catalog) prepareEtc() error {
	tmp := c.baseEtc + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("prepare base etc: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("prepare base etc: %w", err)
	}
	for _, name := range hostEtc {
		src := filepath.Join("/etc", name)
		if _, err := os.Lstat(src); err != nil {
			continue
		}
		if err := copyTree(src, filepath.Join(tmp, name)); err != nil {
			return fmt.Errorf("prepare base etc: %w", err)
		}
	}
	files := map[string]string{
		"hostname":    "sandbox\n",
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"resolv.conf": "# the runtime binds each sandbox's own resolv.conf here (egress none: no DNS)\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("prepare base etc: %w", err)
		}
	}
	// Overlay lower dirs may be in use by running sandboxes: an unchanged
	// copy is kept as it is, a changed one is moved aside, never removed.
	if same, err := sameTree(tmp, c.baseEtc); err == nil && same {
		return os.RemoveAll(tmp)
	}
	if _, err := os.Stat(c.baseEtc); err == nil {
		old := fmt.Sprintf("%s.old-%d", c.baseEtc, time.Now().UnixNano())
		if err := os.Rename(c.baseEtc, old); err != nil {
			return fmt.Errorf("prepare base etc: %w", err)
		}
		c.log.Debug("kept previous base etc for running sandboxes", "path", old)
	}
	if err := os.Rename(tmp, c.baseEtc); err != nil {
		return fmt.Errorf("prepare base etc: %w", err)
	}
	return nil
}

// sameTree reports whether two trees hold the same names, modes, owners,
// link targets and contents.
func sameTree(a, b string) (bool, error) {
	ha, err := hashTree(a)
	if err != nil {
		return false, err
	}
	hb, err := hashTree(b)
	if err != nil {
		return false, err
	}
	return ha == hb, nil
}

// prepareSkeleton makes the layer put under the root overlay of a
// host-based build (and of the templates it makes): the merged-/usr links
// (/bin -> usr/bin, ...) that the driver would otherwise create on a
// tmpfs root, and a few empty directories (/opt, /var/lib, ...). It
// returns its digest.
func (c *Catalog) prepareSkeleton() (string, error) {
	tmp, err := c.layers.tempDir()
	if err != nil {
		return "", fmt.Errorf("prepare root skeleton: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, name := range mergedUsr {
		if _, err := os.Stat(filepath.Join("/usr", name)); err != nil {
			continue
		}
		if err := os.Symlink("usr/"+name, filepath.Join(tmp, name)); err != nil {
			return "", fmt.Errorf("prepare root skeleton: %w", err)
		}
	}
	for _, d := range skeletonDirs {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return "", fmt.Errorf("prepare root skeleton: %w", err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("prepare root skeleton: %w", err)
	}
	digest, _, err := c.layers.commit(tmp)
	return digest, err
}
