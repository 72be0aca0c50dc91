package template

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// layerStore keeps the layer directories: <dir>/<hex>, named by the sha256
// of their content (or of their source, for layers whose source is itself
// content-addressed: an OCI diff id, an npm tarball). A directory with a
// hex name is complete: layers are filled under a temporary name and
// renamed into place, so a crash never leaves a half-filled layer that
// looks complete.
type layerStore struct {
	dir    string
	flight singleflight.Group
}

// tmpPrefix starts the names of layers being filled: ".tmp-<pid>-<rand>".
const tmpPrefix = ".tmp-"

func newLayerStore(dir string) (*layerStore, error) {
	if strings.ContainsAny(dir, ",:\\\n") {
		return nil, fmt.Errorf("layer directory %q: must not contain ',' ':' or '\\' (overlay mount options)", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create layer directory: %w", err)
	}
	return &layerStore{dir: dir}, nil
}

// hexOf returns the hex part of "sha256:<hex>", or "" when digest is not
// one.
func hexOf(digest string) string {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return ""
	}
	if _, err := hex.DecodeString(h); err != nil {
		return ""
	}
	return h
}

// path returns the directory of a layer ("" for a malformed digest).
func (s *layerStore) path(digest string) string {
	h := hexOf(digest)
	if h == "" {
		return ""
	}
	return filepath.Join(s.dir, h)
}

// has reports whether the layer is complete on disk.
func (s *layerStore) has(digest string) bool {
	p := s.path(digest)
	if p == "" {
		return false
	}
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// tempDir makes a new empty directory to fill a layer in.
func (s *layerStore) tempDir() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	p := filepath.Join(s.dir, tmpPrefix+strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(b[:]))
	if err := os.Mkdir(p, 0o755); err != nil {
		return "", err
	}
	return p, nil
}

// ensure makes sure the layer digest exists, filling it with fill (into
// an empty directory) when it does not. Concurrent calls for one digest
// fill it once.
func (s *layerStore) ensure(digest string, fill func(dir string) error) error {
	if s.path(digest) == "" {
		return fmt.Errorf("layer digest %q is not sha256:<64 hex>", digest)
	}
	_, err, _ := s.flight.Do(digest, func() (any, error) {
		if s.has(digest) {
			return nil, nil
		}
		tmp, err := s.tempDir()
		if err != nil {
			return nil, fmt.Errorf("create layer: %w", err)
		}
		if err := fill(tmp); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		return nil, s.place(tmp, digest)
	})
	return err
}

// place renames a filled temporary directory to its digest; when another
// process placed the same layer first, the copy is dropped.
func (s *layerStore) place(tmp, digest string) error {
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("place layer: %w", err)
	}
	err := os.Rename(tmp, s.path(digest))
	if err != nil && s.has(digest) {
		os.RemoveAll(tmp)
		return nil
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("place layer: %w", err)
	}
	return nil
}

// commit turns the tree at src (an overlay upper dir) into a layer named
// by the hash of its content and returns its digest; created says that
// the layer did not exist before. src is copied, not moved.
func (s *layerStore) commit(src string) (digest string, created bool, err error) {
	sum, err := hashTree(src)
	if err != nil {
		return "", false, fmt.Errorf("hash layer: %w", err)
	}
	digest = "sha256:" + sum
	created = !s.has(digest)
	err = s.ensure(digest, func(dir string) error {
		if err := copyTree(src, dir); err != nil {
			return fmt.Errorf("copy layer: %w", err)
		}
		return nil
	})
	return digest, created, err
}

// detach renames a layer away from its digest (so that it never looks
// complete while half removed) and returns the directory to remove, or ""
// when the layer does not exist.
func (s *layerStore) detach(digest string) (string, error) {
	p := s.path(digest)
	if p == "" {
		return "", nil
	}
	tmp, err := s.tempDir()
	if err != nil {
		return "", err
	}
	os.Remove(tmp)
	if err := os.Rename(p, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("remove layer: %w", err)
	}
	return tmp, nil
}

// remove deletes a layer; a missing one is not an error.
func (s *layerStore) remove(digest string) error {
	tmp, err := s.detach(digest)
	if err != nil || tmp == "" {
		return err
	}
	return os.RemoveAll(tmp)
}

// list returns the digests of the complete layers.
func (s *layerStore) list() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if d := "sha256:" + e.Name(); hexOf(d) != "" && e.IsDir() {
			out = append(out, d)
		}
	}
	return out, nil
}

// sweep removes temporary directories of processes that are gone and the
// complete layers not in keep that were last changed before cutoff (so
// that a layer just placed by a concurrent `sdbx template build` is
// left alone). It returns the digests removed.
func (s *layerStore) sweep(keep map[string]bool, cutoff time.Time) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if rest, ok := strings.CutPrefix(name, tmpPrefix); ok {
			pid, _, _ := strings.Cut(rest, "-")
			if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && !processAlive(n) {
				os.RemoveAll(filepath.Join(s.dir, name))
			}
			continue
		}
		d := "sha256:" + name
		if hexOf(d) == "" || keep[d] {
			continue
		}
		info, err := e.Info()
		if err != nil || info.ModTime().After(cutoff) {
			continue
		}
		if err := s.remove(d); err != nil {
			return removed, err
		}
		removed = append(removed, d)
	}
	return removed, nil
}

func processAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}
