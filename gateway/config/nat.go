package config

import (
	"errors"
	"fmt"
	"net/netip"

	"go4.org/netipx"

	"github.com/vgate-project/vgate/nat"
	"github.com/vgate-project/vgate/overlap"
)

// NAT is a peering's 1:1 prefix translation (docs/nat.md), for networks
// whose addresses overlap. Without it nothing is translated and
// overlapping spaces are refused.
type NAT struct {
	// Ingress rules show the peer's addresses to this side: internal is
	// a prefix as the peer numbers it (inside the peering's
	// address_spaces), external the prefix this side sees instead.
	Ingress []NATRule `yaml:"ingress,omitempty" json:"ingress,omitempty"`
	// Egress rules show this side's addresses to the peer: internal is a
	// prefix as this side numbers it, external the prefix the peer sees.
	Egress []NATRule `yaml:"egress,omitempty" json:"egress,omitempty"`
}

// NATRule maps internal to external (same family and length, host bits
// kept), both directions of a flow.
type NATRule struct {
	Internal netip.Prefix `yaml:"internal" json:"internal"`
	External netip.Prefix `yaml:"external" json:"external"`
}

// NATRules returns the peering's rules in the form the data plane and
// the nat package take (empty without a nat section).
func (p *Peering) NATRules() nat.Rules {
	var r nat.Rules
	if p.NAT == nil {
		return r
	}
	for _, x := range p.NAT.Ingress {
		r.Ingress = append(r.Ingress, nat.Rule{Internal: x.Internal, External: x.External})
	}
	for _, x := range p.NAT.Egress {
		r.Egress = append(r.Egress, nat.Rule{Internal: x.Internal, External: x.External})
	}
	return r
}

// Seen returns prefixes of the peer, as the peer numbers them (its
// address_spaces, static_routes, learned routes), as this side sees them
// through the peering's ingress rules; partly translated prefixes come
// out in pieces (nat.MapSet). Without ingress rules it returns ps.
func (p *Peering) Seen(ps []netip.Prefix) []netip.Prefix {
	r := p.NATRules()
	if len(r.Ingress) == 0 {
		return ps
	}
	return nat.MapSet(r.Ingress, ps, true)
}

// Why a nat section is refused (errors.Is on the FieldError); a rule that
// cannot be compiled is a *nat.RuleError, a translated space that overlaps
// another an overlap.Conflict.
var (
	// ErrNATIPsec: IPsec peerings cannot translate (no per-peering seam).
	ErrNATIPsec = errors.New("nat rules are not supported on ipsec peerings")
	// ErrNATNotCovered: a rule's internal prefix is outside the addresses
	// its list translates.
	ErrNATNotCovered = errors.New("nat rule outside the addresses it translates")
	// ErrNATTunnelAddress: the peer's tunnel address is written as the
	// peer numbers it, though an ingress rule shows it to this side under
	// another address.
	ErrNATTunnelAddress = errors.New("the peer's tunnel address is written as the peer numbers it")
)

// natRule is a usable rule with where it is in the file.
type natRule struct {
	nat.Rule
	list  string
	index int
	path  string // peerings[i].nat.<list>[index]
}

func (r natRule) name(d *doc) string {
	if l := d.lineOf(r.path); l > 0 {
		return fmt.Sprintf("nat.%s[%d] (line %d)", r.list, r.index, l)
	}
	return fmt.Sprintf("nat.%s[%d]", r.list, r.index)
}

