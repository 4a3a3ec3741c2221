package enroll

import (
	"net/netip"
	"time"
)

// Limits of failed enrollment attempts: each source (connlimit.Source: an
// IPv4 address, an IPv6 /64) may fail Burst times, then once per Refill; all
// sources together may fail GlobalBurst times, then once per
// GlobalRefill. A request carrying the secret of a pending invite is
// never counted nor limited; any other request of a limited source gets
// 429 without a reason. Secrets have 256 bits: the limit keeps logs, the
// store and the listener's work small under a flood, it does not protect
// the secrets.
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
// table-tested without sleeping. It holds at most maxSources sources.
type Limiter struct {
	src    map[netip.Prefix]*bucket
	global bucket
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter { return &Limiter{src: map[netip.Prefix]*bucket{}} }

// Take reports whether source src (connlimit.Source) may fail once more
// at now, and if so counts the failure.
func (l *Limiter) Take(src netip.Prefix, now time.Time) bool {
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

// prune forgets sources whose bucket is full again; it reports whether
// there is room for a new one. Fail closed: when every source is still
// limited, new sources are refused until some refill (pending invites
// are not limited, so this locks no laptop out).
func (l *Limiter) prune(now time.Time) bool {
	for a, b := range l.src {
		b.fill(now, Burst, Refill)
		if b.tokens >= Burst {
			delete(l.src, a)
		}
	}
	return len(l.src) < maxSources
}
