package p2s

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// IfName is the P2S device's interface (wgspec.P2SIfName).
const IfName = wgspec.P2SIfName

// Options configures Open. NewTUN, NewBind and LinkUp are the seams to
// the outside world; tests give in-memory ones.
type Options struct {
	Config     *config.PointToSite
	PrivateKey keys.PrivateKey
	// StateDir holds the registry file.
	StateDir string
	IfName   string // default IfName
	MTU      int    // default 1420
	NewTUN   func(ifname string, mtu int) (tun.Device, error)
	NewBind  func() conn.Bind // default conn.NewStdNetBind
	LinkUp   func(ifname string, mtu int) error
	Log      *slog.Logger
	// Now and Quarantine default to time.Now and DefaultQuarantine.
	Now        func() time.Time
	Quarantine time.Duration
	// Self are the gateway's own addresses (tunnel address and the
	// host's local addresses): the policy opens only DNS, ping and the
	// groups' gateway_services on them. SetSelf changes them later.
	Self []netip.Addr
	// OnClients, if set, gets every registered client after each change
	// of the registry (and at Open), with the server's lock held: it must
	// not call the server.
	OnClients func([]Client)
}

// Server runs the point-to-site device: one wireguard-go device on its own
// UDP port and TUN, one peer per registered client whose AllowedIPs are the
// client's pool addresses (so a client cannot spoof another's source), and
// the group policy at the TUN seam. Its methods are safe for concurrent
// use.
type Server struct {
	o      Options
	ifname string
	mtu    int
	filter *FilterTUN
	queues *dataplane.Queues // the send queue and budgets
	dev    *device.Device

	mu       sync.Mutex
	cfg      config.PointToSite
	pool     Pool
	priv     keys.PrivateKey
	reg      *Registry
	counters map[string]*atomic.Uint64
	self     []netip.Addr
	closed   bool
	// dir is the name directory published with each policy (directory.go).
	dir atomic.Pointer[Directory]
	// heard tracks when each client last sent something (activity.go),
	// sampled every SampleEvery until done closes.
	heard Activity
	done  chan struct{}
	wg    sync.WaitGroup
}

// Open loads the registry from StateDir, creates the TUN and the device,
// adds every registered client as a peer and starts listening. On error
// nothing is left running.
func Open(o Options) (*Server, error) {
	if o.Config == nil {
		return nil, errors.New("point_to_site: no config")
	}
	if o.PrivateKey.IsZero() {
		return nil, errors.New("point_to_site: no private key")
	}
	if o.IfName == "" {
		o.IfName = IfName
	}
	if o.MTU == 0 {
		o.MTU = 1420
	}
	if o.NewBind == nil {
		o.NewBind = conn.NewStdNetBind
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Quarantine == 0 {
		o.Quarantine = DefaultQuarantine
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	reg, err := OpenRegistry(filepath.Join(o.StateDir, RegistryFile))
	if err != nil {
		return nil, err
	}
	s := &Server{
		o: o, ifname: o.IfName, mtu: o.MTU,
		cfg: *o.Config, pool: NewPool(o.Config.AddressPool), priv: o.PrivateKey,
		reg: reg, counters: map[string]*atomic.Uint64{}, self: slices.Clone(o.Self),
	}
	for _, name := range reg.Outside(s.pool) {
		o.Log.Warn("point-to-site client has an address outside point_to_site.address_pool; it cannot connect until it is revoked and added again", "client", name)
	}
	td, err := o.NewTUN(o.IfName, o.MTU)
	if err != nil {
		return nil, fmt.Errorf("point_to_site: create interface %s: %w", o.IfName, err)
	}
	// The send queue and budgets (dataplane/queue.go) around the policy.
	qs, qt := dataplane.NewQueues(td, o.MTU)
	s.queues = qs
	s.filter = NewFilterTUN(qt, o.MTU)
	s.publish() // directory.go
	s.dev = device.NewDevice(qs.TUN(s.filter), qs.Bind(o.NewBind()), dataplane.DeviceLogger(o.Log.With("component", "p2s")))
	if err := s.dev.IpcSet(s.deviceUAPI()); err != nil {
		s.dev.Close()
		return nil, fmt.Errorf("point_to_site: configure device: %w", dataplane.IPCErr(err))
	}
	if err := s.dev.Up(); err != nil {
		s.dev.Close()
		return nil, fmt.Errorf("point_to_site: listen_port %d: %w", s.cfg.ListenPort, err)
	}
	if o.LinkUp != nil {
		if err := o.LinkUp(o.IfName, o.MTU); err != nil {
			s.dev.Close()
			return nil, fmt.Errorf("point_to_site: %w", err)
		}
	}
	s.done = make(chan struct{})
	s.wg.Add(1)
	go s.sample()
	o.Log.Info("point-to-site listening", "port", s.cfg.ListenPort, "interface", o.IfName,
		"clients", reg.Len(), "max_clients", s.cfg.MaxClients, "pool", s.pool.Prefixes())
	return s, nil
}

// deviceUAPI configures the whole device: key, port and every client
// that holds pool addresses. It contains the private key.
func (s *Server) deviceUAPI() string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\nreplace_peers=true\n", s.priv.Hex(), s.cfg.ListenPort)
	for _, c := range s.reg.Clients() {
		if s.usable(c) {
			peerUAPI(&b, c)
		}
	}
	return b.String()
}

func (s *Server) usable(c Client) bool {
	for _, a := range c.Addresses {
		if !s.pool.Contains(a) {
			return false
		}
	}
	return true
}

// peerUAPI adds client c with exactly its own addresses as AllowedIPs.
func peerUAPI(b *strings.Builder, c Client) {
	fmt.Fprintf(b, "public_key=%s\nreplace_allowed_ips=true\n", c.PublicKey.Hex())
	for _, a := range c.Addresses {
		fmt.Fprintf(b, "allowed_ip=%s\n", netip.PrefixFrom(a, a.BitLen()))
	}
}

func groupsOf(cfg *config.PointToSite) []Group {
	out := make([]Group, len(cfg.Groups))
	for i, g := range cfg.Groups {
		out[i] = Group{Name: g.Name, Allow: g.Allow, Interconnected: g.Interconnected, Services: g.Services()}
	}
	return out
}

// policy compiles the current policy (s.mu held, or during Open).
func (s *Server) policy() *Policy {
	var clients []Client
	for _, c := range s.reg.Clients() {
		if s.usable(c) {
			clients = append(clients, c)
		}
	}
	return NewPolicy(PolicyInput{
		Groups: groupsOf(&s.cfg), Clients: clients, Pool: s.cfg.AddressPool, DNS: s.cfg.DNS, Self: s.self,
		Counter: func(name string) *atomic.Uint64 {
			c := s.counters[name]
			if c == nil {
				c = new(atomic.Uint64)
				s.counters[name] = c
			}
			return c
		},
	})
}

// Routes are the prefixes the kernel must route to the P2S interface.
func (s *Server) Routes() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pool.Prefixes()
}

