package environ

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/internal/testcfg"
)

// One tick of the loop: a name due that moved goes to Moved with the
// config that was running; nothing due and no MTU change calls nothing;
// a closed gateway ends the loop.
func TestFollowTick(t *testing.T) {
	addr := netip.MustParseAddrPort("198.18.7.7:51820")
	f := New(func(name string) (netip.AddrPort, error) {
		if name != "west.example:51820" {
			return netip.AddrPort{}, errors.New("no such host")
		}
		return addr, nil
	}, func(netip.Addr) int { return 1500 })
	cfg := testcfg.East(t)
	cfg.Peerings[0].Endpoint = "west.example:51820"
	f.Refresh(cfg)
	var got []Move
	calls := 0
	open := true
	fw := Follow{
		Running: func() (*config.Config, map[string]time.Time, bool) { return cfg, nil, open },
		Moved: func(c *config.Config, moves []Move) {
			if c != cfg {
				t.Errorf("Moved with another config")
			}
			calls++
			got = moves
		},
	}
	now := time.Now()
	if !f.follow(now, fw) || calls != 0 {
		t.Fatalf("nothing due: %d calls", calls)
	}
	addr = netip.MustParseAddrPort("198.18.7.8:51820")
	if !f.follow(now.Add(reresolveEvery), fw) || calls != 1 || len(got) != 1 || got[0].Name != "west.example:51820" || got[0].To != addr {
		t.Fatalf("moved name: %d calls, moves %+v", calls, got)
	}
	if ap, err := f.Env().Resolve("west.example:51820"); err != nil || ap != addr {
		t.Errorf("Env().Resolve = %v %v, want %v", ap, err, addr)
	}
	if at, from := f.MovedAt("west.example:51820"); at.IsZero() || from != netip.MustParseAddrPort("198.18.7.7:51820") {
		t.Errorf("MovedAt = %v %v", at, from)
	}
	open = false
	if f.follow(now.Add(2*reresolveEvery), fw) {
		t.Error("a closed gateway did not end the loop")
	}
}
