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
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Session timers. Hold time is short for BGP, but the gateway's tunnel
// probe (not BGP) is what detects a dead path within a second; these only
// bound how long a half-dead session lingers.
// resendAfter is when a new session gets its routes once more
// (resendAfterUp).
const resendAfter = time.Second

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
	// Ingress are the ingress NAT rules of the neighbor's peering: its
	// routes are imported translated (Import.Seen, nat.go).
	Ingress []Translation
	// Hide are prefixes never advertised to this neighbor, nor anything
	// overlapping them (with NAT: what it must not see in this side's
	// numbering).
	Hide []netip.Prefix
	// GracefulRestart, when RestartTime is set, announces graceful
	// restart (RFC 4724) and, with LongLived, long-lived graceful restart
	// (RFC 9494): a neighbor that helps keeps this speaker's routes while
	// it restarts (Close(true)). The speaker never claims to have kept
	// its forwarding state (the F bit stays clear).
	GracefulRestart GracefulRestart
}

// GracefulRestart is what a speaker announces of graceful restart.
type GracefulRestart struct {
	RestartTime time.Duration // whole seconds, at most 4095
	LongLived   time.Duration // the long-lived stale time; 0: none
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
		n.Port == o.Port && n.Passive == o.Passive && n.maxPrefixes() == o.maxPrefixes() && n.GracefulRestart == o.GracefulRestart
}

func onlyPassiveDiffers(a, b Neighbor) bool {
	a.Passive = b.Passive
	return a.sessionEqual(b)
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
	// Drain announces every route as least preferred (RFC 8326): the
	// GRACEFUL_SHUTDOWN community and DrainPrepend more copies of the
	// speaker's AS, re-sent to established sessions without a reset.
	Drain bool
}

// DrainPrepend is how many extra times a draining speaker prepends its AS.
const DrainPrepend = 3

// GracefulShutdown is the GRACEFUL_SHUTDOWN community (RFC 8326).
const GracefulShutdown = "65535:0"

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
	Reason string `json:"reason,omitempty"`
	// PeerPrefix is the prefix as the neighbor announced it when its
	// ingress NAT rules translated it into Prefix (zero otherwise).
	PeerPrefix netip.Prefix `json:"peer_prefix,omitzero"`
	Since      time.Time    `json:"since,omitzero"`
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
	// DownCode is why the session is not established: vgate's hold
	// (max_prefix before probe) or else LastDownCode. DownNone when
	// established.
	DownCode DownCode `json:"down_code,omitempty"`
	// LastDownCode and LastDownAt: why and when the session last went
	// down (kept after it comes back up).
	LastDownCode DownCode  `json:"last_down_code,omitempty"`
	LastDownAt   time.Time `json:"last_down_at,omitzero"`
	// Notification is the NOTIFICATION that last ended the session, sent
	// or received (nil when the last down had none).
	Notification *Notification `json:"notification,omitempty"`
	// NextAttempt is when vgate starts the session afresh (retry.go);
	// zero when none is scheduled.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Passive: the session only accepts, the peer dials.
	Passive bool `json:"passive,omitempty"`
	// Recoveries counts the times the watchdog started the session
	// afresh (watchdog.go).
	Recoveries uint64 `json:"recoveries,omitempty"`
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

	wg sync.WaitGroup // goroutines the speaker starts (not GoBGP's)

	mu         sync.Mutex // serializes Set, SetDown and Snapshot's bookkeeping
	state      State
	neighbors  map[string]Neighbor          // by name
	originated map[netip.Prefix]uuid.UUID   // prefix -> AddPath uuid
	want       map[string]Neighbor          // by name: the last Set's neighbors
	holds      map[string]map[string]string // name -> source -> reason
	disabled   map[string]bool              // names disabled in GoBGP
	rejectSeen map[string]map[netip.Prefix]bool
	rejectTot  map[string]uint64
	recoveries map[string]uint64 // by name: resets by the watchdog (watchdog.go)
	policySet  bool
	importPol  Import
	counts     map[string]routeCounts // by name: the last Snapshot's (Sessions)

	// Written by the peer-event watcher, which must never wait on mu.
	evMu       sync.Mutex
	byAddr     map[netip.Addr]Neighbor
	evHolds    map[string]DownCode // by name: holdCode of its holds
	evHoldText map[string]string   // by name: holdText of its holds
	lastDown   map[netip.Addr]downInfo
	pfxCt      map[netip.Addr]bool // GoBGP shut the session for its prefix limit
	// sess is each session's state as GoBGP's peer events (and the
	// safety poll's ListPeer) last told it: Sessions reads it instead of
	// a ListPeer, which walks every adj-RIB-in shard of every peer.
	sess   map[netip.Addr]sessionSeen
	closed bool // Close has begun: start no goroutine
	retry  map[netip.Addr]*retryState

	events       chan struct{} // GoBGP reported a change (wake)
	snapshots    atomic.Uint64 // full RIB reads (Snapshot), for tests
	fingerprints atomic.Uint64 // counter reads (fingerprint), for tests
}

