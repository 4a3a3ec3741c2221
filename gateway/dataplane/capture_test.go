package dataplane

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/gateway/wgspec"
)

// Two in-memory tunnels; a capture on a's tunnel sees the ping a sends and
// the one it receives, byte for byte, and writes a pcap file that reads
// back.
func TestCaptureTunnel(t *testing.T) {
	binds := bindtest.NewChannelBinds()
	a, b := newSide(t, binds[0]), newSide(t, binds[1])
	hostA, hostB := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.2.0.2")
	if _, err := a.plane.Set([]TunnelSpec{{Name: "b", IfName: "vg-b", MTU: 1420, Peer: wgspec.PeerSpec{
		PublicKey: b.key.Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:1"), AllowedIPs: pfx("10.2.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.plane.Set([]TunnelSpec{{Name: "a", IfName: "vg-a", MTU: 1420, Peer: wgspec.PeerSpec{
		PublicKey: a.key.Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:2"), AllowedIPs: pfx("10.1.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	ta, tb := a.tuns["vg-b"], b.tuns["vg-a"]
	tun := a.plane.Tunnel("b")

	c := NewCapture(0, 16)
	if err := tun.StartCapture(c); err != nil {
		t.Fatal(err)
	}
	if err := tun.StartCapture(NewCapture(0, 1)); !errors.Is(err, ErrCaptureBusy) {
		t.Fatalf("second capture on one tunnel: err = %v, want ErrCaptureBusy", err)
	}
	out, in := tuntest.Ping(hostB, hostA), tuntest.Ping(hostA, hostB)
	if !send(t, ta, tb, out) || !send(t, tb, ta, in) {
		t.Fatal("pings not delivered")
	}
	tun.StopCapture(c)
	if !send(t, ta, tb, out) {
		t.Fatal("ping after capture not delivered")
	}

	var buf bytes.Buffer
	res, err := c.WritePcap(context.Background(), &buf, CaptureLimits{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packets != 2 || res.Stop != StopCount || res.Dropped != 0 || res.Bytes != int64(buf.Len()) {
		t.Fatalf("result = %+v, pcap %d bytes", res, buf.Len())
	}
	if len(c.Packets()) != 0 {
		t.Fatal("a packet sent after StopCapture was captured")
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("link type %v, want raw IP", r.LinkType())
	}
	for i, want := range [][]byte{out, in} {
		got, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(got, want) || ci.Length != len(want) {
			t.Fatalf("packet %d = %x (len %d), want %x", i, got, ci.Length, want)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("after 2 packets: err = %v, want EOF", err)
	}
}

// fakeTUN returns the same packet on every Read and swallows writes.
type fakeTUN struct {
	tun.Device
	pkt []byte
}

func (f *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for i := range bufs {
		sizes[i] = copy(bufs[i][offset:], f.pkt)
	}
	return len(bufs), nil
}
func (f *fakeTUN) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }

func batch(n, offset int, pkt []byte) ([][]byte, []int) {
	bufs, sizes := make([][]byte, n), make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, offset+len(pkt))
		copy(bufs[i][offset:], pkt)
	}
	return bufs, sizes
}

// The tap never blocks the data path: past the queue, packets are dropped
// and counted. Snaplen truncates the copy, not the packet.
func TestCaptureTapBounds(t *testing.T) {
	pkt := tuntest.Ping(netip.MustParseAddr("10.2.0.2"), netip.MustParseAddr("10.1.0.2"))
	ct := newClampTUN(&fakeTUN{pkt: pkt}, 1420)
	c := NewCapture(20, 3)
	ct.tap.Store(c)
	bufs, sizes := batch(4, 16, pkt)
	if n, err := ct.Read(bufs, sizes, 16); n != 4 || err != nil {
		t.Fatalf("read = %d, %v", n, err)
	}
	if n, err := ct.Write(bufs[:1], 16); n != 1 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	if len(c.Packets()) != 3 || c.Dropped() != 2 {
		t.Fatalf("queued %d, dropped %d; want 3 and 2", len(c.Packets()), c.Dropped())
	}
	p := <-c.Packets()
	if p.Dir != Outbound || p.Len != len(pkt) || !bytes.Equal(p.Data, pkt[:20]) {
		t.Fatalf("captured %+v", p)
	}
	if !bytes.Equal(bufs[0][16:], pkt) {
		t.Fatal("the tap changed the packet")
	}
}

// The pcap stays under its size limit.
func TestCaptureSizeLimit(t *testing.T) {
	c := NewCapture(0, 16)
	pkt := make([]byte, 100)
	for range 10 {
		c.Tap(Inbound, pkt, time.Unix(1, 0))
	}
	var buf bytes.Buffer
	res, err := c.WritePcap(context.Background(), &buf, CaptureLimits{Bytes: 24 + 3*116 + 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != StopSize || res.Packets != 3 || buf.Len() != 24+3*116 {
		t.Fatalf("result %+v, %d bytes", res, buf.Len())
	}
}

// With no packets, the capture ends at its duration; synctest's fake clock
// makes this exact and instant.
func TestCaptureDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCapture(0, 16)
		start := time.Now()
		res, err := c.WritePcap(context.Background(), io.Discard, CaptureLimits{Duration: 90 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stop != StopDuration || time.Since(start) != 90*time.Second {
			t.Fatalf("result %+v after %v", res, time.Since(start))
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if res, _ := c.WritePcap(ctx, io.Discard, CaptureLimits{}); res.Stop != StopCanceled {
			t.Fatalf("canceled capture: %+v", res)
		}
	})
}

func TestCaptureLimitsNormalized(t *testing.T) {
	l := CaptureLimits{Count: -1, Duration: 48 * time.Hour, Bytes: 10 << 30}.normalized()
	if l.Count != 0 || l.Duration != MaxCaptureDuration || l.Bytes != MaxCaptureBytes {
		t.Fatalf("normalized = %+v", l)
	}
	l = CaptureLimits{}.normalized()
	if l.Duration != DefaultCaptureTime || l.Bytes != DefaultCaptureBytes {
		t.Fatalf("defaults = %+v", l)
	}
}

// The cost of the tap seam on the read path, with and without a capture
// attached (the nil case is what every tunnel pays).
func BenchmarkClampTUNRead(b *testing.B) {
	pkt := tuntest.Ping(netip.MustParseAddr("10.2.0.2"), netip.MustParseAddr("10.1.0.2"))
	for _, capture := range []bool{false, true} {
		name := "no-capture"
		if capture {
			name = "capture"
		}
		b.Run(name, func(b *testing.B) {
			ct := newClampTUN(&fakeTUN{pkt: pkt}, 1420)
			var c *Capture
			if capture {
				c = NewCapture(0, 1<<16)
				ct.tap.Store(c)
			}
			bufs, sizes := batch(128, 16, pkt)
			b.ReportAllocs()
			for b.Loop() {
				ct.Read(bufs, sizes, 16)
				if c != nil {
					for len(c.ch) > 0 {
						<-c.ch
					}
				}
			}
		})
	}
}
