package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// Session timers. Hold time is short for BGP, but the gateway's tunnel
// probe (not BGP) is what detects a dead path within a second; these only
// bound how long a half-dead session lingers.
const (
	holdTime          = 9 // seconds
	keepaliveInterval = 3
	connectRetry      = 1
	idleHoldAfterDown = 1
)

// Config is a speaker's identity and where it listens.
type Config struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenAddresses are the addresses sessions are accepted on (the
	// gateway's tunnel address). ListenPort 0 means 179; -1 means the
	// speaker only dials out.
	ListenAddresses []netip.Addr
	ListenPort      int32
	Log             *slog.Logger
	// OnChange is called after a session changes state or a route is
	// received, withdrawn or changes best path. It runs on GoBGP's
	// goroutines and must not block or call the speaker.
	OnChange func()
}

// Neighbor is one eBGP session.
type Neighbor struct {
	Name         string // the peering's name; routes are reported by it
	Address      netip.Addr
	ASN          uint32
	LocalAddress netip.Addr // source address of the session; zero: any
	Port         uint16     // remote port; 0 means 179
	Passive      bool       // only accept, never dial
	// MaxPrefixes per address family; more received tears the session
	// down (and it stays down until the limit changes). 0 means
	// DefaultMaxPrefixes.
	MaxPrefixes int
	// Allowed, when not nil, is the set of prefixes routes from this
	// neighbor must lie within.
	Allowed []netip.Prefix
	// Prepend is how many extra times the speaker's AS is prepended to
	// the routes it sends this neighbor (to make a path less preferred).
	Prepend int
}

func (n Neighbor) maxPrefixes() int {
	if n.MaxPrefixes > 0 {
		return n.MaxPrefixes
	}
	return DefaultMaxPrefixes
}

// sessionEqual reports whether two neighbors need the same GoBGP session
// (Allowed is policy, applied without a reset).
func (n Neighbor) sessionEqual(o Neighbor) bool {
	return n.Name == o.Name && n.Address == o.Address && n.ASN == o.ASN && n.LocalAddress == o.LocalAddress &&
		n.Port == o.Port && n.Passive == o.Passive && n.maxPrefixes() == o.maxPrefixes()
}

func onlyLimitDiffers(a, b Neighbor) bool {
	a.MaxPrefixes = b.MaxPrefixes
	return a.sessionEqual(b)
}

// State is everything a speaker should do: the prefixes it originates,
// its import policy and its sessions. Set takes it whole.
type State struct {
	Originate []netip.Prefix
	Protected []Protected
	Neighbors []Neighbor
}