// routeCounts are a session's route counts in a snapshot.
type routeCounts struct{ Received, Accepted, Rejected, Advertised int }

// retryState is vgate's own reconnect schedule of a session that went
// down (retry.go).
type retryState struct {
	attempt int
	next    time.Time
	timer   *time.Timer
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
		originated: map[netip.Prefix]uuid.UUID{},
		holds:      map[string]map[string]string{},
		disabled:   map[string]bool{},
		rejectSeen: map[string]map[netip.Prefix]bool{},
		rejectTot:  map[string]uint64{},
		recoveries: map[string]uint64{},
		counts:     map[string]routeCounts{},
		byAddr:     map[netip.Addr]Neighbor{},
		evHolds:    map[string]DownCode{},
		evHoldText: map[string]string{},
		pfxCt:      map[netip.Addr]bool{},
		lastDown:   map[netip.Addr]downInfo{},
		sess:       map[netip.Addr]sessionSeen{},
		retry:      map[netip.Addr]*retryState{},
		events:     make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.bgp = server.NewBgpServer(server.LoggerOption(newGoBGPLogger(cfg.Log.With("component", "gobgp")), nil))
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
		// Only the two families vgate's peers negotiate (addNeighbor).
		// Without this GoBGP creates a global and a route-server table
		// for every family it knows, each with 2048 pre-made shards:
		// about 14 MB of live heap that never holds a route.
		Families: globalFamilies,
	}}); err != nil {
		s.bgp.Stop()
		s.cancel()
		return nil, fmt.Errorf("bgp: start speaker AS%d: %w", cfg.ASN, err)
	}
	// Session changes arrive as typed peer events; route changes as
	// update (received, before policy) and best-path events. Each event
	// wakes the poll loop, which then compares counters at pollInterval
	// until they settle; a slow poll covers what no event reports.
	if err := s.bgp.WatchEvent(s.ctx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.peerEvent}, server.WatchPeer()); err != nil {
		s.Close()
		return nil, fmt.Errorf("bgp: watch: %w", err)
	}
	if err := s.bgp.WatchEvent(s.ctx, server.WatchEventMessageCallbacks{
		OnPathUpdate: func([]*apiutil.Path, time.Time) { s.wake() },
		OnBestPath:   func([]*apiutil.Path, time.Time) { s.wake() },
	}, server.WatchUpdate(false, "", ""), server.WatchBestPath(false)); err != nil {
		s.Close()
		return nil, fmt.Errorf("bgp: watch routes: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.poll()
	}()
	s.log.Info("bgp speaker started", "asn", cfg.ASN, "router_id", cfg.RouterID, "listen", listen, "port", port)
	return s, nil
}

