package limit

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBucket(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newWithClock(2, 3, c.now) // 2/s, burst 3
	for i := 0; i < 3; i++ {
		if err := l.Allow("k"); err != nil {
			t.Fatalf("request %d of the burst refused: %v", i, err)
		}
	}
	err := l.Allow("k")
	var rl *errdefs.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, errdefs.ErrRateLimited) {
		t.Fatalf("4th request: %v, want a rate limit error", err)
	}
	if rl.RetryAfter <= 0 || rl.RetryAfter > 500*time.Millisecond {
		t.Fatalf("RetryAfter = %v, want (0, 500ms]", rl.RetryAfter)
	}
	if err := l.Allow("other"); err != nil {
		t.Fatalf("another key shares the bucket: %v", err)
	}
	c.t = c.t.Add(rl.RetryAfter)
	if err := l.Allow("k"); err != nil {
		t.Fatalf("refused after waiting RetryAfter: %v", err)
	}
	if err := l.Allow("k"); err == nil {
		t.Fatal("a second token appeared out of nowhere")
	}
	c.t = c.t.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if err := l.Allow("k"); err != nil {
			t.Fatalf("burst not restored after idling: %v", err)
		}
	}
	if err := l.Allow("k"); err == nil {
		t.Fatal("bucket grew past its burst while idle")
	}
}

func TestDisabled(t *testing.T) {
	l := New(0, 0)
	for i := 0; i < 10000; i++ {
		if err := l.Allow("k"); err != nil {
			t.Fatal(err)
		}
	}
	var nilLimiter *Limiter
	if err := nilLimiter.Allow("k"); err != nil {
		t.Fatal(err)
	}
}

func TestIdleBucketsAreSwept(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newWithClock(100, 1, c.now)
	for i := 0; i < 5000; i++ {
		l.Allow(fmt.Sprint("key-", i))
	}
	c.t = c.t.Add(time.Minute)
	for i := 0; i < 1024; i++ {
		l.Allow("busy")
	}
	if n := len(l.buckets); n > 2 {
		t.Fatalf("%d buckets kept for idle keys", n)
	}
}
