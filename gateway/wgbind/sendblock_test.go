package wgbind

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// refusal is the error a send refused by a local firewall returns through
// conn.StdNetBind.
func refusal(errno syscall.Errno) error {
	return &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendmmsg", errno)}
}

// Sends refused with EPERM are counted and mark the device blocked since
// the first, with the destination; other send errors do not; a send that
// goes out clears the mark but not the count; other devices are unaffected.
func TestSendBlocked(t *testing.T) {
	m, _ := newFakeMux(t)
	under := m.under.(*fakeBind)
	west, _ := openBind(t, m, "west")
	openBind(t, m, "east")
	data := [][]byte{make([]byte, transportMin), make([]byte, transportMin)}

	under.failWith(refusal(syscall.ECONNREFUSED))
	if err := west.Send(data, testEP); err == nil {
		t.Fatal("send did not fail")
	}
	if d := deviceStats(t, m, "west"); d.SendRefused != 0 || !d.SendBlockedSince.IsZero() {
		t.Fatalf("ECONNREFUSED counted as a refusal: %+v", d)
	}

	under.failWith(refusal(syscall.EPERM))
	before := time.Now()
	if err := west.Send(data, testEP); err == nil {
		t.Fatal("send did not fail")
	}
	first := deviceStats(t, m, "west")
	if first.SendRefused != 2 || first.SendBlockedSince.Before(before.Add(-time.Millisecond)) || first.SendBlockedTo != "192.0.2.1:51820" {
		t.Fatalf("after a refused batch of 2: %+v", first)
	}
	time.Sleep(2 * time.Millisecond)
	if err := west.Send(data[:1], testEP); err == nil {
		t.Fatal("send did not fail")
	}
	if d := deviceStats(t, m, "west"); d.SendRefused != 3 || !d.SendBlockedSince.Equal(first.SendBlockedSince) {
		t.Fatalf("a further refusal: %+v, want 3 refused since %v", d, first.SendBlockedSince)
	}
	if d := deviceStats(t, m, "east"); d.SendRefused != 0 || !d.SendBlockedSince.IsZero() {
		t.Fatalf("east marked by west's refusals: %+v", d)
	}

	under.failWith(nil)
	if err := west.Send(data, testEP); err != nil {
		t.Fatal(err)
	}
	if d := deviceStats(t, m, "west"); d.SendRefused != 3 || !d.SendBlockedSince.IsZero() || d.SendBlockedTo != "" {
		t.Fatalf("after a send went out: %+v, want 3 refused, not blocked", d)
	}
}