// pollInterval is how often the speaker compares its counters while
// something happens (after an event, for activeFor); slowPoll is how often
// it compares them when nothing does. An idle speaker is not asked
// anything in between (issue 14: a 10 Hz poll of every peer was most of
// an idle hub's allocation).
const (
	pollInterval = 100 * time.Millisecond
	activeFor    = time.Second
	slowPoll     = 5 * time.Second
)

// wake tells the poll loop that GoBGP reported something. It never
// blocks (it runs on GoBGP's watcher goroutines).
func (s *Speaker) wake() {
	select {
	case s.events <- struct{}{}:
	default:
	}
}

// poll calls OnChange when the speaker's counters move (updates received
// per session, routes received and accepted, paths in the global table),
// and once more when they have settled, so the last change is never
// missed. It compares them every pollInterval for activeFor after an
// event, and every slowPoll otherwise.
func (s *Speaker) poll() {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	var last string
	dirty, fast := false, true
	activeUntil := time.Now().Add(activeFor)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.events:
			activeUntil = time.Now().Add(activeFor)
			if !fast {
				fast = true
				t.Reset(pollInterval) // Go 1.23+: no stale tick to drain
			}
			continue
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
		fast = dirty || time.Now().Before(activeUntil)
		if fast {
			t.Reset(pollInterval)
		} else {
			t.Reset(slowPoll)
		}
	}
}

// fingerprint sums up what polling watches. GoBGP lists peers (and their
// families) from maps, in random order, so the parts are sorted: an
// unchanged speaker must give the same string every time, or every poll
// looks like a change and replans the gateway.
func (s *Speaker) fingerprint() string {
	s.fingerprints.Add(1)
	var peers []string
	_ = s.bgp.ListPeer(s.ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		peers = append(peers, peerFingerprint(p))
		s.notePeer(p)
	})
	var tables []string
	for _, f := range []*api.Family{familyV4, familyV6} {
		if t, err := s.bgp.GetTable(s.ctx, &api.GetTableRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}); err == nil {
			tables = append(tables, fmt.Sprintf("%d/%d", t.NumDestination, t.NumPath))
		}
	}
	return canonicalFingerprint(peers, tables)
}

// peerFingerprint is one peer's part of the fingerprint.
func peerFingerprint(p *api.Peer) string {
	st := p.GetState()
	m := st.GetMessages().GetReceived()
	// Established or not is what matters for routes; the states a
	// down session cycles through (idle, active, connect) are not.
	established := st.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	var afs []string
	for _, af := range p.GetAfiSafis() {
		fam := af.GetConfig().GetFamily()
		afs = append(afs, fmt.Sprintf("%d.%d/%d/%d", fam.GetAfi(), fam.GetSafi(), af.GetState().GetReceived(), af.GetState().GetAccepted()))
	}
	slices.Sort(afs)
	return fmt.Sprintf("%s/%v/%d/%d/%v/%s", st.GetNeighborAddress(), established, m.GetUpdate(), m.GetWithdrawUpdate(),
		p.GetTimers().GetState().GetUptime().AsTime().UnixNano(), strings.Join(afs, ","))
}

// canonicalFingerprint joins peer parts in sorted order (the order GoBGP
// lists them in carries no meaning) and then the tables, in their fixed
// order. It sorts peers in place.
func canonicalFingerprint(peers, tables []string) string {
	slices.Sort(peers)
	return strings.Join(peers, ";") + "|" + strings.Join(tables, ";")
}

