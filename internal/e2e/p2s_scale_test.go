package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
	"github.com/vgate-project/vgate/internal/netlab"
)

// BenchmarkP2SScale: a real gateway (`vgate run` in a namespace) with
// 1,000 registered point-to-site clients. Reports the time of a `client
// add` over the control socket (mean of the last 100 of 1,000), the
// gateway's resident memory with 1,000 clients, and the time a restart
// takes until the control socket answers again (all 1,000 peers loaded).
func BenchmarkP2SScale(b *testing.B) {
	bin := os.Getenv("VGATE_BIN")
	if bin == "" && netlab.Root() {
		bin = filepath.Join(b.TempDir(), "vgate")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/vgate-project/vgate/cmd/vgate").CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	for b.Loop() {
		lab := netlab.NewT(b, netlab.Networks(1))
		g, err := lab.NewGateway(lab.Network(1), bin)
		if err != nil {
			b.Fatal(err)
		}
		g.Extra = strings.Replace(strings.Replace(p2sExtra, "172.16.201.0/24", "172.16.0.0/16", 1), "max_clients: 16", "max_clients: 2000", 1)
		if err := g.Start(); err != nil {
			b.Fatal(err)
		}
		rssIdle := rss(b, g.Proc().Pid())
		c := control.NewClient(g.Socket)
		var last100 time.Duration
		for i := 0; i < 1000; i++ {
			t0 := time.Now()
			if _, err := c.AddClient(context.Background(), api.AddClientRequest{Name: fmt.Sprintf("c%04d", i), Groups: []string{"devs"}}); err != nil {
				b.Fatal(err)
			}
			if i >= 900 {
				last100 += time.Since(t0)
			}
		}
		rss1000 := rss(b, g.Proc().Pid())
		if err := g.Stop(); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := g.Start(); err != nil {
			b.Fatal(err)
		}
		restart := time.Since(t0)
		list, err := c.Clients(context.Background())
		if err != nil || len(list) != 1000 {
			b.Fatalf("after restart: %d clients, %v", len(list), err)
		}
		b.ReportMetric(float64(last100.Microseconds())/100/1000, "ms/client-add")
		b.ReportMetric(float64(rssIdle)/(1<<20), "MiB-rss-0-clients")
		b.ReportMetric(float64(rss1000)/(1<<20), "MiB-rss-1000-clients")
		b.ReportMetric(float64(rss(b, g.Proc().Pid()))/(1<<20), "MiB-rss-after-restart")
		b.ReportMetric(restart.Seconds()*1000, "ms/restart")
	}
}

// rss is the resident set size of a process.
func rss(b *testing.B, pid int) uint64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
