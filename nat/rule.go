package nat

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"go4.org/netipx"
)

// Rule maps the addresses of one prefix to those of another of the same
// family and length, host bits kept: Internal is the prefix as its owner
// numbers it, External how the other side of the tunnel sees it.
type Rule struct {
	Internal netip.Prefix
	External netip.Prefix
}

func (r Rule) String() string { return r.Internal.String() + " as " + r.External.String() }

// Rules are one peering's rules. Ingress rules translate the peer's
// addresses (Internal: as the peer numbers them; External: as this side
// sees them); egress rules translate this side's addresses (Internal: as
// this side numbers them; External: as the peer sees them).
type Rules struct {
	Ingress []Rule
	Egress  []Rule
}

// Empty reports whether there is no rule at all.
func (r Rules) Empty() bool { return len(r.Ingress) == 0 && len(r.Egress) == 0 }

// Equal reports whether r and o are the same rules in the same order.
func (r Rules) Equal(o Rules) bool {
	return slices.Equal(r.Ingress, o.Ingress) && slices.Equal(r.Egress, o.Egress)
}

// Reverse is the rules with Internal and External swapped: its Translator
// undoes the translation of r's, direction by direction.
func (r Rules) Reverse() Rules {
	swap := func(rs []Rule) []Rule {
		out := make([]Rule, len(rs))
		for i, x := range rs {
			out[i] = Rule{Internal: x.External, External: x.Internal}
		}
		return out
	}
	return Rules{Ingress: swap(r.Ingress), Egress: swap(r.Egress)}
}

// Len is the number of rules; rule IDs (Result) run from 0 to Len()-1,
// ingress rules first.
func (r Rules) Len() int { return len(r.Ingress) + len(r.Egress) }

// ByID returns the list ("ingress" or "egress") and index of a rule ID.
func (r Rules) ByID(id int) (list string, index int) {
	if id < len(r.Ingress) {
		return Ingress, id
	}
	return Egress, id - len(r.Ingress)
}

// The names of the two lists, as the config spells them.
const (
	Ingress = "ingress"
	Egress  = "egress"
)

// MaxRules is the most rules one list (ingress or egress) may hold.
const MaxRules = 1024

// Why a rule is refused (errors.Is on a *RuleError).
var (
	ErrPrefix   = errors.New("not a canonical prefix")
	ErrFamily   = errors.New("internal and external are of different IP families")
	ErrLength   = errors.New("internal and external have different lengths")
	ErrIdentity = errors.New("internal and external are the same prefix")
	ErrOverlap  = errors.New("rules of one list overlap")
	ErrTooMany  = errors.New("too many rules")
)

// RuleError is one refused rule: List[Index], and for ErrOverlap the rule
// List[Other] it overlaps on the Side ("internal" or "external").
type RuleError struct {
	List  string
	Index int
	Rule  Rule
	Code  error // one of the Err values above
	Side  string
	Other int
	With  Rule
}

func (e *RuleError) Error() string {
	switch e.Code {
	case ErrOverlap:
		a, b := e.Rule.Internal, e.With.Internal
		if e.Side == "external" {
			a, b = e.Rule.External, e.With.External
		}
		rel := "overlaps"
		switch {
		case a == b:
			rel = "equals"
		case a.Bits() < b.Bits():
			rel = "contains"
		case a.Bits() > b.Bits():
			rel = "is inside"
		}
		return fmt.Sprintf("%s %s %s %s of %s[%d] (%s): the rules of one list must not overlap, or an address would have two translations", e.Side, a, rel, b, e.List, e.Other, e.With)
	case ErrFamily, ErrLength, ErrIdentity:
		return fmt.Sprintf("%s: %v (a rule maps each address of internal to the address of external with the same host bits)", e.Rule, e.Code)
	case ErrTooMany:
		return fmt.Sprintf("%v: at most %d per list", e.Code, MaxRules)
	}
	return fmt.Sprintf("%s: %v", e.Rule, e.Code)
}

func (e *RuleError) Unwrap() error { return e.Code }

// Errors is every problem Check found.
type Errors []*RuleError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = fmt.Sprintf("nat.%s[%d]: %v", e.List, e.Index, e)
	}
	return strings.Join(s, "; ")
}