func (s *Speaker) changed() {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// Close stops every session and the speaker, and waits for the
// goroutines it started. Every session is closed with a NOTIFICATION
// (Cease), so that each neighbor withdraws this speaker's routes at once.
func (s *Speaker) Close() { s.close(false) }

// CloseGraceful is Close for a restart: the sessions that negotiated
// graceful restart end without a NOTIFICATION, so their neighbors keep
// this speaker's routes (stale) for its restart time; the others get
// one as in Close.
func (s *Speaker) CloseGraceful() { s.close(true) }

func (s *Speaker) close(graceful bool) {
	s.evMu.Lock()
	s.closed = true
	for _, r := range s.retry {
		if r.timer != nil && r.timer.Stop() {
			s.wg.Done()
		}
	}
	s.evMu.Unlock()
	s.cancel()
	if graceful {
		// BgpServer.Stop is this with AllowGracefulRestart false (and
		// would log an error once the server has stopped); vgate runs
		// neither GoBGP's BFD nor its gRPC server, the rest of Stop.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.bgp.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
			s.log.Warn("bgp: graceful stop", "error", err)
			s.bgp.Stop()
		}
		cancel()
	} else {
		s.bgp.Stop()
	}
	s.wg.Wait()
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	// globalFamilies are familyV4 and familyV6 as api.Global.Families
	// spells them (GoBGP's openconfig AfiSafiType numbers).
	globalFamilies = []uint32{
		uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
		uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
	}
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
	s.want = want
	for name, old := range s.neighbors {
		n, ok := want[name]
		if ok && n.sessionEqual(old) {
			continue
		}
		if ok && onlyPassiveDiffers(old, n) && s.established(ctx, old) {
			// Which end dials matters only for the next connection:
			// the running session stays, and the next fresh start
			// (recreate) takes the new mode.
			continue
		}
		if ok && onlyLimitDiffers(old, n) {
			// A new prefix limit applies to the running session (GoBGP
			// checks it at once); a raised one releases a max-prefix hold.
			s.clearHold(name, holdMaxPrefix)
			s.evMu.Lock()
			s.byAddr[n.Address] = n // a peer event may arrive during UpdatePeer
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
		s.evMu.Lock()
		delete(s.sess, old.Address)
		s.evMu.Unlock()
		if n, ok := want[name]; !ok || n.maxPrefixes() != old.maxPrefixes() {
			s.clearHold(name, holdMaxPrefix)
		}
		if _, ok := want[name]; !ok {
			delete(s.holds, name)
			s.noteHolds(name)
			delete(s.rejectSeen, name)
			delete(s.rejectTot, name)
			delete(s.recoveries, name)
		}
		s.log.Info("bgp neighbor removed", "peering", name, "address", old.Address)
	}

	// Policy before new sessions, so nothing is accepted unfiltered.
	im := Import{Protected: st.Protected, Allowed: map[string][]netip.Prefix{}}
	for _, n := range st.Neighbors {
		if n.Allowed != nil {
			im.Allowed[n.Name] = n.Allowed
		}
		if len(n.Ingress) > 0 {
			if im.Ingress == nil {
				im.Ingress = map[string][]Translation{}
			}
			im.Ingress[n.Name] = n.Ingress
		}
	}
	if err := s.setPolicy(ctx, im, st.Neighbors, st.Drain); err != nil {
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
			delete(s.lastDown, a)
			delete(s.pfxCt, a)
		}
	}
	s.evMu.Unlock()

	// Originated prefixes.
	wantOrig := map[netip.Prefix]bool{}
	for _, p := range st.Originate {
		wantOrig[p.Masked()] = true
	}
	for p, id := range s.originated {
		if wantOrig[p] {
			continue
		}
		if err := s.bgp.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{id}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", p, err))
			continue
		}
		delete(s.originated, p)
	}
	for _, p := range slices.SortedFunc(maps.Keys(wantOrig), netip.Prefix.Compare) {
		if _, ok := s.originated[p]; ok {
			continue
		}
		path, err := originPath(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: originate %s: %w", p, err))
			continue
		}
		resp, err := s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		if err == nil && len(resp) != 1 {
			err = fmt.Errorf("%d results for one path", len(resp))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: originate %s: %w", p, err))
			continue
		}
		s.originated[p] = resp[0].UUID
	}
	s.state = st
	return errors.Join(errs...)
}

