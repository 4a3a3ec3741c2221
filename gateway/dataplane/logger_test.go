package dataplane

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// wireguard-go's lines get their levels: verbose → debug, a send refused
// by this host's firewall (EPERM, however wrapped) → debug, other errors
// → info; never warn.
func TestDeviceLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l := DeviceLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	refused := &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendmmsg", syscall.EPERM)}
	cases := []struct {
		log   func()
		level string
		text  string
	}{
		{func() { l.Verbosef("%v - Sending keepalive packet", "peer(x)") }, "DEBUG", "Sending keepalive"},
		{func() { l.Errorf("%v - Failed to send data packets: %v", "peer(x)", refused) }, "DEBUG", "operation not permitted"},
		{func() { l.Errorf("%v - Failed to send data packets: %v", "peer(x)", errors.New("no buffer space")) }, "INFO", "no buffer space"},
		{func() { l.Errorf("Failed to write packets to TUN device: %v", syscall.EIO) }, "INFO", "TUN device"},
	}
	for _, c := range cases {
		buf.Reset()
		c.log()
		line := buf.String()
		if !strings.Contains(line, "level="+c.level) || !strings.Contains(line, c.text) {
			t.Errorf("got %q, want level %s with %q", line, c.level, c.text)
		}
	}
}
