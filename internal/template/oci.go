package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// maxImageRefLen bounds a dockerImage reference.
const maxImageRefLen = 512

// parseImageRef parses a dockerImage reference ("python:3.11-slim",
// "127.0.0.1:5000/team/tool@sha256:..."). A reference without a registry
// resolves against mirror when one is set (the server's
// --registry-mirror), else against Docker Hub. Registries on loopback
// addresses (and localhost) are spoken to over plain HTTP, every other
// over HTTPS. Errors wrap errdefs.ErrInvalidArgument.
func parseImageRef(ref, mirror string) (name.Reference, error) {
	if ref == "" || len(ref) > maxImageRefLen || strings.ContainsAny(ref, " \t\r\n\x00") {
		return nil, fmt.Errorf("dockerImage %q: not an image reference: %w", ref, errdefs.ErrInvalidArgument)
	}
	var opts []name.Option
	if mirror != "" {
		opts = append(opts, name.WithDefaultRegistry(mirror))
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("dockerImage %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	return r, nil
}

// imageConfig is what a template takes from an image's configuration.
type imageConfig struct {
	Env map[string]string
}

// pullImage pulls an image for this machine's platform and makes each of
// its layers a layer directory (named by the layer's diff id, so images
// share their common layers), pinned by the build b. It returns the
// layers topmost first, all mounted at "/".
func (c *Catalog) pullImage(ctx context.Context, ref name.Reference, b *builder) ([]Layer, imageConfig, error) {
	logf := b.logf
	start := time.Now()
	logf("pulling %s", ref.Name())
	img, err := remote.Image(ref,
		remote.WithContext(ctx),
		remote.WithAuth(authn.Anonymous),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}),
		remote.WithUserAgent("sdbx"),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Steps: 2}),
	)
	if err != nil {
		return nil, imageConfig{}, fmt.Errorf("pull %s: %v", ref.Name(), err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, imageConfig{}, fmt.Errorf("pull %s: read image config: %v", ref.Name(), err)
	}
	if cfg.OS != "" && cfg.OS != "linux" || cfg.Architecture != "" && cfg.Architecture != goruntime.GOARCH {
		return nil, imageConfig{}, fmt.Errorf("image %s is for %s/%s, this server runs linux/%s", ref.Name(), cfg.OS, cfg.Architecture, goruntime.GOARCH)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, imageConfig{}, fmt.Errorf("pull %s: list layers: %v", ref.Name(), err)
	}
	out := make([]Layer, 0, len(layers))
	for i, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, imageConfig{}, fmt.Errorf("pull %s: layer %d: %v", ref.Name(), i+1, err)
		}
		digest := diffID.String()
		if diffID.Algorithm != "sha256" || hexOf(digest) == "" {
			return nil, imageConfig{}, fmt.Errorf("pull %s: layer %d: unsupported diff id %s", ref.Name(), i+1, digest)
		}
		b.pin(digest)
		cached := c.layers.has(digest)
		err = c.layers.ensure(digest, func(dir string) error { return extractLayer(ctx, l, diffID, dir) })
		if err != nil {
			return nil, imageConfig{}, fmt.Errorf("pull %s: layer %d (%s): %v", ref.Name(), i+1, short(digest), err)
		}
		how := "cached"
		if !cached {
			how = "extracted"
			b.made(digest)
		}
		logf("layer %d/%d %s %s", i+1, len(layers), short(digest), how)
		out = append(out, Layer{Target: "/", Source: digest})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	ic := imageConfig{Env: map[string]string{}}
	for _, kv := range cfg.Config.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			ic.Env[k] = v
		}
	}
	logf("pulled %s (%d layers) in %s", ref.Name(), len(layers), time.Since(start).Round(10*time.Millisecond))
	return out, ic, nil
}

// extractLayer unpacks one image layer into dir and checks that its
// uncompressed content has the diff id the image's config names.
func extractLayer(ctx context.Context, l v1.Layer, diffID v1.Hash, dir string) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	tee := io.TeeReader(rc, h)
	if err := extractTar(ctx, tee, dir, extractOptions{whiteouts: true}); err != nil {
		return err
	}
	// The tar reader stops at the end-of-archive marker; hash the rest.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		return fmt.Errorf("content does not match its diff id (got sha256:%s)", short("sha256:"+got))
	}
	return nil
}

// short abbreviates a digest for logs and messages.
func short(digest string) string {
	if h := hexOf(digest); h != "" {
		return "sha256:" + h[:12]
	}
	return digest
}