func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Check reports every rule that cannot be translated: a prefix that is
// not canonical (invalid, host bits set, IPv4-mapped IPv6), internal and
// external of different families or lengths or the same prefix, and rules
// of one list whose internal prefixes or whose external prefixes overlap
// (an address would have two translations, or two addresses one). The
// error is nil or an Errors.
func (r Rules) Check() error {
	var es Errors
	for _, l := range []struct {
		name  string
		rules []Rule
	}{{Ingress, r.Ingress}, {Egress, r.Egress}} {
		if len(l.rules) > MaxRules {
			es = append(es, &RuleError{List: l.name, Index: MaxRules, Rule: l.rules[MaxRules], Code: ErrTooMany})
			continue
		}
		ok := make([]int, 0, len(l.rules))
		for i, x := range l.rules {
			if c := checkRule(x); c != nil {
				es = append(es, &RuleError{List: l.name, Index: i, Rule: x, Code: c})
				continue
			}
			ok = append(ok, i)
		}
		es = append(es, overlaps(l.name, l.rules, ok, "internal")...)
		es = append(es, overlaps(l.name, l.rules, ok, "external")...)
	}
	if len(es) == 0 {
		return nil
	}
	slices.SortStableFunc(es, func(a, b *RuleError) int {
		if c := cmp.Compare(a.List, b.List); c != 0 {
			return -c // ingress before egress
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return es
}

func checkRule(x Rule) error {
	for _, p := range []netip.Prefix{x.Internal, x.External} {
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return ErrPrefix
		}
	}
	switch {
	case x.Internal.Addr().Is4() != x.External.Addr().Is4():
		return ErrFamily
	case x.Internal.Bits() != x.External.Bits():
		return ErrLength
	case x.Internal == x.External:
		return ErrIdentity
	}
	return nil
}

// overlaps reports each rule (of the indexes ok) whose prefix on side
// overlaps that of an earlier rule, naming the earlier one.
func overlaps(list string, rules []Rule, ok []int, side string) []*RuleError {
	pick := func(i int) netip.Prefix {
		if side == "internal" {
			return rules[i].Internal
		}
		return rules[i].External
	}
	// Sorted by address then length, a prefix is followed by those it
	// contains.
	idx := slices.Clone(ok)
	slices.SortFunc(idx, func(a, b int) int {
		if c := pick(a).Compare(pick(b)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var out []*RuleError
	for k, i := range idx {
		for _, j := range idx[k+1:] {
			pi, pj := pick(i), pick(j)
			if pi.Addr().Is4() != pj.Addr().Is4() || !pi.Contains(pj.Addr()) {
				break
			}
			later, earlier := max(i, j), min(i, j)
			out = append(out, &RuleError{List: list, Index: later, Rule: rules[later], Code: ErrOverlap, Side: side, Other: earlier, With: rules[earlier]})
		}
	}
	return out
}

// MapAddr translates a through the first rule whose from-side contains
// it: toExternal maps Internal to External, else External to Internal.
// ok is false (and a returned) when no rule applies.
func MapAddr(rules []Rule, a netip.Addr, toExternal bool) (netip.Addr, bool) {
	for _, r := range rules {
		from, to := r.Internal, r.External
		if !toExternal {
			from, to = to, from
		}
		if from.Contains(a) {
			return graft(to, a), true
		}
	}
	return a, false
}

// graft is a with its first to.Bits() bits replaced by to's.
func graft(to netip.Prefix, a netip.Addr) netip.Addr {
	n := to.Bits()
	if to.Addr().Is4() {
		x, y := to.Addr().As4(), a.As4()
		for i := range x {
			x[i] = mix(x[i], y[i], n-8*i)
		}
		return netip.AddrFrom4(x)
	}
	x, y := to.Addr().As16(), a.As16()
	for i := range x {
		x[i] = mix(x[i], y[i], n-8*i)
	}
	return netip.AddrFrom16(x)
}

// mix keeps the first n bits of p (n ≤ 0: none, n ≥ 8: all) and the
// rest of h.
func mix(p, h byte, n int) byte {
	switch {
	case n <= 0:
		return h
	case n >= 8:
		return p
	}
	m := byte(0xff) << (8 - n)
	return p&m | h&^m
}

// Coverage is how a prefix relates to a list of rules' from-sides.
type Coverage int

const (
	// Untouched: no rule's from-side overlaps the prefix.
	Untouched Coverage = iota
	// Whole: the prefix lies inside one rule's from-side and maps to one
	// prefix.
	Whole
	// Partial: the prefix contains one or more from-sides without lying
	// inside one, so it has no single translation.
	Partial
)

func (c Coverage) String() string {
	switch c {
	case Whole:
		return "translated"
	case Partial:
		return "partly translated"
	}
	return "untouched"
}

// MapPrefix translates p through rules as MapAddr does its addresses: a
// prefix inside a rule's from-side maps to the prefix of the same length
// in its to-side (Whole); one that only contains from-sides has no
// single translation (Partial, p returned); one no rule touches is
// returned as it is (Untouched).
func MapPrefix(rules []Rule, p netip.Prefix, toExternal bool) (netip.Prefix, Coverage) {
	p = p.Masked()
	partial := false
	for _, r := range rules {
		from, to := r.Internal, r.External
		if !toExternal {
			from, to = to, from
		}
		if from.Addr().Is4() != p.Addr().Is4() || !from.Overlaps(p) {
			continue
		}
		if from.Bits() <= p.Bits() {
			return netip.PrefixFrom(graft(to, p.Addr()), p.Bits()), Whole
		}
		partial = true
	}
	if partial {
		return p, Partial
	}
	return p, Untouched
}

// MapSet returns the addresses of ps as the other side of rules sees them
// (toExternal: Internal to External): the parts of each prefix inside a
// rule's from-side become the matching parts of its to-side, the rest
// stays as it is. The result is the set's prefixes, sorted, without
// overlaps; a prefix only partly translated comes out in pieces.
func MapSet(rules []Rule, ps []netip.Prefix, toExternal bool) []netip.Prefix {
	var b netipx.IPSetBuilder
	var mapped []netip.Prefix
	for _, p := range ps {
		p = p.Masked()
		b.AddPrefix(p)
		for _, r := range rules {
			from := r.Internal
			if !toExternal {
				from = r.External
			}
			if from.Addr().Is4() != p.Addr().Is4() || !from.Overlaps(p) {
				continue
			}
			b.RemovePrefix(from)
			// The overlap of two prefixes is the longer one.
			part := from
			if p.Bits() > from.Bits() {
				part = p
			}
			q, _ := MapPrefix([]Rule{r}, part, toExternal)
			mapped = append(mapped, q)
		}
	}
	for _, q := range mapped { // after every removal
		b.AddPrefix(q)
	}
	set, err := b.IPSet()
	if err != nil { // only for invalid prefixes
		return nil
	}
	return set.Prefixes()
}
