package netlab_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// TestPlainForwarding proves the harness without vgate: two networks joined
// by plain routes on the gateways; hosts reach each other over IPv4 and IPv6
// and move 4 MB intact; Close leaves no namespace behind.
func TestPlainForwarding(t *testing.T) {
	l := netlab.NewT(t, netlab.Networks(2))
	n1, n2 := l.Network(1), l.Network(2)
	if err := l.RoutePlain(n1, n2); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping(n1.HostNS, n2.HostAddr, 3); err != nil {
		t.Fatalf("host1 -> host2: %v", err)
	}
	if err := l.Ping(n2.HostNS, n1.HostAddrV6, 3); err != nil {
		t.Fatalf("host2 -> host1 over IPv6: %v", err)
	}
	if err := l.Ping(n1.GatewayNS, n2.GatewayUnderlay, 1); err != nil {
		t.Fatalf("underlay gw1 -> gw2: %v", err)
	}
	if err := l.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := l.TCPTransfer(n2.HostNS, n1.HostNS, n1.HostAddrV6, 1<<20); err != nil {
		t.Fatal(err)
	}

	// Without routes the hosts are isolated: the lab adds none by itself.
	n3, err := l.AddNetwork(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ping(n1.HostNS, n3.HostAddr, 1); err == nil {
		t.Error("host1 reached host3 without any route")
	}

	p, err := l.Start(n2.HostNS, "sleep.log", "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if cpu, err := p.CPUTime(); err != nil || cpu < 0 {
		t.Errorf("CPUTime = %v, %v", cpu, err)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Errorf("pid %d still running after Close", p.Pid())
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), l.Prefix) {
		t.Errorf("namespaces left after Close:\n%s", out)
	}
}

func TestProcessCPUTime(t *testing.T) {
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond { // burn some CPU
	}
	cpu, err := netlab.ProcessCPUTime(os.Getpid())
	if err != nil || cpu <= 0 || cpu > time.Hour {
		t.Fatalf("ProcessCPUTime(self) = %v, %v", cpu, err)
	}
}
