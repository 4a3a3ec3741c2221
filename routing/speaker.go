package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/server"
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
		// Only the two families vgate's peers negotiate (peerConf).
		// Without this GoBGP creates a global and a route-server table
		// for every family it knows, each with pre-made shards: live
		// heap that never holds a route (docs/routing.md).
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
