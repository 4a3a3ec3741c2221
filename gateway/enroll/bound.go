package enroll

import (
	"fmt"
	"net/netip"

	"go4.org/netipx"
)

// MaxBound is the most prefixes a token carries in each list of its
// bound; longer lists are widened to fit (FitBound).
const MaxBound = 32

// Bound is what an invite lets the enrolled client's config hold, fixed by
// the gateway when it makes the invite and carried in the token: the
// laptop takes nothing outside it from the gateway's answer, so a
// malicious or taken-over enrollment server cannot route the laptop's
// other traffic into its tunnel. Pool is where the client's addresses
// come from (point_to_site.address_pool); Routes is what it may route to
// the gateway (its groups' allow lists, the DNS servers, and the pool for
// interconnected groups: what the gateway puts in the config's AllowedIPs).
type Bound struct {
	Pool   []netip.Prefix `json:"pool"`
	Routes []netip.Prefix `json:"routes"`
}

func (b Bound) String() string {
	return fmt.Sprintf("pool %v, routes %v", b.Pool, b.Routes)
}

// FitBound is the bound of pool and routes as a token carries it: each
// list merged, then widened (its longest prefixes replaced by their
// parents, step by step) until it has at most MaxBound prefixes. It
// covers at least what pool and routes cover.
func FitBound(pool, routes []netip.Prefix) Bound {
	return Bound{Pool: fit(pool), Routes: fit(routes)}
}

func fit(ps []netip.Prefix) []netip.Prefix {
	out := merge(ps)
	for len(out) > MaxBound {
		longest := 0
		for _, p := range out {
			longest = max(longest, p.Bits())
		}
		for i, p := range out {
			if p.Bits() == longest {
				out[i], _ = p.Addr().Prefix(longest - 1)
			}
		}
		out = merge(out)
	}
	return out
}

// merge is ps as the fewest prefixes covering the same addresses.
func merge(ps []netip.Prefix) []netip.Prefix {
	var b netipx.IPSetBuilder
	for _, p := range ps {
		b.AddPrefix(p.Masked())
	}
	s, _ := b.IPSet()
	return s.Prefixes()
}

// Outside returns the prefixes of ps that bound does not cover, or nil.
func Outside(ps, bound []netip.Prefix) []netip.Prefix {
	var b netipx.IPSetBuilder
	for _, p := range bound {
		b.AddPrefix(p.Masked())
	}
	s, _ := b.IPSet()
	var out []netip.Prefix
	for _, p := range ps {
		if !p.IsValid() || !s.ContainsPrefix(p.Masked()) {
			out = append(out, p)
		}
	}
	return out
}

// Check reports why a config with routes and pool would not fit the
// invite's bound b (the gateway's config changed since the invite was
// made), or nil.
func (b Bound) Check(pool, routes []netip.Prefix) error {
	if out := Outside(routes, b.Routes); len(out) > 0 {
		return fmt.Errorf("its groups now route %v, outside the invite's routes %v", out, b.Routes)
	}
	if out := Outside(pool, b.Pool); len(out) > 0 {
		return fmt.Errorf("the address pool is now %v, outside the invite's pool %v", out, b.Pool)
	}
	return nil
}
