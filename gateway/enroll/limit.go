package enroll

import (
	"net/netip"
	"time"
)

// Limits of failed enrollment attempts: each source address may fail
// Burst times, then once per Refill; all sources together may fail
// GlobalBurst times, then once per GlobalRefill. A limited source gets
// 429 before its request is looked at. Secrets have 256 bits; the limit
// keeps logs and the store quiet, not the secret safe.
const (
	Burst        = 5
	Refill       = 10 * time.Second
	GlobalBurst  = 60
	GlobalRefill = time.Second
	maxSources   = 4096
)

// bucket is a token bucket: tokens at time at.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) fill(now time.Time, burst int, refill time.Duration) {
	if b.at.IsZero() {
		b.tokens, b.at = float64(burst), now
		return
	}
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(el)/float64(refill))
		b.at = now
	}
}

// Limiter counts failed attempts per source and in total. It is not safe
// for concurrent use (Server serializes it); time is given, so it is
// table-tested without sleeping.
type Limiter struct {
	src    map[netip.Addr]*bucket
	global bucket
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter { return &Limiter{src: map[netip.Addr]*bucket{}} }

// Take reports whether src may make an attempt at now, and if so charges
// it as a failure up front (for src and in total), so that parallel
// attempts cannot exceed the limit; Refund gives the charge back when the
// attempt succeeds.
func (l *Limiter) Take(src netip.Addr, now time.Time) bool {
	l.global.fill(now, GlobalBurst, GlobalRefill)
	if l.global.tokens < 1 {
		return false
	}
	b := l.src[src]
	if b == nil {
		if len(l.src) >= maxSources && !l.prune(now) {
			return false // fail closed: every known source is still limited
		}
		b = &bucket{}
		l.src[src] = b
	}
	b.fill(now, Burst, Refill)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	l.global.tokens--
	return true
}

// Refund returns the charge of a successful attempt of src.
func (l *Limiter) Refund(src netip.Addr, now time.Time) {
	l.global.fill(now, GlobalBurst, GlobalRefill)
	l.global.tokens = min(float64(GlobalBurst), l.global.tokens+1)
	if b := l.src[src]; b != nil {
		b.fill(now, Burst, Refill)
		b.tokens = min(float64(Burst), b.tokens+1)
	}
}

// prune forgets sources whose bucket is full again; it reports whether
// there is room for a new one. Fail closed: when every source is still
// limited, new sources are refused until some refill.
func (l *Limiter) prune(now time.Time) bool {
	for a, b := range l.src {
		b.fill(now, Burst, Refill)
		if b.tokens >= Burst {
			delete(l.src, a)
		}
	}
	return len(l.src) < maxSources
}