// IfName is the P2S interface.
func (s *Server) IfName() string { return s.ifname }

// CheckUpdate reports why cfg cannot be applied to the running server
// (registered clients hold addresses outside a changed pool), without
// changing anything.
func (s *Server) CheckUpdate(cfg *config.PointToSite) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only clients the new pool would newly leave out block it: clients
	// already outside the running pool (a point_to_site re-added with a
	// smaller pool, a registry from an older config) are shown in error
	// and do not make every later reload fail.
	already := s.reg.Outside(s.pool)
	var out []string
	for _, name := range s.reg.Outside(NewPool(cfg.AddressPool)) {
		if !slices.Contains(already, name) {
			out = append(out, name)
		}
	}
	if len(out) > 0 {
		return fmt.Errorf("point_to_site.address_pool: registered clients %s have addresses outside the new pool; revoke them first", strings.Join(out, ", "))
	}
	return nil
}

// Update applies a changed point_to_site section and gateway key: the
// port, the key, groups, DNS, endpoint and max_clients take effect at once;
// sessions of clients stay up.
func (s *Server) Update(cfg *config.PointToSite, priv keys.PrivateKey) error {
	if err := s.CheckUpdate(cfg); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if cfg.ListenPort != s.cfg.ListenPort {
		fmt.Fprintf(&b, "listen_port=%d\n", cfg.ListenPort)
	}
	if priv != s.priv {
		fmt.Fprintf(&b, "private_key=%s\n", priv.Hex())
	}
	if b.Len() > 0 {
		if err := s.dev.IpcSet(b.String()); err != nil {
			return fmt.Errorf("point_to_site: %w", dataplane.IPCErr(err))
		}
	}
	s.cfg, s.priv, s.pool = *cfg, priv, NewPool(cfg.AddressPool)
	s.publish() // directory.go
	return nil
}

// SetSelf replaces the gateway's own addresses (Options.Self) and
// publishes the recompiled policy.
func (s *Server) SetSelf(self []netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.self = slices.Clone(self)
	s.publish() // directory.go
}

