package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
	"github.com/vgate-project/vgate/gateway/dataplane"
)

// captureAPI serves captures of peering "west" from a canned packet list,
// through the same dataplane.Capture pcap writer the gateway uses.
type captureAPI struct {
	fakeAPI
	pkts [][]byte
	got  api.CaptureQuery
}

func (f *captureAPI) Capture(ctx context.Context, q api.CaptureQuery, w io.Writer) (api.CaptureSummary, error) {
	f.got = q
	if q.Peering != "west" {
		return api.CaptureSummary{}, fmt.Errorf("no peering %q is configured", q.Peering)
	}
	c := dataplane.NewCapture(q.Snaplen, 16)
	for _, p := range f.pkts {
		c.Tap(dataplane.Inbound, p, time.Unix(1_800_000_000, 0))
	}
	res, err := c.WritePcap(ctx, w, dataplane.CaptureLimits{Count: q.Count, Duration: q.Duration, Bytes: q.MaxBytes})
	return api.CaptureSummary{Packets: res.Packets, Dropped: res.Dropped, Stop: api.CaptureStop(res.Stop)}, err
}

func TestCaptureOverSocket(t *testing.T) {
	a, b := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.2.0.2")
	fake := &captureAPI{pkts: [][]byte{tuntest.Ping(b, a), tuntest.Ping(a, b), tuntest.Ping(b, a)}}
	dir := t.TempDir()
	sock := filepath.Join(dir, "vgate.sock")
	srv, err := control.Listen(sock, control.Handler(fake))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	out := filepath.Join(dir, "west.pcap")
	code, _, errOut := vgate(t, "", "capture", "--socket", sock, "--peering", "west", "--count", "2", "--duration", "5s", "-w", out)
	if code != 0 || !strings.Contains(errOut, "2 packets from peering west") || !strings.Contains(errOut, "stopped by count") {
		t.Fatalf("capture: exit %d: %s", code, errOut)
	}
	if fake.got.Count != 2 || fake.got.Duration != 5*time.Second || fake.got.MaxBytes != dataplane.DefaultCaptureBytes {
		t.Fatalf("gateway got query %+v", fake.got)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("capture file mode %v, want 0600 (it holds traffic)", fi.Mode().Perm())
	}
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		data, _, err := r.ReadPacketData()
		if err != nil || !bytes.Equal(data, fake.pkts[i]) {
			t.Fatalf("packet %d = %x, %v", i, data, err)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("a third packet in a --count 2 capture: %v", err)
	}

	// To stdout, for a pipe into tcpdump -r -.
	code, stdout, errOut := vgate(t, "", "capture", "--socket", sock, "--peering", "west", "--count", "1", "-w", "-")
	if code != 0 || !strings.HasPrefix(stdout, "\x4d\x3c\xb2\xa1") { // pcap magic, nanosecond variant, little endian
		t.Fatalf("capture -w -: exit %d, %q: %s", code, stdout[:min(len(stdout), 8)], errOut)
	}

	code, _, errOut = vgate(t, "", "capture", "--socket", sock, "--peering", "nope", "-w", filepath.Join(dir, "x.pcap"))
	if code != 1 || !strings.Contains(errOut, `no peering "nope"`) {
		t.Fatalf("unknown peering: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pcap")); err == nil {
		t.Error("a failed capture left a file")
	}
	for _, args := range [][]string{
		{"capture", "--socket", sock, "-w", out},             // no --peering
		{"capture", "--socket", sock, "--peering", "west"},   // no -w
		{"capture", "--peering", "west", "-w", out, "extra"}, // stray argument
	} {
		if code, _, errOut := vgate(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage): %s", args, code, errOut)
		}
	}
}
