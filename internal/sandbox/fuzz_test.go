package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// FuzzValidateEnv checks that accepted env maps hold only names a process
// environment can carry (no '=', NUL, or leading digit) and values without
// NUL, and that refusals are invalid_argument naming the field.
func FuzzValidateEnv(f *testing.F) {
	for _, seed := range [][2]string{{"PATH", "/usr/bin"}, {"A=B", "x"}, {"", "x"}, {"1X", "y"}, {"K", "v\x00"}, {"_ok", ""}, {"ÜBER", "x"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		err := validateEnv("envs", map[string]string{k: v})
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "envs") {
				t.Fatalf("validateEnv(%q=%q): %v", k, v, err)
			}
			return
		}
		if k == "" || strings.ContainsAny(k, "=\x00 ") || (k[0] >= '0' && k[0] <= '9') || strings.IndexByte(v, 0) >= 0 {
			t.Fatalf("validateEnv accepted %q=%q", k, v)
		}
	})
}
