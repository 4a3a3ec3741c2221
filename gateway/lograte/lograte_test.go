package lograte

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// The limiter's decisions, step by step: burst 2 per 60 s window.
func TestLimiter(t *testing.T) {
	type step struct {
		at      time.Duration // since t0
		key     string
		expire  bool // Expire instead of Note
		emit    bool
		more    int
		first   bool
		comment string
	}
	steps := []step{
		{at: 0, key: "a", emit: true, comment: "first of a window"},
		{at: time.Second, key: "a", emit: true, comment: "second: within the burst"},
		{at: 2 * time.Second, key: "a", first: true, comment: "third: suppressed, the first so"},
		{at: 3 * time.Second, key: "b", emit: true, comment: "another key has its own window"},
		{at: 4 * time.Second, key: "a", comment: "suppressed"},
		{at: 59 * time.Second, key: "a", expire: true, comment: "window not over: nothing"},
		{at: 60 * time.Second, key: "a", expire: true, more: 2, comment: "window over: 2 suppressed"},
		{at: 61 * time.Second, key: "a", first: true, comment: "new window with the burst spent: a flood stays one line per window"},
		{at: 120 * time.Second, key: "a", expire: true, more: 1},
		{at: 180 * time.Second, key: "a", expire: true, comment: "a quiet window: forgotten"},
		{at: 181 * time.Second, key: "a", emit: true, comment: "after a quiet window a message goes out at once"},
		{at: 182 * time.Second, key: "a", emit: true},
		{at: 183 * time.Second, key: "a", first: true},
		{at: 250 * time.Second, key: "a", emit: true, more: 1, comment: "Expire missed: the next message reports the count"},
		{at: 250 * time.Second, key: "a", expire: true, comment: "and the late Expire finds nothing"},
	}
	l := NewLimiter(time.Minute, 2)
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.expire {
			if more := l.Expire(s.key, now); more != s.more {
				t.Errorf("step %d (%s): Expire = %d, want %d", i, s.comment, more, s.more)
			}
			continue
		}
		emit, more, first, until := l.Note(s.key, now)
		if emit != s.emit || more != s.more || first != s.first {
			t.Errorf("step %d (%s): Note = %v, %d, %v; want %v, %d, %v", i, s.comment, emit, more, first, s.emit, s.more, s.first)
		}
		if first && !until.After(now) {
			t.Errorf("step %d: first suppression with expiry %v not after %v", i, until, now)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1204: "1,204", 1234567: "1,234,567", -1204: "-1,204"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// fakeClock drives a Handler's time and its expiry timers by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []timer
}

type timer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) after(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, timer{c.now.Add(d), f})
}

// advance moves the clock by d and runs the timers due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t.f)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

func newTestLogger(burst int) (*slog.Logger, *bytes.Buffer, *fakeClock, *Handler) {
	var buf bytes.Buffer
	text := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	h := New(text, time.Minute, burst)
	c := &fakeClock{now: t0}
	h.st.now, h.st.after = c.Now, c.after
	return slog.New(h), &buf, c, h
}

func lines(buf *bytes.Buffer) []string {
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A flood of one message per peering (20 a second for 3 minutes, as
// wireguard-go logs a refused send per packet) yields, per peering, the
// burst and one line per window with the count; another message of the
// same peering and the same message of another peering pass.
func TestHandlerFlood(t *testing.T) {
	log, buf, c, h := newTestLogger(2)
	tun := log.With("tunnel", "west")
	const msg = "peer(abc) - Failed to send data packets: sendmmsg: operation not permitted"
	for i := 0; i < 3*60*20; i++ {
		tun.Warn(msg)
		if i == 10 {
			tun.Info("tunnel down", "reason", "send_blocked")
			log.Warn(msg, "tunnel", "east")
		}
		c.advance(50 * time.Millisecond)
	}
	c.advance(2 * time.Minute) // the flood ended: the last window reports
	log.Info("later")          // and the next message forgets quiet keys
	got := lines(buf)
	var flood []string
	for _, l := range got {
		if strings.Contains(l, "tunnel=west") && strings.Contains(l, "Failed to send") {
			flood = append(flood, l)
		}
	}
	// 2 (burst) + one summary per window: 3 windows.
	if len(flood) != 5 {
		t.Fatalf("%d lines of the flood, want 5:\n%s", len(flood), strings.Join(got, "\n"))
	}
	if !strings.Contains(flood[2], "(1,198 more in the last 60 s)") || !strings.Contains(flood[2], "repeated=1198") {
		t.Errorf("first summary %q, want 1,198 more", flood[2])
	}
	if !strings.Contains(flood[3], "(1,200 more in the last 60 s)") {
		t.Errorf("second summary %q, want 1,200 more", flood[3])
	}
	for _, want := range []string{`msg="tunnel down" tunnel=west reason=send_blocked`, `tunnel=east`} {
		n := 0
		for _, l := range got {
			if strings.Contains(l, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines with %q, want 1:\n%s", n, want, strings.Join(got, "\n"))
		}
	}
	h.st.mu.Lock()
	n, pend := h.st.lim.Len(), len(h.st.last)
	h.st.mu.Unlock()
	if n != 1 || pend != 0 {
		t.Errorf("the limiter tracks %d keys (%d pending lines) after quiet windows, want only the last message's", n, pend)
	}
}

// Subjects and reasons tell repeats apart; other attributes do not.
func TestHandlerKeys(t *testing.T) {
	log, buf, _, _ := newTestLogger(1)
	log.Warn("tunnel down", "peering", "a", "reason", "probe_dead", "hint", "x")
	log.Warn("tunnel down", "peering", "a", "reason", "probe_dead", "hint", "y") // same key
	log.Warn("tunnel down", "peering", "a", "reason", "send_blocked")
	log.Warn("tunnel down", "peering", "b", "reason", "probe_dead")
	log.Info("tunnel down", "peering", "a", "reason", "probe_dead") // another level
	log.WithGroup("g").Warn("tunnel down", "peering", "c")          // in a group: no subject
	log.WithGroup("g").Warn("tunnel down", "peering", "d")
	got := lines(buf)
	if len(got) != 5 {
		t.Fatalf("%d lines, want 5:\n%s", len(got), strings.Join(got, "\n"))
	}
	if strings.Contains(buf.String(), "hint=y") {
		t.Errorf("the repeat with another hint went out:\n%s", buf.String())
	}
}

// Concurrent logging from many goroutines with real timers (run with -race).
func TestHandlerConcurrent(t *testing.T) {
	var buf syncBuffer
	log := slog.New(New(slog.NewTextHandler(&buf, nil), 20*time.Millisecond, 3))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("peering", string(rune('a'+g%2)))
			for i := 0; i < 500; i++ {
				l.Info("repeat")
			}
		}()
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	n := strings.Count(buf.String(), "\n")
	if n < 6 || n > 40 {
		t.Errorf("%d lines from 4000 messages of 2 keys:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "more in the last 0.02 s") {
		t.Errorf("no summary line:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
