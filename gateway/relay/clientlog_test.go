package relay

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A wrong pin, as status shows it, is logged once at warn with the
// mismatch; the client's retries of the same failure are debug.
func TestWrongPinLoggedOnce(t *testing.T) {
	s := NewServer(key(t), Limits{}, nil)
	url, _ := startRelay(t, s)
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := NewClient(url, "sha256:"+strings.Repeat("00", 32), key(t), log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(buf.String(), "relay connection failed") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := buf.String()
	if n := strings.Count(out, "relay connection failed"); n < 3 {
		t.Fatalf("%d attempts in 15 s:\n%s", n, out)
	}
	var warns []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=WARN") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "does not match the pin") {
		t.Errorf("warnings %q, want one naming the pin mismatch:\n%s", warns, out)
	}
}
