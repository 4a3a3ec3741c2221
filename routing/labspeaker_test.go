package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vgate-project/vgate/internal/netlab"
)

// A lab speaker is an embedded GoBGP v4 server, the one vgate links, run
// inside a lab namespace: the test binary started again in that namespace
// (TestMain), serving GoBGP's own gRPC API on a unix socket in the lab's
// directory. The test drives it through that API exactly as the gateway
// drives its speaker through the Go API (AddPeer with a BFD and graceful
// restart config, AddPath, policies, ListPeer). A process of its own is
// needed because GoBGP opens its sockets (BGP, BFD) on its own
// goroutines: only a whole process can be put in the namespace.

// labSpeakerEnv names the socket a test binary started as a lab speaker
// serves on.
const labSpeakerEnv = "VGATE_TEST_LAB_SPEAKER"

// runLabSpeaker is the lab speaker process: GoBGP with its API on sock,
// logging to stderr (the lab's log file) at debug level, BFD included. It
// ends on SIGTERM (GoBGP's Stop: sessions closed with a NOTIFICATION,
// unless the test stopped BGP itself first) or SIGKILL.
func runLabSpeaker(sock string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := server.NewBgpServer(server.GrpcListenAddress("unix://"+sock), server.LoggerOption(log, nil))
	go s.Serve()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Stop()
	return 0
}

// labSpeaker is the test's handle on a lab speaker process.
type labSpeaker struct {
	t    testing.TB
	lab  *netlab.Lab
	ns   string
	name string
	sock string
	proc *netlab.Proc
	conn *grpc.ClientConn
	api  api.GoBgpServiceClient
}

// startLabSpeaker starts a lab speaker in namespace ns and waits until
// its API answers. name keeps its log and socket apart from others. With
// a sandbox (netlab.Sandbox: the unit's capabilities and file system) the
// speaker runs in it as the gateway would: the test binary is bound at
// the unit's ExecStart path, the API socket lives in its runtime
// directory.
func startLabSpeaker(t testing.TB, lab *netlab.Lab, ns, name string, sb *netlab.Sandbox) *labSpeaker {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := lab.Path(name + ".gobgp.sock")
	args := []string{"env", labSpeakerEnv + "=" + sock, self}
	if sb != nil {
		sock = filepath.Join(sb.Runtime, name+".gobgp.sock")
		sb.Bin = self
		args = append(sb.Wrapper(), "env", labSpeakerEnv+"="+sb.PathIn(sock), sb.Unit.ExecStart[0])
	}
	_ = os.Remove(sock)
	p, err := lab.Start(ns, lab.Path(name+".gobgp.log"), args...)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s := &labSpeaker{t: t, lab: lab, ns: ns, name: name, sock: sock, proc: p, conn: conn, api: api.NewGoBgpServiceClient(conn)}
	t.Cleanup(func() { conn.Close() })
	wait := 20 * time.Second
	if sb != nil {
		wait = 120 * time.Second // the sandbox's script mounts for a while
	}
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s.api.GetBgp(ctx, &api.GetBgpRequest{})
		cancel()
		if err == nil {
			return s
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("lab speaker %s did not answer on %s: %v\n%s", name, sock, err, p.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *labSpeaker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// startBGP starts the BGP instance: AS asn, router id and listen address
// id (the tunnel address), port 179.
func (s *labSpeaker) startBGP(asn uint32, id netip.Addr) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.api.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: id.String(), ListenPort: 179, ListenAddresses: []string{id.String()},
	}}); err != nil {
		s.t.Fatalf("%s: StartBgp: %v", s.name, err)
	}
}

// labPeer is one neighbor of a lab speaker.
type labPeer struct {
	Address, Local netip.Addr
	ASN            uint32
	// BFD, when set, enables GoBGP's BFD toward the neighbor: desired
	// transmit = required receive interval, and the multiplier.
	BFD *netlab.BFDConf
	// GR announces graceful restart (RFC 4724) with this restart time;
	// Restarting sets the restart state and forwarding state bits (the
	// speaker restarted with its forwarding intact). LLGR adds long-lived
	// graceful restart with that stale time.
	GR         time.Duration
	Restarting bool
	LLGR       time.Duration
}

