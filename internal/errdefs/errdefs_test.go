package errdefs

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestCodeRoundTrip(t *testing.T) {
	for _, k := range kinds {
		wrapped := fmt.Errorf("sandbox x: %w", k.err)
		if got := Code(wrapped); got != k.code {
			t.Errorf("Code(%v) = %q, want %q", wrapped, got, k.code)
		}
		if !errors.Is(FromCode(k.code), k.err) {
			t.Errorf("FromCode(%q) is not %v", k.code, k.err)
		}
	}
	if Code(errors.New("plain")) != "internal" || FromCode("bogus") != ErrInternal {
		t.Error("unknown errors and codes must map to internal")
	}
}

func TestRateLimitError(t *testing.T) {
	err := fmt.Errorf("create: %w", &RateLimitError{Msg: "slow down", RetryAfter: 2 * time.Second})
	var rl *RateLimitError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second || Code(err) != "rate_limited" {
		t.Fatalf("rate limit error not recognised: %v", err)
	}
}

func TestMessageHidesInternals(t *testing.T) {
	if got := Message(fmt.Errorf("open /var/lib/sdbx/secret: %w", ErrInternal)); got != "internal error" {
		t.Errorf("internal message leaked: %q", got)
	}
	if got := Message(fmt.Errorf("name is too long: %w", ErrInvalidArgument)); got != "name is too long: invalid argument" {
		t.Errorf("Message = %q", got)
	}
}
