package fs

import (
	"errors"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// FuzzCleanPath checks that every accepted path is absolute and clean, so
// it can't climb above the root, and every refusal is invalid_argument.
func FuzzCleanPath(f *testing.F) {
	for _, seed := range []string{"/", "/workspace/a.txt", "../../etc/passwd", "/a/../../b", "/a\x00b", "", "relative", "//x//y/", "/proc/1/root/etc/shadow", "/\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		abs, rel, err := cleanPath("op", p)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("cleanPath(%q): %v is not invalid_argument", p, err)
			}
			return
		}
		if !strings.HasPrefix(abs, "/") || strings.Contains(abs, "/../") || strings.HasSuffix(abs, "/..") || strings.Contains(abs, "\x00") {
			t.Fatalf("cleanPath(%q) = %q: not a clean absolute path", p, abs)
		}
		if rel != "." && (strings.HasPrefix(rel, "/") || rel == ".." || strings.HasPrefix(rel, "../")) {
			t.Fatalf("cleanPath(%q) rel = %q escapes the root", p, rel)
		}
	})
}