func bgpFamily(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// originPath is p as a locally originated path: origin IGP, next hop
// "self" (the unspecified address, which GoBGP replaces per session).
func originPath(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: bgpFamily(p), Nlri: nlri, Attrs: attrs}, nil
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
		af := &api.AfiSafi{
			Config:       &api.AfiSafiConfig{Family: f, Enabled: true},
			PrefixLimits: &api.PrefixLimit{Family: f, MaxPrefixes: limit},
		}
		if gr := n.GracefulRestart; gr.RestartTime > 0 {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
			if gr.LongLived > 0 {
				af.LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
					Enabled: true, RestartTime: uint32(gr.LongLived / time.Second)}}
			}
		}
		afs = append(afs, af)
	}
	var gr *api.GracefulRestart
	if g := n.GracefulRestart; g.RestartTime > 0 {
		// LocalRestarting stays false: GoBGP ties the Forwarding State
		// bit to it, and vgate's forwarding does not survive a restart.
		gr = &api.GracefulRestart{Enabled: true, RestartTime: uint32(g.RestartTime / time.Second), LonglivedEnabled: g.LongLived > 0}
	}
	return &api.Peer{
		GracefulRestart: gr,
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         n.ASN,
			Description:     n.Name,
			AdminDown:       disabled,
		},
		Transport: tr,
		Timers: &api.Timers{
			Config: &api.TimersConfig{
				ConnectRetry:           connectRetry,
				HoldTime:               holdTime,
				KeepaliveInterval:      keepaliveInterval,
				IdleHoldTimeAfterReset: idleHoldAfterDown,
			},
			// GoBGP arms OpenConfirm's hold timer (and keepalives) from
			// the hold time negotiated by the peer's last session, and
			// every vgate session runs on a fresh GoBGP peer
			// (retry.go): without a seed the first OpenConfirm waits
			// for the peer's KEEPALIVE forever. Our own hold time bounds
			// it (the negotiated one is never longer); an Established
			// session negotiates its own.
			State: &api.TimersState{NegotiatedHoldTime: holdTime, KeepaliveInterval: keepaliveInterval},
		},
		AfiSafis: afs,
	}
}

// Hold sources: why vgate holds a session down.
const (
	holdMaxPrefix = "max-prefix"
	HoldProbe     = "probe"
	HoldBFD       = "bfd"
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
		s.noteHolds(name)
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
	s.noteHolds(name)
}

