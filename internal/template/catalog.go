package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
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

// Catalog is the set of templates a server offers. It is safe for
// concurrent use.
type Catalog struct {
	baseEtc string
	log     *slog.Logger

	mu        sync.Mutex
	templates []Template
}

// NewCatalog prepares the host base layer under dataDir and returns the
// built-in catalog, with versions read from the binaries that really run
// in the sandboxes.
func NewCatalog(ctx context.Context, dataDir string, log *slog.Logger) (*Catalog, error) {
	c := &Catalog{baseEtc: filepath.Join(dataDir, "base", "etc"), log: log}
	if err := c.prepareEtc(); err != nil {
		return nil, err
	}
	c.templates = c.builtIns(ctx)
	return c, nil
}

// List returns every template, in catalog order.
func (c *Catalog) List() []Template {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Template(nil), c.templates...)
}

// Get returns one template, or an error wrapping errdefs.ErrNotFound.
func (c *Catalog) Get(id string) (Template, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.templates {
		if t.ID == id {
			return t, nil
		}
	}
	return Template{}, fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
}

func (c *Catalog) hostOverlays() []runtime.Overlay {
	return []runtime.Overlay{
		{Target: "/usr", Lower: []string{"/usr"}},
		{Target: "/etc", Lower: []string{c.baseEtc}},
	}
}

func (c *Catalog) builtIns(ctx context.Context) []Template {
	now := time.Now().UTC()
	python := hostVersion(ctx, `Python (\S+)`, "/usr/bin/python3", "--version")
	node := hostVersion(ctx, `v(\S+)`, "/usr/bin/node", "--version")
	status := func(ok bool) string {
		if ok {
			return "ready"
		}
		return "unavailable"
	}
	dataScience := true
	for _, pkg := range []string{"numpy", "pandas", "matplotlib"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/python3/dist-packages", pkg)); err != nil {
			dataScience = false
		}
	}
	env := map[string]string{}
	return []Template{
		{
			ID: "python-3-11", Name: "Python 3.11", Language: "python", Version: python,
			Description:  "CPython 3.11 with the standard library",
			Dependencies: []string{}, DefaultEnv: env, DefaultCwd: "/workspace",
			Status: status(python != ""), BuiltIn: true, CreatedAt: now, Overlays: c.hostOverlays(),
		},
		{
			ID: "nodejs-18", Name: "Node.js 18", Language: "javascript", Version: node,
			Description:  "Node.js with npm (the version field is the Node.js that really runs)",
			Dependencies: []string{}, DefaultEnv: env, DefaultCwd: "/workspace",
			Status: status(node != ""), BuiltIn: true, CreatedAt: now, Overlays: c.hostOverlays(),
		},
		{
			ID: "python-data-science", Name: "Python 3.11 data science", Language: "python", Version: python,
			Description:  "CPython 3.11 with numpy, pandas and matplotlib",
			Dependencies: []string{"numpy", "pandas", "matplotlib"}, DefaultEnv: map[string]string{"MPLBACKEND": "Agg"},
			DefaultCwd: "/workspace", Status: status(python != "" && dataScience), BuiltIn: true,
			CreatedAt: now, Overlays: c.hostOverlays(),
		},
	}
}

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
		"resolv.conf": "# no DNS: sandboxes have loopback-only networking\n",
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

// sameTree reports whether two trees hold the same names, modes, link
// targets and contents.
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
		fmt.Fprintf(h, "%s\x00%o\x00", strings.TrimPrefix(path, root), info.Mode())
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00", link)
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// copyTree copies a file, symlink or directory tree, keeping modes and
// symlinks as they are.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, strings.TrimPrefix(path, src))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return nil // sockets, devices: never part of a sandbox's /etc
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