// checkNAT checks a peering's nat section on its own: not on IPsec,
// canonical prefixes, rules the nat package compiles (nat.Rules.Check),
// ingress internals inside the peering's address spaces (or its real
// tunnel address). It returns the rules fit for the overlap checks.
func checkNAT(d *doc, base string, p *Peering, spaces []netip.Prefix, peerAddr netip.Addr) (ingress, egress []natRule) {
	if p.NAT == nil || len(p.NAT.Ingress)+len(p.NAT.Egress) == 0 {
		return nil, nil
	}
	if p.IsIPsec() {
		d.errorw(base+".nat", fmt.Errorf("%w: charon's userspace ESP carries every IPsec peering on one TUN, so vgate has no seam of this peering's own to translate at; translate on the device, or use a wireguard peering", ErrNATIPsec))
		return nil, nil
	}
	bad := map[string]bool{}
	for _, l := range []struct {
		name  string
		rules []NATRule
	}{{nat.Ingress, p.NAT.Ingress}, {nat.Egress, p.NAT.Egress}} {
		for i, r := range l.rules {
			path := fmt.Sprintf("%s.nat.%s[%d]", base, l.name, i)
			for _, side := range []struct {
				name string
				p    netip.Prefix
			}{{"internal", r.Internal}, {"external", r.External}} {
				if err := overlap.Canonical(side.p); err != nil {
					if !side.p.IsValid() && !d.present(path+"."+side.name) {
						d.errorf(path+"."+side.name, "required: a prefix such as 10.1.0.0/16")
					} else {
						d.errorf(path+"."+side.name, "%v", err)
					}
					bad[path] = true
				}
			}
		}
	}
	rules := p.NATRules()
	var es nat.Errors
	if errors.As(rules.Check(), &es) {
		for _, e := range es {
			path := fmt.Sprintf("%s.nat.%s[%d]", base, e.List, e.Index)
			if e.Code == nat.ErrTooMany {
				d.errorw(fmt.Sprintf("%s.nat.%s", base, e.List), e)
				bad[e.List] = true
				continue
			}
			if errors.Is(e, nat.ErrPrefix) { // reported above, more precisely
				bad[path] = true
				continue
			}
			err := error(e)
			if l := d.lineOf(fmt.Sprintf("%s.nat.%s[%d]", base, e.List, e.Other)); e.Code == nat.ErrOverlap && l > 0 {
				err = fmt.Errorf("%w (%s[%d] is at line %d)", e, e.List, e.Other, l)
			}
			d.errorw(path, err)
			bad[path] = true
		}
	}
	collect := func(list string, rs []nat.Rule) []natRule {
		var out []natRule
		for i, r := range rs {
			path := fmt.Sprintf("%s.nat.%s[%d]", base, list, i)
			if !bad[path] && !bad[list] {
				out = append(out, natRule{Rule: r, list: list, index: i, path: path})
			}
		}
		return out
	}
	ingress, egress = collect(nat.Ingress, rules.Ingress), collect(nat.Egress, rules.Egress)

	// An ingress rule translates the peer's own addresses: its spaces,
	// and its tunnel address (written as this side sees it).
	var real netipx.IPSetBuilder
	for _, q := range spaces {
		real.AddPrefix(q)
	}
	if peerAddr.IsValid() {
		a, _ := nat.MapAddr(rulesOf(ingress), peerAddr, false)
		real.Add(a)
	}
	covered, _ := real.IPSet()
	kept := ingress[:0]
	for _, r := range ingress {
		if !covered.ContainsPrefix(r.Internal) {
			d.errorw(r.path+".internal", fmt.Errorf("%w: %s is not inside this peering's address_spaces %v (an ingress rule translates the peer's own addresses, as the peer numbers them)", ErrNATNotCovered, r.Internal, spaces))
			continue
		}
		kept = append(kept, r)
	}
	return kept, egress
}

func rulesOf(rs []natRule) []nat.Rule {
	out := make([]nat.Rule, len(rs))
	for i, r := range rs {
		out[i] = r.Rule
	}
	return out
}