// Route is one path received from a neighbor, accepted or not.
type Route struct {
	Prefix   netip.Prefix `json:"prefix"`
	Neighbor string       `json:"neighbor"`
	NextHop  netip.Addr   `json:"next_hop,omitzero"`
	ASPath   []uint32     `json:"as_path"`
	Accepted bool         `json:"accepted"`
	// Best: the speaker's best path for the prefix.
	Best bool `json:"best"`
	// Reason says why a route was rejected.
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

// NeighborStatus is one session as `vgate bgp` shows it.
type NeighborStatus struct {
	Name        string     `json:"name"`
	Address     netip.Addr `json:"address"`
	ASN         uint32     `json:"asn"`
	State       string     `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Since       time.Time  `json:"since,omitzero"`
	Received    int        `json:"received"`
	Accepted    int        `json:"accepted"`
	Rejected    int        `json:"rejected"`
	Advertised  int        `json:"advertised"`
	MaxPrefixes int        `json:"max_prefixes"`
	// RejectedTotal counts every (prefix, announcement) rejected since
	// the speaker started, including routes withdrawn since.
	RejectedTotal uint64 `json:"rejected_total"`
	// Down says why the session is held down by vgate ("" when not).
	Down string `json:"down,omitempty"`
	// LastDown is why the session last went down.
	LastDown string `json:"last_down,omitempty"`
}

// RIB is a snapshot: every received route and every session.
type RIB struct {
	Routes    []Route          `json:"routes"`
	Neighbors []NeighborStatus `json:"neighbors"`
}

// Speaker is one embedded GoBGP speaker. Its methods are safe for
// concurrent use.
type Speaker struct {
	cfg Config
	bgp *server.BgpServer
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex // serializes Set, SetDown and Snapshot's bookkeeping
	state      State
	neighbors  map[string]Neighbor          // by name
	originated map[netip.Prefix][]byte      // prefix -> AddPath uuid
	holds      map[string]map[string]string // name -> source -> reason
	disabled   map[string]bool              // names disabled in GoBGP
	rejectSeen map[string]map[netip.Prefix]bool
	rejectTot  map[string]uint64
	policySet  bool
	importPol  Import

	// ev is written by GoBGP's logger hook, which must never wait on mu.
	evMu     sync.Mutex
	byAddr   map[netip.Addr]Neighbor
	lastDown map[netip.Addr]string
}

// Start runs a speaker. ctx bounds only the start.
func Start(ctx context.Context, cfg Config) (*Speaker, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("bgp: router id %v is not an IPv4 address", cfg.RouterID)
	}
	s := &Speaker{
		cfg:        cfg,
		log:        cfg.Log,
		neighbors:  map[string]Neighbor{},
		originated: map[netip.Prefix][]byte{},
		holds:      map[string]map[string]string{},
		disabled:   map[string]bool{},
		rejectSeen: map[string]map[netip.Prefix]bool{},
		rejectTot:  map[string]uint64{},
		byAddr:     map[netip.Addr]Neighbor{},
		lastDown:   map[netip.Addr]string{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.bgp = server.NewBgpServer(server.LoggerOption(&gobgpLogger{l: cfg.Log.With("component", "gobgp"), hook: s.hook}))
	go s.bgp.Serve()

	port := cfg.ListenPort
	if port == 0 {
		port = 179
	}
	var listen []string
	for _, a := range cfg.ListenAddresses {
		listen = append(listen, a.String())
	}
	if err := s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             cfg.ASN,
		RouterId:        cfg.RouterID.String(),
		ListenPort:      port,
		ListenAddresses: listen,
	}}); err != nil {
		s.bgp.Stop()
		s.cancel()
		return nil, fmt.Errorf("bgp: start speaker AS%d: %w", cfg.ASN, err)
	}
	// Session changes arrive as events. Route changes are noticed by
	// polling counters: GoBGP's table events convert paths while a
	// reconnecting session rewrites their source (a data race in v3.37.0).
	if err := s.bgp.WatchEvent(s.ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}},
		func(*api.WatchEventResponse) { s.changed() }); err != nil {
		s.Close()
		return nil, fmt.Errorf("bgp: watch: %w", err)
	}
	go s.poll()
	s.log.Info("bgp speaker started", "asn", cfg.ASN, "router_id", cfg.RouterID, "listen", listen, "port", port)
	return s, nil
}

// pollInterval is how often the speaker looks for route changes.
const pollInterval = 100 * time.Millisecond

// poll calls OnChange when the speaker's counters move (updates received
// per session, routes received and accepted, paths in the global table),
// and once more when they have settled, so the last change is never missed.
func (s *Speaker) poll() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last string
	dirty := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		fp := s.fingerprint()
		switch {
		case fp != last:
			last, dirty = fp, true
			s.changed()
		case dirty:
			dirty = false
			s.changed()
		}
	}
}

func (s *Speaker) fingerprint() string {
	var b strings.Builder
	_ = s.bgp.ListPeer(s.ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		st := p.GetState()
		m := st.GetMessages().GetReceived()
		// Established or not is what matters for routes; the states a
		// down session cycles through (idle, active, connect) are not.
		established := st.GetSessionState() == api.PeerState_ESTABLISHED
		fmt.Fprintf(&b, "%s/%v/%d/%d/%v", st.GetNeighborAddress(), established, m.GetUpdate(), m.GetWithdrawUpdate(), p.GetTimers().GetState().GetUptime().AsTime().UnixNano())
		for _, af := range p.GetAfiSafis() {
			fmt.Fprintf(&b, "/%d/%d", af.GetState().GetReceived(), af.GetState().GetAccepted())
		}
		b.WriteByte(';')
	})
	for _, f := range []*api.Family{familyV4, familyV6} {
		if t, err := s.bgp.GetTable(s.ctx, &api.GetTableRequest{TableType: api.TableType_GLOBAL, Family: f}); err == nil {
			fmt.Fprintf(&b, "%d/%d;", t.NumDestination, t.NumPath)
		}
	}
	return b.String()
}

func (s *Speaker) changed() {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// Close stops every session and the speaker.
func (s *Speaker) Close() {
	s.cancel()
	s.bgp.Stop()
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// Set moves the speaker to st: originated prefixes, the import policy and
// the sessions, touching only what differs. A session whose parameters
// change is re-created; a change of Allowed or Protected re-applies the
// policy to what is already received without a reset.
func (s *Speaker) Set(ctx context.Context, st State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error

	// Neighbors.
	want := map[string]Neighbor{}
	for _, n := range st.Neighbors {
		want[n.Name] = n
	}
	for name, old := range s.neighbors {
		n, ok := want[name]
		if ok && n.sessionEqual(old) {
			continue
		}
		if ok && onlyLimitDiffers(old, n) {
			// A new prefix limit applies to the running session (GoBGP
			// checks it at once); a raised one releases a max-prefix hold.
			s.clearHold(name, holdMaxPrefix)
			s.evMu.Lock()
			s.byAddr[n.Address] = n // the hook may fire inside UpdatePeer
			s.evMu.Unlock()
			if _, err := s.bgp.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: peerConf(n, s.disabled[name])}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: update neighbor %s: %w", name, err))
				continue
			}
			s.neighbors[name] = n
			if err := s.syncAdmin(ctx, name); err != nil {
				errs = append(errs, err)
			}
			s.log.Info("bgp neighbor prefix limit changed", "peering", name, "max_prefixes", n.maxPrefixes())
			continue
		}
		if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: remove neighbor %s: %w", name, err))
		}
		delete(s.neighbors, name)
		delete(s.disabled, name)
		if n, ok := want[name]; !ok || n.maxPrefixes() != old.maxPrefixes() {
			s.clearHold(name, holdMaxPrefix)
		}
		if _, ok := want[name]; !ok {
			delete(s.holds, name)
			delete(s.rejectSeen, name)
			delete(s.rejectTot, name)
		}
		s.log.Info("bgp neighbor removed", "peering", name, "address", old.Address)
	}

	// Policy before new sessions, so nothing is accepted unfiltered.
	im := Import{Protected: st.Protected, Allowed: map[string][]netip.Prefix{}}
	for _, n := range st.Neighbors {
		if n.Allowed != nil {
			im.Allowed[n.Name] = n.Allowed
		}
	}
	if err := s.setPolicy(ctx, im, st.Neighbors); err != nil {
		errs = append(errs, err)
	}

	for _, n := range st.Neighbors {
		if _, ok := s.neighbors[n.Name]; ok {
			continue
		}
		s.evMu.Lock()
		s.byAddr[n.Address] = n
		s.evMu.Unlock()
		held := len(s.holds[n.Name]) > 0
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConf(n, held)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: add neighbor %s (%s AS%d): %w", n.Name, n.Address, n.ASN, err))
			continue
		}
		s.neighbors[n.Name] = n
		s.disabled[n.Name] = held
		s.log.Info("bgp neighbor added", "peering", n.Name, "address", n.Address, "asn", n.ASN, "max_prefixes", n.maxPrefixes())
	}
	s.evMu.Lock()
	for a, n := range s.byAddr {
		if cur, ok := s.neighbors[n.Name]; !ok || cur.Address != a {
			delete(s.byAddr, a)
		}
	}
	s.evMu.Unlock()

	// Originated prefixes.
	wantOrig := map[netip.Prefix]bool{}
	for _, p := range st.Originate {
		wantOrig[p.Masked()] = true
	}
	for p, uuid := range s.originated {
		if wantOrig[p] {
			continue
		}
		if err := s.bgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: family(p), Uuid: uuid}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", p, err))
			continue
		}
		delete(s.originated, p)
	}
	for _, p := range slices.SortedFunc(maps.Keys(wantOrig), comparePrefix) {
		if _, ok := s.originated[p]; ok {
			continue
		}
		resp, err := s.bgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: originPath(p)})
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: originate %s: %w", p, err))
			continue
		}
		s.originated[p] = resp.Uuid
	}
	s.state = st
	return errors.Join(errs...)
}

func family(p netip.Prefix) *api.Family {
	if p.Addr().Is4() {
		return familyV4
	}
	return familyV6
}

func originPath(p netip.Prefix) *api.Path {
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	var nh *anypb.Any
	if p.Addr().Is4() {
		nh, _ = anypb.New(&api.NextHopAttribute{NextHop: "0.0.0.0"})
	} else {
		nh, _ = anypb.New(&api.MpReachNLRIAttribute{Family: familyV6, NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}})
	}
	return &api.Path{Family: family(p), Nlri: nlri, Pattrs: []*anypb.Any{origin, nh}}
}

func peerConf(n Neighbor, disabled bool) *api.Peer {
	port := uint32(n.Port)
	if port == 0 {
		port = 179
	}
	tr := &api.Transport{RemotePort: port, PassiveMode: n.Passive}
	if n.LocalAddress.IsValid() {
		tr.LocalAddress = n.LocalAddress.String()
	}
	limit := uint32(n.maxPrefixes())
	var afs []*api.AfiSafi
	for _, f := range []*api.Family{familyV4, familyV6} {
		afs = append(afs, &api.AfiSafi{
			Config:       &api.AfiSafiConfig{Family: f, Enabled: true},
			PrefixLimits: &api.PrefixLimit{Family: f, MaxPrefixes: limit},
		})
	}
	return &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         n.ASN,
			Description:     n.Name,
			AdminDown:       disabled,
		},
		Transport: tr,
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           connectRetry,
			HoldTime:               holdTime,
			KeepaliveInterval:      keepaliveInterval,
			IdleHoldTimeAfterReset: idleHoldAfterDown,
		}},
		AfiSafis: afs,
	}
}

// Hold sources: why vgate holds a session down.
const (
	holdMaxPrefix = "max-prefix"
	HoldProbe     = "probe"
)

// SetDown holds the session of neighbor name down for a reason from a
// source (e.g. HoldProbe: its tunnel does not answer), or releases that
// source's hold when reason is "". The session runs when no source holds
// it. Holding a session down withdraws its routes at once.
func (s *Speaker) SetDown(ctx context.Context, name, source, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		s.clearHold(name, source)
	} else {
		if s.holds[name] == nil {
			s.holds[name] = map[string]string{}
		}
		s.holds[name][source] = reason
	}
	return s.syncAdmin(ctx, name)
}

func (s *Speaker) clearHold(name, source string) {
	if h := s.holds[name]; h != nil {
		delete(h, source)
		if len(h) == 0 {
			delete(s.holds, name)
		}
	}
}

// syncAdmin enables or disables name in GoBGP to match its holds.
func (s *Speaker) syncAdmin(ctx context.Context, name string) error {
	n, ok := s.neighbors[name]
	if !ok {
		return nil
	}
	held := len(s.holds[name]) > 0
	if held == s.disabled[name] {
		return nil
	}
	addr := n.Address.String()
	var err error
	if held {
		err = s.bgp.DisablePeer(ctx, &api.DisablePeerRequest{Address: addr, Communication: holdText(s.holds[name])})
	} else {
		err = s.bgp.EnablePeer(ctx, &api.EnablePeerRequest{Address: addr})
	}
	if err != nil {
		return fmt.Errorf("bgp: neighbor %s: %w", name, err)
	}
	s.disabled[name] = held
	if held {
		s.log.Warn("bgp session held down", "peering", name, "reason", holdText(s.holds[name]))
	} else {
		s.log.Info("bgp session released", "peering", name)
	}
	return nil
}

func holdText(h map[string]string) string {
	var parts []string
	for _, src := range slices.Sorted(maps.Keys(h)) {
		parts = append(parts, h[src])
	}
	return strings.Join(parts, "; ")
}

// hook sees GoBGP's log records (on GoBGP's goroutines, possibly under its
// locks): it records why sessions went down and reacts to the prefix limit.
func (s *Speaker) hook(msg string, fields map[string]any) {
	key, _ := fields["Key"].(string)
	addr, err := netip.ParseAddr(key)
	if err != nil {
		return
	}
	switch msg {
	case "prefix limit reached":
		if _, warnOnly := fields["Pct"]; warnOnly {
			return
		}
		s.evMu.Lock()
		n, ok := s.byAddr[addr]
		reason := fmt.Sprintf("max-prefix: more than %d prefixes received", n.maxPrefixes())
		if ok {
			s.lastDown[addr] = reason
		}
		s.evMu.Unlock()
		if ok {
			// Keep it down (GoBGP alone would reconnect and flap);
			// not from this goroutine, which GoBGP owns.
			go func() {
				if err := s.SetDown(s.ctx, n.Name, holdMaxPrefix, reason); err != nil && s.ctx.Err() == nil {
					s.log.Error("bgp: hold session down after max-prefix", "peering", n.Name, "error", err)
				}
			}()
		}
	case "Peer Down":
		reason, _ := fields["Reason"].(string)
		s.evMu.Lock()
		n, ok := s.byAddr[addr]
		// The notification vgate sent on max-prefix, or the admin-down
		// that holds it, keeps the more telling max-prefix reason.
		same := strings.HasPrefix(reason, "notification-sent") || reason == "admin-down"
		if ok && !(strings.HasPrefix(s.lastDown[addr], "max-prefix") && same) {
			s.lastDown[addr] = reason
		}
		s.evMu.Unlock()
		if ok {
			s.log.Warn("bgp session down", "peering", n.Name, "address", addr, "reason", reason)
		}
	case "Peer Up":
		s.evMu.Lock()
		n, ok := s.byAddr[addr]
		s.evMu.Unlock()
		if ok {
			s.log.Info("bgp session established", "peering", n.Name, "address", addr)
		}
	}
}

// Snapshot returns every received route (accepted or rejected, with the
// best path marked) and every session.
func (s *Speaker) Snapshot(ctx context.Context) (RIB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rib RIB
	byAddr := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(s.neighbors)) {
		byAddr[s.neighbors[name].Address.String()] = name
	}

	type key struct {
		name string
		p    netip.Prefix
	}
	idx := map[key]int{}
	for _, name := range slices.Sorted(maps.Keys(s.neighbors)) {
		n := s.neighbors[name]
		ns := NeighborStatus{Name: name, Address: n.Address, ASN: n.ASN, State: "idle", MaxPrefixes: n.maxPrefixes()}
		err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: n.Address.String(), EnableAdvertised: true}, func(p *api.Peer) {
			if st := p.GetState(); st != nil {
				ns.State = strings.ToLower(st.SessionState.String())
			}
			if t := p.GetTimers().GetState().GetUptime(); t != nil && ns.State == "established" {
				ns.Since = t.AsTime()
			}
			for _, af := range p.GetAfiSafis() {
				ns.Advertised += int(af.GetState().GetAdvertised())
			}
		})
		if err != nil {
			return RIB{}, fmt.Errorf("bgp: neighbor %s: %w", name, err)
		}
		seen := s.rejectSeen[name]
		if seen == nil {
			seen = map[netip.Prefix]bool{}
			s.rejectSeen[name] = seen
		}
		now := map[netip.Prefix]bool{}
		for _, f := range []*api.Family{familyV4, familyV6} {
			err := s.bgp.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_IN, Name: n.Address.String(), Family: f, EnableFiltered: true}, func(d *api.Destination) {
				pfx, err := netip.ParsePrefix(d.Prefix)
				if err != nil {
					return
				}
				for _, p := range d.Paths {
					r := routeFrom(pfx, name, p)
					r.Accepted = !p.Filtered
					if !r.Accepted {
						_, r.Reason = s.importPol.Check(name, pfx)
						if r.Reason == "" {
							r.Reason = "rejected by import policy"
						}
						now[pfx] = true
					}
					idx[key{name, pfx}] = len(rib.Routes)
					rib.Routes = append(rib.Routes, r)
					ns.Received++
					if r.Accepted {
						ns.Accepted++
					} else {
						ns.Rejected++
					}
				}
			})
			if err != nil && ns.State == "established" {
				return RIB{}, fmt.Errorf("bgp: routes of %s: %w", name, err)
			}
		}
		for p := range now {
			if !seen[p] {
				s.rejectTot[name]++
			}
		}
		s.rejectSeen[name] = now
		ns.RejectedTotal = s.rejectTot[name]
		ns.Down = holdText(s.holds[name])
		s.evMu.Lock()
		ns.LastDown = s.lastDown[n.Address]
		s.evMu.Unlock()
		rib.Neighbors = append(rib.Neighbors, ns)
	}
	for _, f := range []*api.Family{familyV4, familyV6} {
		err := s.bgp.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: f}, func(d *api.Destination) {
			pfx, err := netip.ParsePrefix(d.Prefix)
			if err != nil {
				return
			}
			for _, p := range d.Paths {
				if !p.Best {
					continue
				}
				name, ok := byAddr[p.NeighborIp]
				if !ok {
					continue // originated here
				}
				if i, ok := idx[key{name, pfx}]; ok {
					rib.Routes[i].Best = true
				}
			}
		})
		if err != nil {
			return RIB{}, fmt.Errorf("bgp: best paths: %w", err)
		}
	}
	slices.SortFunc(rib.Routes, func(a, b Route) int {
		if c := comparePrefix(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return strings.Compare(a.Neighbor, b.Neighbor)
	})
	return rib, nil
}

func routeFrom(pfx netip.Prefix, name string, p *api.Path) Route {
	r := Route{Prefix: pfx, Neighbor: name}
	if t := p.GetAge(); t != nil {
		r.Since = t.AsTime()
	}
	for _, a := range p.Pattrs {
		switch {
		case a.MessageIs(&api.AsPathAttribute{}):
			var asp api.AsPathAttribute
			if a.UnmarshalTo(&asp) == nil {
				for _, seg := range asp.Segments {
					r.ASPath = append(r.ASPath, seg.Numbers...)
				}
			}
		case a.MessageIs(&api.NextHopAttribute{}):
			var nh api.NextHopAttribute
			if a.UnmarshalTo(&nh) == nil {
				r.NextHop, _ = netip.ParseAddr(nh.NextHop)
			}
		case a.MessageIs(&api.MpReachNLRIAttribute{}):
			var mp api.MpReachNLRIAttribute
			if a.UnmarshalTo(&mp) == nil && len(mp.NextHops) > 0 {
				r.NextHop, _ = netip.ParseAddr(mp.NextHops[0])
			}
		}
	}
	return r
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
