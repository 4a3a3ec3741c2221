package routing

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestImportSeen(t *testing.T) {
	mp := netip.MustParsePrefix
	im := Import{
		Protected: []Protected{{Prefix: mp("10.9.0.0/16"), Owner: "local address space"}},
		Allowed:   map[string][]netip.Prefix{"a": {mp("10.1.0.0/16"), mp("10.7.0.0/16")}, "b": {mp("10.1.0.0/16")}},
		Ingress: map[string][]Translation{
			"a": {{Internal: mp("10.1.0.0/16"), External: mp("100.65.0.0/16")}, {Internal: mp("10.7.4.0/24"), External: mp("100.67.4.0/24")}},
			"b": {{Internal: mp("10.1.0.0/16"), External: mp("100.66.0.0/16")}},
		},
	}
	for _, c := range []struct {
		nb, p, seen string
		translated  bool
		reason      string // "" accepted
	}{
		{"a", "10.1.4.0/24", "100.65.4.0/24", true, ""},
		{"a", "10.1.0.0/16", "100.65.0.0/16", true, ""},
		{"b", "10.1.0.0/16", "100.66.0.0/16", true, ""},
		{"a", "10.7.4.128/25", "100.67.4.128/25", true, ""},
		{"a", "10.7.9.0/24", "10.7.9.0/24", false, ""},                   // untouched
		{"a", "10.7.0.0/16", "", false, "not translatable as one route"}, // contains an internal
		{"a", "10.2.0.0/16", "", false, "outside the peering's address_spaces"},
		{"c", "100.65.1.0/24", "", false, "overlaps peering a's nat.ingress external 100.65.0.0/16"},
		{"c", "100.0.0.0/8", "", false, "overlaps peering a's nat.ingress external"},
		{"c", "10.9.1.0/24", "", false, "overlaps local address space"},
		{"c", "10.3.0.0/16", "10.3.0.0/16", false, ""},
	} {
		seen, tr, ok, reason := im.Seen(c.nb, mp(c.p))
		if ok != (c.reason == "") || !strings.Contains(reason, c.reason) {
			t.Errorf("%s %s: ok=%v reason %q, want %q", c.nb, c.p, ok, reason, c.reason)
			continue
		}
		if ok && (seen != mp(c.seen) || tr != c.translated) {
			t.Errorf("%s %s: seen %v translated %v, want %s %v", c.nb, c.p, seen, tr, c.seen, c.translated)
		}
		if ok2, _ := im.Check(c.nb, mp(c.p)); ok2 != ok {
			t.Errorf("%s %s: Check %v, Seen %v", c.nb, c.p, ok2, ok)
		}
	}
	// The ambiguous case: a's own route inside its external, untranslated.
	im.Allowed["a"] = append(im.Allowed["a"], mp("100.65.0.0/16"))
	if _, _, ok, reason := im.Seen("a", mp("100.65.1.0/24")); ok || !strings.Contains(reason, "nat.ingress external 100.65.0.0/16") {
		t.Errorf("ambiguous route accepted (%q)", reason)
	}
}

// GoBGP refuses what a neighbor's ingress rules translate (the gateway
// imports those itself) and every ingress external from everyone.
func TestNATPolicySets(t *testing.T) {
	mp := netip.MustParsePrefix
	n := Neighbor{Name: "a", Address: netip.MustParseAddr("100.65.255.254"),
		Ingress: []Translation{{Internal: mp("10.1.0.0/16"), External: mp("100.65.0.0/16")}},
		Hide:    []netip.Prefix{mp("100.65.0.0/16")}}
	im := Import{Ingress: map[string][]Translation{"a": n.Ingress}}
	sets, imp, exp := policies(im, []Neighbor{n}, 65009, false)
	byName := map[string][]prefixEntry{}
	for _, s := range sets {
		for _, p := range s.Prefixes {
			byName[s.Name] = append(byName[s.Name], prefixEntry{mp(p.IpPrefix), int(p.MaskLengthMin), int(p.MaskLengthMax)})
		}
	}
	for _, c := range []struct {
		set, p string
		want   bool
	}{
		{"nat-a-4", "10.1.2.0/24", true}, {"nat-a-4", "10.0.0.0/8", true}, {"nat-a-4", "10.2.0.0/16", false},
		{"protected4", "100.65.3.0/24", true}, {"protected4", "100.66.0.0/16", false},
		{"hide-a-4", "100.65.0.0/16", true}, {"hide-a-4", "100.64.0.0/10", true}, {"hide-a-4", "10.9.0.0/16", false},
	} {
		if got := matchEntries(byName[c.set], mp(c.p)); got != c.want {
			t.Errorf("%s matches %s = %v, want %v", c.set, c.p, got, c.want)
		}
	}
	var names []string
	for _, s := range imp.Statements {
		names = append(names, s.Name)
	}
	for _, s := range exp.Statements {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "peer-a-nat-4") || !strings.Contains(got, "peer-a-hide-4") {
		t.Errorf("statements: %s", got)
	}
}

// A peer behind NAT rules writes its request's payload as the addresses
// cross the tunnel; with the wire addresses set it still reads as the
// peer's request, without them it does not.
func TestProbeHandleNAT(t *testing.T) {
	src, seen := netip.MustParseAddr("10.9.255.254"), netip.MustParseAddr("100.65.255.254")
	wirePeer, wireLocal := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("100.99.255.254")
	for _, wired := range []bool{false, true} {
		var events []ProbeEvent
		p := testProber(src, func(ev ProbeEvent) { events = append(events, ev) })
		tg := ProbeTarget{Address: seen, Interval: 50 * time.Millisecond, Multiplier: 8}
		if wired {
			tg.PeerWire, tg.LocalWire = wirePeer, wireLocal
		}
		p.targets[seen] = &probeTarget{name: "west", ifindex: testIfindex, ProbeTarget: tg}
		var b [probeLen]byte
		putProbe(b[:], false, 7, 1, time.Now(), wirePeer.As16(), wireLocal.As16(), 65001, 65009, false)
		p.handle(v4Packet(b[:]), fromTunnel(seen), time.Now())
		if got := len(events) == 1 && events[0].Vgate; got != wired {
			t.Errorf("wire addresses set %v: learned vgate %v (%+v)", wired, got, events)
		}
	}
}

// A request this end sends names the wire addresses, and its reply (the
// same payload, from the peer's seen address) is taken.
func TestProbeReplyNAT(t *testing.T) {
	src, seen := netip.MustParseAddr("10.9.255.254"), netip.MustParseAddr("100.65.255.254")
	wirePeer, wireLocal := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("100.99.255.254")
	p := testProber(src, func(ProbeEvent) {})
	tg := &probeTarget{name: "west", ifindex: testIfindex, ProbeTarget: ProbeTarget{Address: seen, Interval: 50 * time.Millisecond, Multiplier: 8, PeerWire: wirePeer, LocalWire: wireLocal}}
	p.targets[seen] = tg
	now := time.Now()
	p.sendTo(tg, now)
	m, ok := parseProbe(v4Packet(p.sendBuf[:]), false)
	if !ok || m.from != wireLocal || m.to != wirePeer {
		t.Fatalf("request payload from %s to %s, want %s to %s", m.from, m.to, wireLocal, wirePeer)
	}
	b := p.sendBuf
	b[0] = 0 // the peer's kernel echoes it
	p.handle(v4Packet(b[:]), fromTunnel(seen), now.Add(time.Millisecond))
	if tg.lastReply.IsZero() {
		t.Fatal("the reply was not taken")
	}
}
