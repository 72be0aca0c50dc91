// Package limit is the per-key request rate limiter: a token bucket per API
// key, refilled continuously at Rate tokens per second up to Burst.
package limit

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// Limiter hands out request tokens per key. The zero rate disables it. It
// is safe for concurrent use.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a limiter allowing rate requests per second per key with
// bursts of up to burst (at least 1). rate 0 allows everything.
func New(rate float64, burst int) *Limiter {
	return newWithClock(rate, burst, time.Now)
}

func newWithClock(rate float64, burst int, now func() time.Time) *Limiter {
	return &Limiter{rate: rate, burst: math.Max(1, float64(burst)), now: now, buckets: map[string]*bucket{}}
}

// Allow takes one token of key's bucket, or returns an
// *errdefs.RateLimitError saying when the next token is due.
func (l *Limiter) Allow(key string) error {
	if l == nil || l.rate <= 0 {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return &errdefs.RateLimitError{
		Msg:        fmt.Sprintf("rate limit of %g requests/s (burst %g) exceeded; retry in %d ms", l.rate, l.burst, wait.Milliseconds()+1),
		RetryAfter: wait,
	}
}

// sweep drops, every 1024 calls, the buckets that have refilled completely
// (they are the same as new ones), so idle keys cost no memory.
func (l *Limiter) sweep(now time.Time) {
	if l.calls++; l.calls%1024 != 0 {
		return
	}
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