// addSeen adds a peering's address spaces to all as this side sees them:
// untouched, or, with ingress rules, the parts no rule translates and
// each rule's external prefix. It reports a translated prefix that
// overlaps an untranslated part of the same peering (all does not: they
// share the peering's domain), and the peer's tunnel address written as
// the peer numbers it. It returns the seen spaces.
func addSeen(d *doc, all *ownedSet, base, owner, domain string, spaces []netip.Prefix, paths []string, ingress []natRule, peerAddr netip.Addr, peerPath string) []netip.Prefix {
	if len(ingress) == 0 {
		for j, q := range spaces {
			all.add(paths[j], overlap.Owned{Prefix: q, Owner: owner, Domain: domain})
		}
		return spaces
	}
	var own ownedSet
	var seen []netip.Prefix
	for j, q := range spaces {
		var b netipx.IPSetBuilder
		b.AddPrefix(q)
		for _, r := range ingress {
			b.RemovePrefix(r.Internal)
		}
		set, _ := b.IPSet()
		rest := set.Prefixes()
		if len(rest) == 1 && rest[0] == q {
			all.add(paths[j], overlap.Owned{Prefix: q, Owner: owner, Domain: domain})
			own.add(paths[j], overlap.Owned{Prefix: q, Owner: owner})
			seen = append(seen, q)
			continue
		}
		for _, piece := range rest {
			o := fmt.Sprintf("%s, untranslated part of %s", owner, q)
			all.add(paths[j], overlap.Owned{Prefix: piece, Owner: o, Domain: domain})
			own.add(paths[j], overlap.Owned{Prefix: piece, Owner: o})
			seen = append(seen, piece)
		}
	}
	untranslated := len(own.entries)
	for _, r := range ingress {
		o := fmt.Sprintf("%s, %s: %s as this side sees it", owner, r.name(d), r.Internal)
		all.add(r.path+".external", overlap.Owned{Prefix: r.External, Owner: o, Domain: domain})
		own.add(r.path+".external", overlap.Owned{Prefix: r.External, Owner: o})
		seen = append(seen, r.External)
	}
	// Externals among themselves are nat.Rules.Check's; here only an
	// external against an untranslated part.
	for _, c := range overlap.Conflicts(own.entries) {
		if c.Err == nil && (c.I < untranslated) != (c.J < untranslated) {
			ext, other := c.B, c.A
			at := own.paths[c.J]
			if c.I >= untranslated {
				ext, other, at = c.A, c.B, own.paths[c.I]
			}
			d.errorw(at, overlap.Conflict{A: ext, B: other})
		}
	}
	if peerAddr.IsValid() {
		for _, r := range ingress {
			if r.Internal.Contains(peerAddr) && !inAny(peerAddr, seen) {
				a, _ := nat.MapAddr([]nat.Rule{r.Rule}, peerAddr, true)
				d.errorw(peerPath, fmt.Errorf("%w: %s is inside %s internal %s; write the peer's tunnel address as this side sees it: %s", ErrNATTunnelAddress, peerAddr, r.name(d), r.Internal, a))
			}
		}
	}
	return seen
}

// natView is one peering as the view checks need it.
type natView struct {
	base, name, owner string
	real              []netip.Prefix // its address_spaces, as the peer numbers them
	realPaths         []string
	seen              []netip.Prefix // as this side sees them (with its tunnel address)
	ingress, egress   []natRule
}

// checkViews applies the overlap invariant to what each peering with
// rules sees of this side (all has applied it to what this side sees):
// egress internals must be this side's addresses (its spaces, tunnel
// address, point-to-site pool, or what it reaches through its other
// peerings), and in the peer's view, after the egress rules, this side's
// own addresses must not overlap the peer's own translated ones, and an
// egress external must not overlap the peer's addresses or anything it
// sees of this side untranslated.
func checkViews(c *Config, d *doc, views []natView) {
	var ours []overlap.Owned // this side's own, as it numbers them
	for _, q := range c.AddressSpaces {
		if overlap.Canonical(q) == nil {
			ours = append(ours, overlap.Owned{Prefix: q, Owner: "local address_spaces"})
		}
	}
	if ta := c.TunnelAddress; ta.IsValid() && checkAddr(ta) == "" && !inAny(ta, c.AddressSpaces) {
		ours = append(ours, overlap.Owned{Prefix: hostPrefix(ta), Owner: "tunnel_address"})
	}
	if s := c.PointToSite; s != nil {
		for _, q := range s.AddressPool {
			if overlap.Canonical(q) == nil {
				ours = append(ours, overlap.Owned{Prefix: q, Owner: "point_to_site.address_pool"})
			}
		}
	}
	for k, v := range views {
		if len(v.ingress)+len(v.egress) == 0 {
			continue
		}
		var transit []overlap.Owned // what this side reaches through its other peerings
		for j, o := range views {
			if j == k {
				continue
			}
			for _, q := range o.seen {
				transit = append(transit, overlap.Owned{Prefix: q, Owner: o.owner})
			}
		}
		var reach netipx.IPSetBuilder
		for _, o := range append(append([]overlap.Owned(nil), ours...), transit...) {
			reach.AddPrefix(o.Prefix)
		}
		reachable, _ := reach.IPSet()
		var egress []natRule
		for _, r := range v.egress {
			if !reachable.ContainsPrefix(r.Internal) {
				d.errorw(r.path+".internal", fmt.Errorf("%w: %s is not inside this side's address spaces (address_spaces, tunnel_address, point_to_site.address_pool) nor what it reaches through its other peerings (an egress rule translates this side's addresses, as this side numbers them)", ErrNATNotCovered, r.Internal))
				continue
			}
			egress = append(egress, r)
		}
		checkPeerView(d, v, ours, transit, egress)
	}
}

