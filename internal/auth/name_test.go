package auth

import (
	"regexp"
	"strings"
	"testing"
)

// TestValidKeyName checks the loop against the pattern it replaced.
func TestValidKeyName(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	for _, name := range []string{
		"", "a", "ci", "ci-bot_2.x", "-a", ".a", "_a", "a b", "é", "a\x00", "A9",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63), "a/b",
	} {
		if got, want := validKeyName(name), re.MatchString(name); got != want {
			t.Errorf("validKeyName(%q) = %v, want %v", name, got, want)
		}
	}
}