// syncAdmin enables or disables name in GoBGP to match its holds.
func (s *Speaker) syncAdmin(ctx context.Context, name string) error {
	n, ok := s.neighbors[name]
	if !ok {
		return nil
	}
	held := len(s.holds[name]) > 0
	s.evMu.Lock()
	pfxCt := s.pfxCt[n.Address]
	s.evMu.Unlock()
	// GoBGP keeps a session it shut for its prefix limit down until it
	// is enabled: released here too when vgate never held it.
	if held == s.disabled[name] && (held || !pfxCt) {
		return nil
	}
	addr := n.Address.String()
	var err error
	if held {
		err = s.bgp.DisablePeer(ctx, &api.DisablePeerRequest{Address: addr, Communication: holdText(s.holds[name])})
	} else {
		// A fresh session, not EnablePeer: GoBGP would keep an enabled
		// session idle for its idle hold time (5 s) first.
		err = s.recreate(ctx, name)
	}
	if err != nil {
		return fmt.Errorf("bgp: neighbor %s: %w", name, err)
	}
	s.disabled[name] = held
	if held {
		// Info: vgate's own action; the cause (a dead tunnel, a prefix
		// limit) is the peering's state, logged at warn by the gateway.
		s.log.Info("bgp session held down", "peering", name, "reason", holdText(s.holds[name]))
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

// peerEvent follows GoBGP's typed peer events (on GoBGP's watcher
// goroutine, which must not wait on mu): it records why sessions go down
// and holds a session down when GoBGP shut it for its prefix limit.
func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	defer func() {
		s.wake()
		s.changed()
	}()
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	addr := st.NeighborAddress
	s.evMu.Lock()
	s.sess[addr] = s.sess[addr].next(fsmStateName(st.SessionState), at)
	n, ok := s.byAddr[addr]
	s.pfxCt[addr] = st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT
	var d downInfo
	down := false
	if ok {
		d, down = downFromEvent(st, s.evHolds[n.Name], s.evHoldText[n.Name], at)
		if down {
			if d.code == DownMaxPrefix {
				d.text = maxPrefixText(n.maxPrefixes())
			}
			s.lastDown[addr] = d
		}
	}
	if ok {
		s.noteSession(addr, n, st.SessionState == bgp.BGP_FSM_ESTABLISHED, down, d.code) // retry.go
	}
	hold := ok && down && d.code == DownMaxPrefix && s.evHolds[n.Name] != DownMaxPrefix && !s.closed
	if hold {
		s.wg.Add(1)
	}
	resend := ok && st.SessionState == bgp.BGP_FSM_ESTABLISHED && !s.closed
	if resend {
		s.wg.Add(1)
	}
	s.evMu.Unlock()
	if !ok {
		return
	}
	switch {
	case st.SessionState == bgp.BGP_FSM_ESTABLISHED:
		s.log.Info("bgp session established", "peering", n.Name, "address", addr)
	case down:
		attrs := []any{"peering", n.Name, "address", addr, "code", string(d.code), "reason", d.text}
		if d.notif != nil {
			attrs = append(attrs, "notification", d.notif.Direction, "notification_code", d.notif.Code, "notification_subcode", d.notif.Subcode)
		}
		if d.code == DownProbe || d.code == DownAdmin {
			// vgate's own hold: "bgp session held down" said it, and the
			// gateway's tunnel-down line (warn) carries the cause.
			s.log.Debug("bgp session down", attrs...)
		} else {
			s.log.Warn("bgp session down", attrs...)
		}
	}
	if hold {
		// Keep it down until the limit changes; not from this
		// goroutine, which GoBGP owns.
		go func() {
			defer s.wg.Done()
			s.holdForPrefixLimit(n)
		}()
	}
	if resend {
		go func() {
			defer s.wg.Done()
			s.resendAfterUp(addr)
		}()
	}
}

// resendAfterUp sends a new session everything it should have once more,
// resendAfter after it came up (a soft reset out). GoBGP v4.8.0 can miss
// routes that arrive from another session in the moment this one comes
// up: neither its initial table dump nor the update carries them, and
// nothing sends them later (seen in a 21-gateway lab: a spoke kept 8 of
// 20 routes while its hub counted 20 advertised, about one cold start in
// thirty). Sending the table again is cheap (vgate's tables are small)
// and repeats nothing the peer does not already take as a replacement.
func (s *Speaker) resendAfterUp(addr netip.Addr) {
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(resendAfter):
	}
	if err := s.bgp.ResetPeer(s.ctx, &api.ResetPeerRequest{Address: addr.String(), Soft: true,
		Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil && s.ctx.Err() == nil {
		s.log.Debug("bgp: resend to a new session", "address", addr, "error", err)
	}
}

// holdForPrefixLimit holds n down for its prefix limit, unless its limit (or
// the neighbor) changed since GoBGP shut it.
func (s *Speaker) holdForPrefixLimit(n Neighbor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.neighbors[n.Name]
	if !ok || cur.Address != n.Address || cur.maxPrefixes() != n.maxPrefixes() {
		return
	}
	if s.holds[n.Name] == nil {
		s.holds[n.Name] = map[string]string{}
	}
	s.holds[n.Name][holdMaxPrefix] = maxPrefixText(n.maxPrefixes())
	s.noteHolds(n.Name)
	if err := s.syncAdmin(s.ctx, n.Name); err != nil && s.ctx.Err() == nil {
		s.log.Error("bgp: hold session down after max-prefix", "peering", n.Name, "error", err)
	}
}

// noteHolds publishes name's holds to the peer-event watcher. Called with
// s.mu held.
func (s *Speaker) noteHolds(name string) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if c := holdCode(s.holds[name]); c != DownNone {
		s.evHolds[name] = c
		s.evHoldText[name] = holdText(s.holds[name])
	} else {
		delete(s.evHolds, name)
		delete(s.evHoldText, name)
	}
}

// peerStatus fills ns's session state, uptime and advertised count from
// GoBGP's peer p.
func peerStatus(ns *NeighborStatus, p *api.Peer) {
	if st := p.GetState(); st != nil {
		ns.State = sessionState(st.SessionState)
	}
	if t := p.GetTimers().GetState().GetUptime(); t != nil && ns.State == "established" {
		ns.Since = t.AsTime()
	}
	for _, af := range p.GetAfiSafis() {
		ns.Advertised += int(af.GetState().GetAdvertised())
	}
}

// noteStatus fills what vgate itself knows of n's session: holds, the
// last down, the next attempt, the rejected total. s.mu is held.
func (s *Speaker) noteStatus(ns *NeighborStatus, n Neighbor) {
	name := n.Name
	ns.RejectedTotal = s.rejectTot[name]
	ns.Recoveries = s.recoveries[name]
	ns.Down = holdText(s.holds[name])
	s.evMu.Lock()
	d := s.lastDown[n.Address]
	s.evMu.Unlock()
	ns.LastDown, ns.LastDownCode, ns.LastDownAt, ns.Notification = d.text, d.code, d.at, d.notif
	ns.Passive = n.Passive
	if ns.State != "established" {
		ns.NextAttempt = s.nextAttempt(n.Address)
	}
	switch {
	case len(s.holds[name]) > 0:
		ns.DownCode = holdCode(s.holds[name])
	case ns.State != "established":
		ns.DownCode = d.code
	}
}

// Sessions returns every session like Snapshot's Neighbors, without
// reading a route table: one ListPeer for all of them, for callers that
// run often (Status runs every second). The route counts (received,
// accepted, rejected, advertised, rejected total) are the last Snapshot's:
// GoBGP's own per-session counters do not see vgate's import policy.
func (s *Speaker) Sessions(ctx context.Context) ([]NeighborStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bgp: sessions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NeighborStatus, 0, len(s.neighbors))
	for _, name := range slices.Sorted(maps.Keys(s.neighbors)) {
		n := s.neighbors[name]
		ns := NeighborStatus{Name: name, Address: n.Address, ASN: n.ASN, State: "idle", MaxPrefixes: n.maxPrefixes()}
		s.evMu.Lock()
		if seen, ok := s.sess[n.Address]; ok {
			ns.State = seen.state
			if seen.state == "established" {
				ns.Since = seen.since
			}
		}
		s.evMu.Unlock()
		if c, ok := s.counts[name]; ok && ns.State == "established" {
			ns.Received, ns.Accepted, ns.Rejected, ns.Advertised = c.Received, c.Accepted, c.Rejected, c.Advertised
		}
		s.noteStatus(&ns, n)
		out = append(out, ns)
	}
	return out, nil
}