func (p labPeer) api() *api.Peer {
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN},
		Transport: &api.Transport{LocalAddress: p.Local.String(), RemotePort: 179},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry: 1, HoldTime: holdTime, KeepaliveInterval: keepaliveInterval, IdleHoldTimeAfterReset: idleHoldAfterDown,
		}},
		AfiSafis: []*api.AfiSafi{af},
	}
	if b := p.BFD; b != nil {
		peer.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(b.Interval / time.Microsecond),
			RequiredMinimumReceive:   uint32(b.Interval / time.Microsecond),
			DetectionMultiplier:      uint32(b.Multiplier),
		}
	}
	if p.GR > 0 {
		peer.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(p.GR / time.Second),
			LocalRestarting: p.Restarting,
		}
		af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		if p.LLGR > 0 {
			peer.GracefulRestart.LonglivedEnabled = true
			af.LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
				Enabled: true, RestartTime: uint32(p.LLGR / time.Second),
			}}
		}
	}
	return peer
}

func (s *labSpeaker) addPeer(p labPeer) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.api.AddPeer(ctx, &api.AddPeerRequest{Peer: p.api()}); err != nil {
		s.t.Fatalf("%s: AddPeer %s: %v", s.name, p.Address, err)
	}
}

// updatePeer changes a neighbor's config in place (GoBGP's UpdatePeer).
func (s *labSpeaker) updatePeer(p labPeer) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.api.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: p.api()}); err != nil {
		s.t.Fatalf("%s: UpdatePeer %s: %v", s.name, p.Address, err)
	}
}

// bfdRates measures the BFD packets a second sent to and received from
// the neighbor at addr over d, from GoBGP's counters.
func (s *labSpeaker) bfdRates(addr netip.Addr, d time.Duration) (tx, rx float64) {
	count := func() (uint64, uint64) {
		a := s.peer(addr).GetState().GetBfdState().GetBfdAsync()
		return a.GetTransmittedPackets(), a.GetReceivedPackets()
	}
	t0, r0 := count()
	start := time.Now()
	time.Sleep(d)
	t1, r1 := count()
	el := time.Since(start).Seconds()
	return float64(t1-t0) / el, float64(r1-r0) / el
}

// originate announces prefix with origin IGP and next hop self.
func (s *labSpeaker) originate(prefix netip.Prefix) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	path := &api.Path{
		Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
		Nlri: &api.NLRI{Nlri: &api.NLRI_Prefix{Prefix: &api.IPAddressPrefix{
			Prefix: prefix.Addr().String(), PrefixLen: uint32(prefix.Bits()),
		}}},
		Pattrs: []*api.Attribute{
			{Attr: &api.Attribute_Origin{Origin: &api.OriginAttribute{Origin: 0}}},
			{Attr: &api.Attribute_NextHop{NextHop: &api.NextHopAttribute{NextHop: "0.0.0.0"}}},
		},
	}
	if _, err := s.api.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Path: path}); err != nil {
		s.t.Fatalf("%s: AddPath %s: %v", s.name, prefix, err)
	}
}

// peer returns the neighbor at addr as ListPeer reports it (its state
// with the BFD session's), or nil.
func (s *labSpeaker) peer(addr netip.Addr) *api.Peer {
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.api.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()})
	if err != nil {
		return nil
	}
	r, err := st.Recv()
	if err != nil {
		return nil
	}
	return r.Peer
}

// sessionState and bfdState are the neighbor's BGP and BFD states
// ("established", "up", ... ; "" when unknown).
func (s *labSpeaker) states(addr netip.Addr) (bgpState, bfdState string, p *api.Peer) {
	p = s.peer(addr)
	if p == nil || p.State == nil {
		return "", "", p
	}
	bgpState = string(sessionState(p.State.SessionState))
	if b := p.State.BfdState; b != nil {
		switch b.SessionState {
		case api.BfdSessionState_BFD_SESSION_STATE_UP:
			bfdState = "up"
		case api.BfdSessionState_BFD_SESSION_STATE_INIT:
			bfdState = "init"
		case api.BfdSessionState_BFD_SESSION_STATE_DOWN:
			bfdState = "down"
		case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
			bfdState = "admin_down"
		}
	}
	return bgpState, bfdState, p
}

// stopBGP stops the BGP instance; allowGR closes the sessions of
// neighbors with graceful restart without a NOTIFICATION (RFC 4724: the
// peer then keeps the routes as stale), as a restart must.
func (s *labSpeaker) stopBGP(allowGR bool) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.api.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: allowGR}); err != nil {
		s.t.Fatalf("%s: StopBgp: %v", s.name, err)
	}
}

// kill ends the process with SIGKILL (a crash: the kernel closes its
// sockets, nothing is sent).
func (s *labSpeaker) kill() {
	s.t.Helper()
	if err := s.proc.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	_ = s.proc.Wait()
}

func (s *labSpeaker) log() string {
	b, _ := os.ReadFile(s.proc.LogPath)
	return string(b)
}

func (s *labSpeaker) String() string { return fmt.Sprintf("lab speaker %s in %s", s.name, s.ns) }
