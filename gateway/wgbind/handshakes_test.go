package wgbind

import (
	"sync"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
)

// deviceStats is the Stats entry of the named device.
func deviceStats(t *testing.T, m *Mux, name string) api.PortDevice {
	t.Helper()
	for _, d := range m.Stats().Devices {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no device %q in Stats", name)
	return api.PortDevice{}
}

// A device's initiations are counted; the oldest unanswered one's time is
// kept through retries and cleared by anything the peer sends to the
// device (response, cookie reply, transport), and only for that device.
func TestUnansweredInitiations(t *testing.T) {
	m, r := newFakeMux(t)
	west, _ := openBind(t, m, "west")
	east, _ := openBind(t, m, "east")

	if d := deviceStats(t, m, "west"); d.InitiationsSent != 0 || !d.UnansweredSince.IsZero() {
		t.Fatalf("fresh device: %+v", d)
	}
	before := time.Now()
	if err := west.Send([][]byte{sent(msgInitiation, 11, initiationSize)}, testEP); err != nil {
		t.Fatal(err)
	}
	first := deviceStats(t, m, "west")
	if first.InitiationsSent != 1 || first.UnansweredSince.Before(before.Add(-time.Millisecond)) || first.UnansweredSince.After(time.Now()) {
		t.Fatalf("after one initiation: %+v (sent at %v)", first, before)
	}
	// A retry keeps the time of the first; a response sent is no initiation.
	time.Sleep(2 * time.Millisecond)
	if err := west.Send([][]byte{sent(msgInitiation, 12, initiationSize), sent(msgResponse, 13, responseSize)}, testEP); err != nil {
		t.Fatal(err)
	}
	if d := deviceStats(t, m, "west"); d.InitiationsSent != 2 || !d.UnansweredSince.Equal(first.UnansweredSince) {
		t.Fatalf("after a retry: %+v, want 2 sent since %v", d, first.UnansweredSince)
	}
	if err := east.Send([][]byte{sent(msgInitiation, 21, initiationSize)}, testEP); err != nil {
		t.Fatal(err)
	}

	for _, answer := range []struct {
		name string
		pkt  []byte
	}{
		{"response", message(msgResponse, 12, responseSize)},
		{"cookie reply", message(msgCookieReply, 11, cookieReplySize)},
		{"transport", message(msgTransport, 12, transportMin)},
	} {
		if err := west.Send([][]byte{sent(msgInitiation, 12, initiationSize)}, testEP); err != nil {
			t.Fatal(err)
		}
		if d := deviceStats(t, m, "west"); d.UnansweredSince.IsZero() {
			t.Fatalf("%s: no initiation pending before the answer", answer.name)
		}
		r.put(0, answer.pkt)
		r.dispatch(1)
		if d := deviceStats(t, m, "west"); !d.UnansweredSince.IsZero() {
			t.Errorf("%s: still unanswered since %v", answer.name, d.UnansweredSince)
		}
	}
	// Transport data of a session older than the pending initiation (the
	// peer lost it, e.g. after a key change) is no answer.
	if err := west.Send([][]byte{sent(msgInitiation, 14, initiationSize)}, testEP); err != nil {
		t.Fatal(err)
	}
	r.put(0, message(msgTransport, 11, transportMin))
	r.dispatch(1)
	if d := deviceStats(t, m, "west"); d.UnansweredSince.IsZero() {
		t.Errorf("transport data of an older session answered the initiation")
	}
	// A packet to an unknown index answers nobody; east still waits.
	r.put(0, message(msgTransport, 999, transportMin))
	r.dispatch(1)
	if d := deviceStats(t, m, "east"); d.InitiationsSent != 1 || d.UnansweredSince.IsZero() {
		t.Errorf("east: %+v, want its initiation unanswered", d)
	}
}

// Initiations sent and answers received race freely (run with -race).
func TestUnansweredConcurrent(t *testing.T) {
	m, r := newFakeMux(t)
	west, _ := openBind(t, m, "west")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 500 {
			_ = west.Send([][]byte{sent(msgInitiation, 7, initiationSize)}, testEP)
		}
	}()
	go func() {
		defer wg.Done()
		for range 500 {
			r.put(0, message(msgTransport, 7, transportMin))
			r.dispatch(1)
			_ = m.Stats()
		}
	}()
	wg.Wait()
	if d := deviceStats(t, m, "west"); d.InitiationsSent != 500 {
		t.Fatalf("InitiationsSent = %d, want 500", d.InitiationsSent)
	}
}
