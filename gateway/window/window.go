// Package window tells how much a cumulative counter grew recently (over
// the last minute, say) from samples of its total, so that a view can show
// "12 total, 0 in the last minute" instead of a bare total that reads like
// something happening now.
package window

import (
	"sync"
	"time"
)

// Counter keeps samples of one cumulative counter, at least Step apart,
// for as long as Span needs. The zero value is not usable: use New.
type Counter struct {
	span, step time.Duration
	samples    []sample // oldest first
	// origin says the first sample saw the counter at zero (it started
	// or was reset then): everything counted since is recent.
	origin bool
}

type sample struct {
	at    time.Time
	value uint64
}

// New is a Counter for growth over span, sampled at most every step.
func New(span, step time.Duration) *Counter {
	return &Counter{span: span, step: step}
}

// Observe records the counter's total at now. A total below the last one
// means the counter was reset (its tunnel was recreated, say): the history
// starts again from zero.
func (c *Counter) Observe(now time.Time, total uint64) {
	if n := len(c.samples); n > 0 && total < c.samples[n-1].value {
		c.samples, c.origin = c.samples[:0], true
		c.samples = append(c.samples, sample{now, 0})
	}
	if len(c.samples) == 0 {
		c.origin = total == 0
		c.samples = append(c.samples, sample{now, total})
		return
	}
	if now.Sub(c.samples[len(c.samples)-1].at) < c.step {
		return
	}
	c.samples = append(c.samples, sample{now, total})
	// Keep one sample at or before now-span (the baseline); drop older.
	cut := 0
	for i := 1; i < len(c.samples) && !c.samples[i].at.After(now.Add(-c.span)); i++ {
		cut = i
	}
	if cut > 0 {
		c.samples = append(c.samples[:0], c.samples[cut:]...)
	}
}

// Recent is how much the counter grew over the last span before now,
// given its total now. ok is false when the samples cannot tell: the
// counter was first seen non-zero less than span ago, or nothing was
// sampled near now-span (the baseline would cover a longer time).
func (c *Counter) Recent(now time.Time, total uint64) (n uint64, ok bool) {
	if len(c.samples) == 0 {
		return 0, false
	}
	from := now.Add(-c.span)
	base := -1
	for i, s := range c.samples {
		if !s.at.After(from) {
			base = i
		}
	}
	var b sample
	switch {
	case base >= 0:
		b = c.samples[base]
		if from.Sub(b.at) > 2*c.step {
			return 0, false
		}
	case c.origin:
		b = c.samples[0]
	default:
		return 0, false
	}
	if total < b.value {
		return total, true // reset since: all of it is recent
	}
	return total - b.value, true
}

// Set is a Counter per key, safe for concurrent use. A key not observed
// for twice the span is forgotten (its counter went away).
type Set struct {
	span, step time.Duration

	mu    sync.Mutex
	m     map[string]*Counter
	last  map[string]time.Time
	swept time.Time
}

// NewSet is a Set of Counters for growth over span, sampled every step.
func NewSet(span, step time.Duration) *Set {
	return &Set{span: span, step: step, m: map[string]*Counter{}, last: map[string]time.Time{}}
}

// Observe records key's total at now and returns its growth over the
// last span (ok as for Counter.Recent). It also forgets stale keys.
func (s *Set) Observe(key string, now time.Time, total uint64) (n uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[key]
	if c == nil {
		c = New(s.span, s.step)
		s.m[key] = c
	}
	s.last[key] = now
	c.Observe(now, total)
	n, ok = c.Recent(now, total)
	if now.Sub(s.swept) >= s.span {
		s.swept = now
		for k, at := range s.last {
			if now.Sub(at) > 2*s.span {
				delete(s.m, k)
				delete(s.last, k)
			}
		}
	}
	return n, ok
}
