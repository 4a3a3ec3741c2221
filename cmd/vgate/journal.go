package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// Under systemd, stderr is a journal stream (JOURNAL_STREAM names its
// device and inode). journald reads a syslog priority "<N>" at the start
// of each line (SyslogLevelPrefix, on by default) and strips it, so with
// the prefix `journalctl -u vgate -p warning` shows vgate's warnings and
// errors, and nothing else.

// onJournal reports whether w is the journal stream systemd gave us.
func onJournal(w io.Writer) bool {
	f, ok := w.(*os.File)
	js := os.Getenv("JOURNAL_STREAM")
	if !ok || js == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalPriority is the syslog priority of a slog level.
func journalPriority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

// priorityWriter writes each record (one Write from slog's handlers)
// behind the priority of the record being handled.
type priorityWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priorityHandler sets the priority for the record next handles; mu
// (shared by every handler derived with WithAttrs/WithGroup) keeps the
// priority and the write together.
type priorityHandler struct {
	mu   *sync.Mutex
	w    *priorityWriter
	next slog.Handler
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.w.prefix = journalPriority(r.Level)
	return h.next.Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &priorityHandler{h.mu, h.w, h.next.WithAttrs(as)}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{h.mu, h.w, h.next.WithGroup(name)}
}