// Snapshot returns every received route (accepted or rejected, with the
// best path marked) and every session. It reads every route table: call
// Sessions where the sessions are enough.
func (s *Speaker) Snapshot(ctx context.Context) (RIB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots.Add(1)
	var rib RIB
	clear(s.counts) // neighbors gone since are forgotten
	byAddr := map[netip.Addr]string{}
	for _, name := range slices.Sorted(maps.Keys(s.neighbors)) {
		byAddr[s.neighbors[name].Address] = name
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
			peerStatus(&ns, p)
			s.notePeer(p)
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
		for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
			// Not EnableFiltered: GoBGP would apply the import policy by
			// writing into the live Adj-RIB-In, which races with its own
			// route watchers (the events poll waits for). The policy in
			// GoBGP is importSets of s.importPol, whose Check is its
			// reference semantics (policy.go), so Check decides here.
			err := s.bgp.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: n.Address.String(), Family: f}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
				pfx, ok := nlriPrefix(nlri)
				if !ok {
					return
				}
				seen, translated, accepted, reason := s.importPol.Seen(name, pfx)
				if len(s.importPol.Ingress[name]) == 0 {
					seen, translated = pfx, false
					accepted, reason = s.importPol.Check(name, pfx)
				}
				for _, p := range paths {
					r := routeFrom(pfx, name, p)
					r.Accepted = accepted
					if translated {
						// GoBGP refused it (policies): it is never
						// GoBGP's best; the only path to its seen prefix.
						r.Prefix, r.PeerPrefix, r.Best = seen, pfx, accepted
					}
					if !r.Accepted {
						r.Reason = reason
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
		s.noteStatus(&ns, n)
		s.counts[name] = routeCounts{ns.Received, ns.Accepted, ns.Rejected, ns.Advertised}
		rib.Neighbors = append(rib.Neighbors, ns)
	}
	for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := s.bgp.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
			pfx, ok := nlriPrefix(nlri)
			if !ok {
				return
			}
			for _, p := range paths {
				if !p.Best {
					continue
				}
				name, ok := byAddr[p.PeerAddress]
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
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		return strings.Compare(a.Neighbor, b.Neighbor)
	})
	return rib, nil
}

