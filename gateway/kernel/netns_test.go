package kernel

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNS creates a fresh network namespace (removed at cleanup, also on
// failure) and a Kernel on a handle inside it. ip runs iproute2 in it.
func testNS(t *testing.T) (k *Kernel, ip func(args ...string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (creates a network namespace)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: iproute2 missing")
	}
	var b [4]byte
	rand.Read(b[:])
	name := "vgk" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	k = &Kernel{h: h}
	t.Cleanup(k.Close)
	ip = func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("link", "set", "lo", "up")
	// Two veth pairs stand for the underlay (wan0), a LAN (lan0) and a
	// vgate tunnel (vg-b); this kernel has no dummy interfaces.
	ip("link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
	ip("link", "add", "vg-b", "type", "veth", "peer", "name", "lan0")
	// No IPv6 link-local addresses: the kernel adds their fe80::/64 routes
	// whenever it gets to it, which would race the route comparisons.
	for _, l := range []string{"wan0", "wan1", "vg-b", "lan0"} {
		ip("link", "set", l, "addrgenmode", "none")
		ip("link", "set", l, "up")
	}
	ip("addr", "add", "198.18.0.1/24", "dev", "wan0")
	ip("addr", "add", "fd18::1/64", "dev", "wan0", "nodad")
	ip("route", "add", "default", "via", "198.18.0.254", "dev", "wan0")
	return k, ip
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func foreignDsts(t *testing.T, k *Kernel) []api.ForeignRoute {
	t.Helper()
	_, f, err := k.table()
	if err != nil {
		t.Fatal(err)
	}
	return sortForeign(f)
}

func conflictDsts(cs []route.Conflict) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Dst.String()+" "+c.Dev+" "+route.ProtocolName(c.Protocol))
	}
	return out
}

// TestSetRoutesLeavesForeignRoutes: routes of other protocols (connected,
// static, the default route) with the destination of a wanted vgate route
// survive SetRoutes and the withdrawal, and are reported as conflicts; one
// that appears after vgate installed its route takes over.
func TestSetRoutesLeavesForeignRoutes(t *testing.T) {
	k, ip := testNS(t)
	ip("route", "add", "10.9.0.0/16", "dev", "lan0", "proto", "static")
	ip("-6", "route", "add", "fd00:9::/48", "dev", "lan0", "proto", "static")
	ip("addr", "add", "10.1.255.254/32", "dev", "lo") // the tunnel address, as SetLocalAddress makes it
	before := foreignDsts(t, k)

	src := netip.MustParseAddr("10.1.255.254")
	want := []route.Route{
		{Dst: mustPrefix("0.0.0.0/0"), Dev: "vg-b", Src: src},            // host default route
		{Dst: mustPrefix("198.18.0.0/24"), Dev: "vg-b", Src: src},        // connected (proto kernel)
		{Dst: mustPrefix("10.9.0.0/16"), Dev: "vg-b", Src: src},          // static
		{Dst: mustPrefix("fd00:9::/48"), Dev: "vg-b", Src: src},          // static
		{Dst: mustPrefix("10.8.0.0/16"), Dev: "vg-b", Src: src},          // free
		{Dst: mustPrefix("fd00:8::/48"), Dev: "vg-b", Src: src},          // free
		{Dst: mustPrefix("10.7.0.0/16"), Devs: []string{"lan0", "vg-b"}}, // free, multipath
	}
	if err := k.SetRoutes(want); err != nil {
		t.Fatal(err)
	}
	if got, w := conflictDsts(k.Conflicts()), []string{
		"0.0.0.0/0 wan0 boot", "10.9.0.0/16 lan0 static", "198.18.0.0/24 wan0 kernel", "fd00:9::/48 lan0 static",
	}; !reflect.DeepEqual(got, w) {
		t.Errorf("conflicts = %q, want %q", got, w)
	}
	ours, err := k.Routes()
	if err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, r := range ours {
		dsts = append(dsts, r.String())
	}
	if w := []string{"10.7.0.0/16 nexthop dev lan0 nexthop dev vg-b", "10.8.0.0/16 dev vg-b src 10.1.255.254", "fd00:8::/48 dev vg-b"}; !reflect.DeepEqual(dsts, w) {
		t.Errorf("vgate routes = %q, want %q", dsts, w)
	}
	if after := foreignDsts(t, k); !reflect.DeepEqual(after, before) {
		t.Errorf("foreign routes changed by SetRoutes:\nbefore %v\nafter  %v", before, after)
	}

	// Routes of other protocols appear for destinations vgate holds, at
	// other metrics (the same metric would have been refused by the
	// kernel): vgate's routes go, the others stay.
	ip("route", "add", "10.8.0.0/16", "dev", "lan0", "proto", "static", "metric", "100")
	ip("-6", "route", "add", "fd00:8::/48", "dev", "lan0", "proto", "static", "metric", "2048")
	before = foreignDsts(t, k)
	if err := k.SetRoutes(want); err != nil {
		t.Fatal(err)
	}
	if got := conflictDsts(k.Conflicts()); !slices.Contains(got, "10.8.0.0/16 lan0 static") || !slices.Contains(got, "fd00:8::/48 lan0 static") || len(got) != 6 {
		t.Errorf("conflicts = %q", got)
	}
	if ours, _ := k.Routes(); len(ours) != 1 || ours[0].Dst != mustPrefix("10.7.0.0/16") {
		t.Errorf("vgate routes = %v, want only 10.7.0.0/16", ours)
	}
	if after := foreignDsts(t, k); !reflect.DeepEqual(after, before) {
		t.Errorf("foreign routes changed:\nbefore %v\nafter  %v", before, after)
	}

	// Withdrawal removes vgate's routes only.
	if err := k.SetRoutes(nil); err != nil {
		t.Fatal(err)
	}
	if ours, _ := k.Routes(); len(ours) != 0 {
		t.Errorf("vgate routes after withdrawal = %v", ours)
	}
	if after := foreignDsts(t, k); !reflect.DeepEqual(after, before) {
		t.Errorf("foreign routes changed by the withdrawal:\nbefore %v\nafter  %v", before, after)
	}
	if len(k.Conflicts()) != 0 {
		t.Errorf("conflicts after withdrawal = %v", k.Conflicts())
	}
}