// The kinds of entry in a peer's view, and which pairs of them conflict.
const (
	kindOwnTranslated = iota // the peer's addresses an ingress rule translates
	kindOwn                  // all the peer's addresses
	kindOurs                 // this side's own addresses, untranslated
	kindTransit              // what this side reaches elsewhere, untranslated
	kindExternal             // an egress rule's external prefix
)

// reported pairs: where this side's own addresses overlap the peer's
// (all already reports those that are not translated on the peer's side),
// and every overlap of an egress external.
func reported(a, b int) bool {
	if a > b {
		a, b = b, a
	}
	switch {
	case a == kindOwnTranslated && b == kindOurs:
		return true
	case b == kindExternal:
		return a == kindOwn || a == kindOurs || a == kindTransit
	}
	return false
}

// checkPeerView applies the overlap invariant to what peering v sees.
func checkPeerView(d *doc, v natView, ours, transit []overlap.Owned, egress []natRule) {
	var set ownedSet
	var kinds []int
	add := func(path string, o overlap.Owned, kind int) {
		set.add(path, o)
		kinds = append(kinds, kind)
	}
	asPeer := fmt.Sprintf("as peering %q sees it", v.name)
	for j, q := range v.real {
		add(v.realPaths[j], overlap.Owned{Prefix: q, Owner: fmt.Sprintf("peering %q address_spaces: the peer's own", v.name)}, kindOwn)
	}
	for _, r := range v.ingress {
		add(r.path+".internal", overlap.Owned{Prefix: r.Internal, Owner: fmt.Sprintf("peering %q, %s internal: the peer's own", v.name, r.name(d))}, kindOwnTranslated)
	}
	untranslated := func(os []overlap.Owned, kind int) {
		for _, o := range os {
			var b netipx.IPSetBuilder
			b.AddPrefix(o.Prefix)
			for _, r := range egress {
				b.RemovePrefix(r.Internal)
			}
			s, _ := b.IPSet()
			for _, piece := range s.Prefixes() {
				add("", overlap.Owned{Prefix: piece, Owner: o.Owner + ", " + asPeer}, kind)
			}
		}
	}
	untranslated(ours, kindOurs)
	untranslated(transit, kindTransit)
	for _, r := range egress {
		add(r.path+".external", overlap.Owned{Prefix: r.External, Owner: fmt.Sprintf("this side's %s as peering %q sees it, %s", r.Internal, v.name, r.name(d))}, kindExternal)
	}
	for _, c := range overlap.Conflicts(set.entries) {
		if c.Err != nil || !reported(kinds[c.I], kinds[c.J]) {
			continue
		}
		// Reported at the peering's own entry or the egress rule, naming
		// it first.
		at, first, second := c.J, c.B, c.A
		if set.paths[c.J] == "" || (kinds[c.I] == kindExternal) || (kinds[c.I] == kindOwnTranslated) {
			at, first, second = c.I, c.A, c.B
		}
		var hint string
		switch ki, kj := kinds[c.I], kinds[c.J]; {
		case ki != kindExternal && kj != kindExternal:
			hint = fmt.Sprintf("peering %q would see this side's addresses as its own; a nat.egress rule can show them to it under another prefix", v.name)
		case ki == kindOwn || kj == kindOwn:
			hint = fmt.Sprintf("peering %q would see this side's addresses as its own; choose another external prefix", v.name)
		default:
			hint = fmt.Sprintf("peering %q could not tell the two apart; choose another external prefix", v.name)
		}
		d.errorw(set.paths[at], fmt.Errorf("%w (%s)", overlap.Conflict{A: first, B: second}, hint))
	}
}

// SeenAllowedIPs is AllowedIPs as this side sees it: the static spaces
// through the ingress rules (Seen) and the peer's tunnel address, which
// is written as this side sees it already. These are the kernel routes
// into the peering's tunnel and the sources the TUN seam's check accepts
// after the inbound translation (docs/nat.md). Without ingress rules it
// is AllowedIPs.
func (p *Peering) SeenAllowedIPs() []netip.Prefix {
	r := p.NATRules()
	if len(r.Ingress) == 0 {
		return p.AllowedIPs()
	}
	out := p.Seen(p.StaticSpaces())
	if a := p.PeerTunnelAddress(); a.IsValid() && !inAny(a, out) {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}