// Add registers a client, adds it to the device and returns its config.
// The registry is written before the device changes; if the device refuses
// the peer, the registration is undone.
func (s *Server) Add(req api.AddClientRequest) (api.AddedClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return api.AddedClient{}, errors.New("point_to_site is stopped")
	}
	if err := CheckName(req.Name); err != nil {
		return api.AddedClient{}, err
	}
	if len(req.Groups) == 0 {
		return api.AddedClient{}, fmt.Errorf("client %q: give at least one group (%s)", req.Name, s.groupNames())
	}
	for _, g := range req.Groups {
		if !slices.ContainsFunc(s.cfg.Groups, func(cg config.Group) bool { return cg.Name == g }) {
			return api.AddedClient{}, fmt.Errorf("client %q: no group %q in point_to_site.groups (%s)", req.Name, g, s.groupNames())
		}
	}
	groups := slices.Clone(req.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)

	var priv keys.PrivateKey
	var pub keys.PublicKey
	if req.PublicKey != "" {
		k, err := keys.ParsePublic(req.PublicKey)
		if err != nil {
			return api.AddedClient{}, fmt.Errorf("client %q: %w", req.Name, err)
		}
		pub = k
	} else {
		k, err := keys.GeneratePrivate()
		if err != nil {
			return api.AddedClient{}, err
		}
		priv, pub = k, k.Public()
	}
	if pub == s.priv.Public() {
		return api.AddedClient{}, fmt.Errorf("client %q: that is the gateway's own public key", req.Name)
	}
	now := s.o.Now()
	c, err := s.reg.Add(Client{Name: req.Name, PublicKey: pub, Groups: groups, KeyGenerated: !priv.IsZero()}, s.pool, s.cfg.MaxClients, now)
	if err != nil {
		return api.AddedClient{}, err
	}
	var b strings.Builder
	peerUAPI(&b, c)
	if err := s.dev.IpcSet(b.String()); err != nil {
		if _, rerr := s.reg.Remove(c.Name, now, 0); rerr != nil {
			return api.AddedClient{}, fmt.Errorf("client %q: add peer: %w; undoing the registration also failed: %v", c.Name, dataplane.IPCErr(err), rerr)
		}
		return api.AddedClient{}, fmt.Errorf("client %q: add peer: %w", c.Name, dataplane.IPCErr(err))
	}
	s.publish() // directory.go
	s.o.Log.Info("point-to-site client added", "client", c.Name, "groups", c.Groups, "addresses", c.Addresses, "public_key", c.PublicKey.String())
	return api.AddedClient{Client: s.info(c, nil, now), Config: s.render(c, priv)}, nil
}

func (s *Server) groupNames() string {
	if len(s.cfg.Groups) == 0 {
		return "point_to_site.groups defines none"
	}
	names := make([]string, len(s.cfg.Groups))
	for i, g := range s.cfg.Groups {
		names[i] = g.Name
	}
	return "groups: " + strings.Join(names, ", ")
}

// render makes c's wg-quick config; priv may be zero.
func (s *Server) render(c Client, priv keys.PrivateKey) string {
	q := QuickConfig{PrivateKey: priv, PublicKey: c.PublicKey}
	for _, a := range c.Addresses {
		q.Addresses = append(q.Addresses, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, a := range s.cfg.DNS {
		q.DNS = append(q.DNS, a.String())
	}
	q.DNS = append(q.DNS, s.cfg.DNSSearch...) // wg-quick: names in DNS = are search domains
	q.Peers = []QuickPeer{{
		PublicKey:  s.priv.Public(),
		Endpoint:   s.cfg.Endpoint,
		AllowedIPs: AllowedIPs(groupsOf(&s.cfg), c.Groups, s.cfg.AddressPool, s.cfg.DNS),
		Keepalive:  DefaultKeepalive,
	}}
	return q.Render(fmt.Sprintf("vgate point-to-site client %s (groups: %s)", c.Name, strings.Join(c.Groups, ", ")))
}

// Revoke removes a client: its peer leaves the device at once (its next
// packet is dropped), and its addresses are quarantined before reuse.
func (s *Server) Revoke(name string) (api.ClientInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return api.ClientInfo{}, errors.New("point_to_site is stopped")
	}
	now := s.o.Now()
	c, err := s.reg.Remove(name, now, s.o.Quarantine)
	if err != nil {
		return api.ClientInfo{}, err
	}
	// Policy first: from here on the client's packets are dropped even if
	// some are in flight inside the device.
	s.publish() // directory.go
	delete(s.counters, name)
	if err := s.dev.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", c.PublicKey.Hex())); err != nil {
		return api.ClientInfo{}, fmt.Errorf("client %q: remove peer: %w", name, dataplane.IPCErr(err))
	}
	s.o.Log.Info("point-to-site client revoked", "client", c.Name, "addresses", c.Addresses, "quarantined_until", now.Add(s.o.Quarantine))
	ci := s.info(c, nil, now)
	ci.QuarantinedUntil = now.Add(s.o.Quarantine)
	return ci, nil
}