// TestAddNeverReplaces: a route that appears between the listing and the
// add (same key: destination and metric) is refused by the kernel, left in
// place, and recorded as a conflict.
func TestAddNeverReplaces(t *testing.T) {
	k, ip := testNS(t)
	ip("route", "add", "10.9.0.0/16", "dev", "lan0", "proto", "static")
	ip("-6", "route", "add", "fd00:9::/48", "dev", "lan0", "proto", "static")
	before := foreignDsts(t, k)
	stale := []route.Route{{Dst: mustPrefix("10.9.0.0/16"), Dev: "vg-b"}, {Dst: mustPrefix("fd00:9::/48"), Dev: "vg-b"}, {Dst: mustPrefix("10.8.0.0/16"), Dev: "vg-b"}}
	plan := PlanRoutes(nil, stale, nil) // planned without seeing the others
	if err := k.apply(plan); err != nil {
		t.Fatal(err)
	}
	if got, w := conflictDsts(k.Conflicts()), []string{"10.9.0.0/16 lan0 static", "fd00:9::/48 lan0 static"}; !reflect.DeepEqual(got, w) {
		t.Errorf("conflicts = %q, want %q", got, w)
	}
	if after := foreignDsts(t, k); !reflect.DeepEqual(after, before) {
		t.Errorf("foreign routes changed:\nbefore %v\nafter  %v", before, after)
	}
	if ours, _ := k.Routes(); len(ours) != 1 || ours[0].Dst != mustPrefix("10.8.0.0/16") {
		t.Errorf("vgate routes = %v, want only 10.8.0.0/16", ours)
	}
}

func TestConnectedPrefixes(t *testing.T) {
	k, ip := testNS(t)
	ip("addr", "add", "10.1.0.1/24", "dev", "lan0")
	ip("addr", "add", "10.1.0.9/24", "dev", "lan0") // same subnet: once
	ip("addr", "add", "fd00:1::1/64", "dev", "lan0", "nodad")
	ip("addr", "add", "10.5.0.1", "peer", "10.6.0.0/24", "dev", "wan1")
	ip("addr", "add", "10.2.0.1/24", "dev", "vg-b")    // vgate's: skipped
	ip("addr", "add", "10.1.255.254/32", "dev", "lo")  // tunnel address: host-only on lo
	ip("addr", "add", "192.0.2.0/28", "dev", "lo")     // a subnet on lo counts
	ip("addr", "add", "169.254.7.1/16", "dev", "wan1") // link-local: never routed
	got, err := k.ConnectedPrefixes(func(dev string) bool { return strings.HasPrefix(dev, "vg-") })
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, c := range got {
		s = append(s, c.Prefix.String()+" "+c.Dev)
	}
	want := []string{
		"10.1.0.0/24 lan0", "10.5.0.1/32 wan1", "10.6.0.0/24 wan1", "127.0.0.0/8 lo",
		"192.0.2.0/28 lo", "198.18.0.0/24 wan0", "fd00:1::/64 lan0", "fd18::/64 wan0",
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ConnectedPrefixes =\n%q\nwant\n%q", s, want)
	}
}