func nlriPrefix(n bgp.NLRI) (netip.Prefix, bool) {
	if p, ok := n.(*bgp.IPAddrPrefix); ok && p.Prefix.IsValid() {
		return p.Prefix, true
	}
	return netip.Prefix{}, false
}

func routeFrom(pfx netip.Prefix, name string, p *apiutil.Path) Route {
	r := Route{Prefix: pfx, Neighbor: name}
	if p.Age != 0 {
		r.Since = time.Unix(p.Age, 0)
	}
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				r.ASPath = append(r.ASPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeNextHop:
			r.NextHop = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			r.NextHop = a.Nexthop
		}
	}
	return r
}

// sessionSeen is a session's state as last seen, and since when it has
// been established.
type sessionSeen struct {
	state string
	since time.Time
}

// next is the session seen in state at time at.
func (o sessionSeen) next(state string, at time.Time) sessionSeen {
	switch {
	case state != "established":
		return sessionSeen{state: state}
	case o.state == "established" && !o.since.IsZero():
		return o
	}
	return sessionSeen{state: state, since: at}
}

// notePeer corrects s.sess from a ListPeer answer (the safety poll, a
// Snapshot), in case an event was missed; GoBGP's own uptime wins there,
// so Sessions and Snapshot agree.
func (s *Speaker) notePeer(p *api.Peer) {
	a, err := netip.ParseAddr(p.GetState().GetNeighborAddress())
	if err != nil {
		if a, err = netip.ParseAddr(p.GetConf().GetNeighborAddress()); err != nil {
			return
		}
	}
	var ns NeighborStatus
	peerStatus(&ns, p)
	s.evMu.Lock()
	seen := s.sess[a].next(ns.State, time.Now())
	if ns.State == "established" && !ns.Since.IsZero() {
		seen.since = ns.Since
	}
	s.sess[a] = seen
	s.evMu.Unlock()
}

// fsmStateName names a GoBGP FSM state as sessionState names the API's
// (GoBGP's own conversion: the API enum is the FSM state plus one,
// pkg/server/grpc_server.go).
func fsmStateName(st bgp.FSMState) string {
	return sessionState(api.PeerState_SessionState(int(st) + 1))
}
