package p2s

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/overlap"
)

// Seen is where the device last saw a client.
type Seen struct {
	// Endpoint is the address the client's last packet came from, or the
	// one Resume set.
	Endpoint netip.AddrPort
	// LastHandshake is zero when the client has not completed a handshake
	// with this run of the device.
	LastHandshake time.Time
}

// Endpoints returns, for each registered client the device knows an
// endpoint of, where it was last seen, keyed by public key.
func (s *Server) Endpoints() (map[keys.PublicKey]Seen, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stats, err := s.peerStats()
	if err != nil {
		return nil, err
	}
	out := map[keys.PublicKey]Seen{}
	for _, c := range s.reg.Clients() {
		if ep, ok := endpointOf(stats[c.PublicKey]); ok {
			out[c.PublicKey] = Seen{Endpoint: ep, LastHandshake: stats[c.PublicKey].LastHandshake}
		}
	}
	return out, nil
}

func (s *Server) peerStats() (map[keys.PublicKey]*dataplane.PeerStats, error) {
	if s.closed {
		return nil, fmt.Errorf("point_to_site is stopped")
	}
	dump, err := s.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("point_to_site: read device: %w", err)
	}
	stats, _ := dataplane.ParseDump(dump) // a bad counter leaves the rest readable
	return stats, nil
}

func endpointOf(st *dataplane.PeerStats) (netip.AddrPort, bool) {
	if st == nil || st.Endpoint == "" {
		return netip.AddrPort{}, false
	}
	ep, err := netip.ParseAddrPort(st.Endpoint)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return overlap.UnmapAddrPort(ep), true
}

// Resume reconnects clients after the gateway restarted: for every
// registered client with a remembered endpoint and none known to the
// device yet, it sets that endpoint and makes the device initiate a
// handshake, so a stock client without a keepalive — still sending on its
// session with the previous run, which this device cannot decrypt — gets
// a new session at once instead of after its own 15 s timer. Fresher
// information wins: a client the device has heard from already keeps the
// endpoint it came from; keys of unregistered (revoked) clients are
// ignored. It returns the names of the clients it initiated to.
//
// A client whose packet arrives between the check and the set gets the
// remembered endpoint for a moment; its next packet moves it back
// (wireguard-go follows the source of every authenticated packet).
func (s *Server) Resume(remembered map[keys.PublicKey]netip.AddrPort) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stats, err := s.peerStats()
	if err != nil {
		return nil, err
	}
	var resumed []string
	for _, c := range s.reg.Clients() {
		ep, ok := remembered[c.PublicKey]
		if !ok || !ep.IsValid() || !s.usable(c) {
			continue
		}
		if _, known := endpointOf(stats[c.PublicKey]); known {
			continue
		}
		on, off := dataplane.InitiateUAPI(c.PublicKey, ep)
		for _, text := range []string{on, off} {
			if err := s.dev.IpcSet(text); err != nil {
				return resumed, fmt.Errorf("point_to_site: client %q: initiate handshake to %s: %w", c.Name, ep, dataplane.IPCErr(err))
			}
		}
		resumed = append(resumed, c.Name)
	}
	return resumed, nil
}
