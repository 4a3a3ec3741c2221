package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// On the journal every line starts with its level's syslog priority, so
// `journalctl -p warning` keeps exactly the warnings and errors; also
// from loggers derived with With, and from many goroutines at once.
func TestJournalPriorities(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf lockedBuf
		log, err := buildLogger(&buf, format, "debug", true)
		if err != nil {
			t.Fatal(err)
		}
		tun := log.With("peering", "west")
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 50; j++ {
					tun.Warn("tunnel down", "reason", "send_blocked")
					tun.Info("tunnel up")
					log.Debug("detail")
					log.Error("reload rejected")
				}
			}()
		}
		wg.Wait()
		want := map[string]string{"tunnel down": "<4>", "tunnel up": "<6>", "detail": "<7>", "reload rejected": "<3>"}
		lines := strings.Split(strings.TrimRight(buf.b.String(), "\n"), "\n")
		if len(lines) != 8*50*4 {
			t.Fatalf("%s: %d lines, want %d", format, len(lines), 8*50*4)
		}
		for _, l := range lines {
			ok := false
			for msg, prio := range want {
				if strings.Contains(l, msg) {
					ok = strings.HasPrefix(l, prio) && strings.Count(l, "<") == 1
				}
			}
			if !ok {
				t.Fatalf("%s: line %q has the wrong priority", format, l)
			}
		}
	}
	// Not on the journal: no prefix.
	var buf bytes.Buffer
	log, _ := buildLogger(&buf, "text", "info", false)
	log.Warn("tunnel down")
	if strings.HasPrefix(buf.String(), "<") {
		t.Errorf("priority without the journal: %q", buf.String())
	}
}

// The journal is recognised by JOURNAL_STREAM naming stderr's device and
// inode, as systemd sets it; another file, or none, is not the journal.
func TestOnJournal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !onJournal(f) {
		t.Error("the named stream is not recognised")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if onJournal(f) {
		t.Error("another inode taken for the journal")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if onJournal(f) || onJournal(&bytes.Buffer{}) {
		t.Error("journal without JOURNAL_STREAM")
	}
}