func (s *Server) info(c Client, st *dataplane.PeerStats, now time.Time) api.ClientInfo {
	ci := api.ClientInfo{
		Name: c.Name, PublicKey: c.PublicKey.String(), Groups: c.Groups, Addresses: c.Addresses,
		KeyGenerated: c.KeyGenerated, Created: c.Created,
	}
	if ctr := s.counters[c.Name]; ctr != nil {
		ci.Denied = ctr.Load()
	}
	if !s.usable(c) {
		ci.Error = "address outside point_to_site.address_pool: revoke and add again"
	}
	if st != nil {
		ci.Endpoint, ci.LastHandshake, ci.RxBytes, ci.TxBytes = st.Endpoint, st.LastHandshake, st.RxBytes, st.TxBytes
	}
	ci.LastHeard = s.heard.LastHeard(c.PublicKey)
	ci.State = ClientState(ci.LastHeard, now)
	ci.Connected = ci.State == api.ClientActive
	return ci
}

// sample reads the clients' counters every SampleEvery, so that Activity
// notices when each was last heard from.
func (s *Server) sample() {
	defer s.wg.Done()
	t := time.NewTicker(SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if dump, err := s.dev.IpcGet(); err == nil {
			stats, _ := dataplane.ParseDump(dump)
			s.heard.Observe(stats, s.o.Now())
		}
	}
}

// Clients lists every registered client with its live counters.
func (s *Server) Clients() ([]api.ClientInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dump, err := s.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("point_to_site: read device: %w", err)
	}
	stats, _ := dataplane.ParseDump(dump) // a bad counter leaves the rest readable
	now := s.o.Now()
	s.heard.Observe(stats, now)
	clients := s.reg.Clients()
	out := make([]api.ClientInfo, 0, len(clients))
	for _, c := range clients {
		out = append(out, s.info(c, stats[c.PublicKey], now))
	}
	return out, nil
}

// Status reports the server's state.
func (s *Server) Status() api.P2SStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	st := api.P2SStatus{
		Interface: s.ifname, ListenPort: s.cfg.ListenPort, Endpoint: s.cfg.Endpoint,
		Pool: s.pool.Prefixes(), Registered: s.reg.Len(), MaxClients: s.cfg.MaxClients,
		Packets: s.filter.Counts(), Denied: s.filter.Denied(),
	}
	free4, free6 := s.reg.Free(s.pool, now)
	v4, v6 := s.pool.Families()
	free := uint64(math.MaxUint64)
	if v4 {
		free = min(free, free4)
	}
	if v6 {
		free = min(free, free6)
	}
	st.PoolFree, st.PoolFree4, st.PoolFree6 = api.Count(free), api.Count(free4), api.Count(free6)
	st.PoolFreeExact, st.PoolFree6Exact = strconv.FormatUint(free, 10), strconv.FormatUint(free6, 10)
	if dump, err := s.dev.IpcGet(); err != nil {
		st.Error = err.Error()
	} else {
		all, _ := dataplane.ParseDump(dump)
		s.heard.Observe(all, now)
		for k := range all {
			if ClientState(s.heard.LastHeard(k), now) == api.ClientActive {
				st.Connected++
			}
		}
	}
	return st
}

// Filter is the TUN decorator enforcing the policy.
func (s *Server) Filter() *FilterTUN { return s.filter }

// Close stops the device; wireguard-go closes the TUN, which removes the
// interface and the routes through it. The registry stays on disk.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	s.dev.Close()
	s.wg.Wait()
}

// ListenPort is the UDP port the device is bound to (the configured one,
// or the kernel's choice when configured as 0).
func (s *Server) ListenPort() (uint16, error) {
	dump, err := s.dev.IpcGet()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(dump, "\n") {
		if v, ok := strings.CutPrefix(l, "listen_port="); ok {
			p, err := strconv.ParseUint(v, 10, 16)
			return uint16(p), err
		}
	}
	return 0, errors.New("point_to_site: device reports no listen_port")
}

// QueueStats is what the device's send queue and budgets hold and did.
func (s *Server) QueueStats() api.QueueStatus {
	st := s.queues.Stats()
	st.Qdisc = dataplane.QdiscOf(s.ifname)
	return st
}
