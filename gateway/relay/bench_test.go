package relay

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
)

// BenchmarkRelayForward measures datagrams of 1400 bytes from one party
// to another through a relay over TLS on loopback (client queue, relay
// read, forward, write, client read): the delivered rate in Mbit/s and the
// share delivered (the relay drops what its per-connection queue cannot
// hold).
func BenchmarkRelayForward(b *testing.B) {
	a, c := key(b), key(b)
	s := NewServer(key(b), Limits{RateBytes: -1, QueueLen: 4096, QueueBytes: 4096 * poolBuf}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public(), c.Public()})
	url, pin := startRelayTB(b, s)
	ca, _ := NewClient(url, pin, a, nil)
	defer ca.Close()
	cc, _ := NewClient(url, pin, c, nil)
	defer cc.Close()
	var got atomic.Int64
	cc.Register(a.Public(), func([]byte) { got.Add(1) })
	for !ca.Connected() || !cc.Connected() {
		time.Sleep(10 * time.Millisecond)
	}
	payload := make([]byte, 1400)
	dst := c.Public()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		// Keep the queue fed, never overflowing (in datagrams or bytes).
		for len(ca.out) == cap(ca.out) || ca.outBytes.used.Load()+poolBuf > ca.outBytes.limit {
			runtime.Gosched()
		}
		ca.Send(dst, payload)
	}
	// Until nothing more arrives: what was delivered, over the time it took.
	last, lastAt := got.Load(), time.Now()
	for time.Since(lastAt) < 200*time.Millisecond {
		time.Sleep(10 * time.Millisecond)
		if n := got.Load(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	b.StopTimer()
	took := lastAt.Sub(start).Seconds()
	b.ReportMetric(float64(last)*float64(len(payload))*8/took/1e6, "Mbit/s")
	b.ReportMetric(float64(last)/float64(b.N)*100, "%delivered")
}
