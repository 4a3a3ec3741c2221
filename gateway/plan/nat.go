package plan

import (
	"net/netip"
	"slices"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/nat"
	"github.com/vgate-project/vgate/routing/spec"
)

// NAT in the BGP plan (docs/nat.md). GoBGP keeps a translating peer's
// routes in the peer's numbering and refuses them (routing.Neighbor
// Ingress); the speaker's snapshot reports them translated, and here
// they are originated as this side sees them, so other peers learn the
// translated prefix, never the peer's own. Toward a peer with egress
// rules, this side's prefixes inside an egress internal are hidden and
// their images originated for that peer alone.

// wireAddrs are this gateway's and p's tunnel addresses as they cross
// p's tunnel: through p's egress rules and back through its ingress
// rules. Both ends of a session compare the same pair (routing.Passive).
func wireAddrs(cfg *config.Config, p *config.Peering) (local, peer netip.Addr) {
	r := p.NATRules()
	local, _ = nat.MapAddr(r.Egress, cfg.TunnelAddress, true)
	peer = p.PeerTunnelAddress()
	if p.BGP != nil {
		peer = p.BGP.Address
	}
	peer, _ = nat.MapAddr(r.Ingress, peer, false)
	return local, peer
}

// natBGP adds NAT to the speaker's state: each neighbor's ingress rules,
// the prefixes it must not be sent (its own translated space; this
// side's prefixes its egress rules show under other ones; other
// neighbors' egress images), and the originated translations.
func natBGP(in Input, st *spec.State) {
	cfg := in.Config
	byName := map[string]*config.Peering{}
	rules := false
	for i := range cfg.Peerings {
		byName[cfg.Peerings[i].Name] = &cfg.Peerings[i]
		rules = rules || cfg.Peerings[i].BGP != nil && !cfg.Peerings[i].NATRules().Empty()
	}
	if !rules {
		return
	}
	// Routes a translating neighbor gave, as this side sees them.
	var translated []netip.Prefix
	for _, r := range withoutDead(in.Learned, in.ProbeDead) {
		if r.Accepted && r.PeerPrefix.IsValid() {
			if p := byName[r.Neighbor]; p != nil && p.BGP != nil && len(p.NATRules().Ingress) > 0 {
				translated = append(translated, r.Prefix.Masked())
			}
		}
	}
	// What this side advertises before egress rules: its originated
	// prefixes, the translated ones and the best paths learned.
	advertised := append(slices.Clone(st.Originate), translated...)
	for _, r := range in.Learned {
		if r.Accepted && r.Best && !r.PeerPrefix.IsValid() && !in.ProbeDead[r.Neighbor] {
			advertised = append(advertised, r.Prefix.Masked())
		}
	}
	images := map[string][]netip.Prefix{}
	for i := range st.Neighbors {
		n := &st.Neighbors[i]
		r := byName[n.Name].NATRules()
		for _, x := range r.Ingress {
			n.Ingress = append(n.Ingress, spec.Translation{Internal: x.Internal, External: x.External})
			n.Hide = append(n.Hide, x.External)
		}
		for _, e := range r.Egress {
			n.Hide = append(n.Hide, e.Internal)
			for _, a := range advertised {
				if !e.Internal.Overlaps(a) {
					continue
				}
				part := a
				if e.Internal.Bits() > a.Bits() {
					part = e.Internal
				}
				img, _ := nat.MapPrefix([]nat.Rule{e}, part, true)
				images[n.Name] = append(images[n.Name], img)
			}
		}
	}
	st.Originate = append(st.Originate, translated...)
	for name, imgs := range images {
		st.Originate = append(st.Originate, imgs...)
		for i := range st.Neighbors {
			if n := &st.Neighbors[i]; n.Name != name {
				n.Hide = append(n.Hide, imgs...)
			}
		}
	}
	st.Originate = dedupSorted(st.Originate)
	for i := range st.Neighbors {
		st.Neighbors[i].Hide = dedupSorted(st.Neighbors[i].Hide)
	}
}

func dedupSorted(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return ps
	}
	out := slices.Clone(ps)
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out)
}

// peerPrefix is dst as peering name's peer numbers it, when its ingress
// rules translate dst (zero otherwise): `vgate routes` shows it beside.
func peerPrefix(cfg *config.Config, name string, dst netip.Prefix) netip.Prefix {
	for i := range cfg.Peerings {
		if p := &cfg.Peerings[i]; p.Name == name {
			if q, c := nat.MapPrefix(p.NATRules().Ingress, dst, false); c == nat.Whole {
				return q
			}
		}
	}
	return netip.Prefix{}
}
