// Package lograte limits repeating log messages: a slog.Handler that lets
// the first few lines of each message per subject (peering, tunnel,
// client, ...) through per window and folds the rest into one line with a
// count ("… (1,204 more in the last 60 s)"), so a per-packet error cannot
// bury the state changes around it.
package lograte

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Window and Burst are the limits vgate runs with: 5 lines of each
// message and subject per minute.
const (
	Window = time.Minute
	Burst  = 5
)

// subjectKeys are the attributes that tell apart what a message is about:
// the same message for two peerings (or with two reasons) is limited
// separately.
var subjectKeys = map[string]bool{
	"component": true, "gateway": true, "peering": true, "tunnel": true, "client": true,
	"device": true, "url": true, "reason": true, "code": true, "state": true, "alert": true,
}

// Limiter decides, per key, which messages go out: within a window that
// began with the first message, the first burst pass and the rest are
// counted. It is pure bookkeeping: the caller supplies the time.
type Limiter struct {
	window time.Duration
	burst  int
	slots  map[string]*slot
	sweep  time.Time // when Note next forgets the keys of quiet windows
}

type slot struct {
	start              time.Time
	passed, suppressed int
}

// NewLimiter returns a limiter of burst messages per key per window.
func NewLimiter(window time.Duration, burst int) *Limiter {
	return &Limiter{window: window, burst: max(burst, 1), slots: map[string]*slot{}}
}

// Note records a message of key at now. It reports whether it goes out
// and, when it starts a new window after one with suppressed messages not
// yet reported (Expire did not run), how many those were. first is true
// when the message is the first suppressed one of its window: the caller
// arranges for Expire at until.
func (l *Limiter) Note(key string, now time.Time) (emit bool, more int, first bool, until time.Time) {
	if !now.Before(l.sweep) {
		// Keys whose window ended without a suppressed message need no
		// Expire: forget them here, once a window, so that messages seen
		// once do not pile up.
		for k, s := range l.slots {
			if s.suppressed == 0 && !now.Before(s.start.Add(l.window)) {
				delete(l.slots, k)
			}
		}
		l.sweep = now.Add(l.window)
	}
	s := l.slots[key]
	if s == nil || !now.Before(s.start.Add(l.window)) {
		if s != nil {
			more = s.suppressed
		}
		l.slots[key] = &slot{start: now, passed: 1}
		return true, more, false, time.Time{}
	}
	if s.passed < l.burst {
		s.passed++
		return true, 0, false, time.Time{}
	}
	s.suppressed++
	return false, 0, s.suppressed == 1, s.start.Add(l.window)
}

// Expire ends key's window if it is over at now and returns the number
// of messages suppressed in it. With some, a new window begins in which
// the burst is already spent, so a steady flood yields one line per
// window; without, the key is forgotten and its next message goes out.
func (l *Limiter) Expire(key string, now time.Time) (more int) {
	s := l.slots[key]
	if s == nil || now.Before(s.start.Add(l.window)) {
		return 0
	}
	if s.suppressed == 0 {
		delete(l.slots, key)
		return 0
	}
	more = s.suppressed
	l.slots[key] = &slot{start: now, passed: l.burst}
	return more
}

// Len is the number of keys the limiter tracks.
func (l *Limiter) Len() int { return len(l.slots) }

// Handler is a slog.Handler that limits repeating messages (same level,
// message and subject attributes) and passes the rest to the next
// handler. A window with suppressed messages ends with one line: the last
// of them, its message followed by the count.
type Handler struct {
	next    slog.Handler
	st      *shared
	subject string // from WithAttrs
	group   bool   // attributes after WithGroup are not subjects
}

type shared struct {
	mu   sync.Mutex
	lim  *Limiter
	last map[string]pending // the last suppressed message per key
	now  func() time.Time
	// after runs f after d (time.AfterFunc; tests replace it).
	after func(d time.Duration, f func())
}

type pending struct {
	h   slog.Handler
	rec slog.Record
}

// New wraps next with the limits window and burst.
func New(next slog.Handler, window time.Duration, burst int) *Handler {
	return &Handler{next: next, st: &shared{
		lim: NewLimiter(window, burst), last: map[string]pending{}, now: time.Now,
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	if !h.group {
		c.subject = appendSubject(h.subject, as...)
	}
	return &c
}

func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = true
	return &c
}

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	key := h.key(r)
	st := h.st
	st.mu.Lock()
	emit, more, first, until := st.lim.Note(key, st.now())
	if !emit {
		st.last[key] = pending{h.next, r.Clone()}
	}
	if more > 0 {
		delete(st.last, key)
	}
	st.mu.Unlock()
	if first {
		st.after(max(until.Sub(st.now()), 0), func() { st.expire(key) })
	}
	if !emit {
		return nil
	}
	if more > 0 {
		r = withCount(r, r.Time, more, st.lim.window)
	}
	return h.next.Handle(ctx, r)
}

// expire ends key's window and writes its summary line, if any.
func (st *shared) expire(key string) {
	st.mu.Lock()
	now := st.now()
	more := st.lim.Expire(key, now)
	p, ok := st.last[key]
	delete(st.last, key)
	st.mu.Unlock()
	if more > 0 && ok {
		_ = p.h.Handle(context.Background(), withCount(p.rec, now, more, st.lim.window))
	}
}

// key is what tells repeats apart: level, message and the subject
// attributes of the handler and the record.
func (h *Handler) key(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(0)
	b.WriteString(r.Message)
	b.WriteByte(0)
	b.WriteString(h.subject)
	if !h.group {
		r.Attrs(func(a slog.Attr) bool {
			if subjectKeys[a.Key] {
				b.WriteString(a.Key)
				b.WriteByte('=')
				b.WriteString(a.Value.String())
				b.WriteByte(0)
			}
			return true
		})
	}
	return b.String()
}

func appendSubject(s string, as ...slog.Attr) string {
	for _, a := range as {
		if subjectKeys[a.Key] {
			s += a.Key + "=" + a.Value.String() + "\x00"
		}
	}
	return s
}

// withCount is r with its message followed by how many more were
// suppressed within window, e.g. " (1,204 more in the last 60 s)", and
// that count as the attribute "repeated", at time at.
func withCount(r slog.Record, at time.Time, more int, window time.Duration) slog.Record {
	c := slog.NewRecord(at, r.Level, r.Message+" ("+Thousands(more)+" more in the last "+seconds(window)+")", r.PC)
	r.Attrs(func(a slog.Attr) bool {
		c.AddAttrs(a)
		return true
	})
	c.AddAttrs(slog.Int("repeated", more))
	return c
}

// Thousands writes n with a comma between groups of three digits.
func Thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}
