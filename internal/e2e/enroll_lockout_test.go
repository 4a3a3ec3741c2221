package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Attackers try to lock laptops out of enrollment while a laptop with a
// valid invite enrolls; it must succeed at its first attempt, and the
// gateway's enrollment listener must stay within its bounds. The gateway
// runs under deploy/vgate.service's restrictions (netlab.Sandbox), as it
// ships.
//
//	atk (lt9): 64 addresses of fd18::/64, each sending a bad token 5 times a
//	           second, and 200 idle TCP connections held open (re-dialled)
//	lt1:       the laptop (vgate connect --invite over IPv4), and from its
//	           own address 198.18.0.101 a bad token 5 times a second
//	                    \                 /
//	                 198.18.0.0/24, fd18::/64 underlay
//	                           |
//	          gw1 :8443 enrollment (all addresses), :51821 P2S
//	           |
//	          h1 10.1.0.2
func TestEnrollLockout(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"setpriv", "unshare", "findmnt"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (util-linux)", tool)
		}
	}
	unit, err := netlab.ParseUnit(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	lab, gws := site(t, 1)
	g1 := gws[0]
	sb, err := lab.NewSandbox(unit, "sandbox-enroll")
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Apply(g1); err != nil {
		t.Fatal(err)
	}
	g1.Extra = `point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.1:51821
  address_pool: [172.16.201.0/24]
  enroll: { listen: ":8443" }
  groups:
    - name: lan
      allow: [10.1.0.0/16]
`
	start(t, g1)
	inv := newInvite(t, g1, "erin", "--group", "lan")
	lt, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	atk, err := lab.AddLaptop(9)
	if err != nil {
		t.Fatal(err)
	}
	var sources []netip.Addr
	var cmds []string
	for i := range 64 {
		a := netip.MustParseAddr(fmt.Sprintf("fd18::a:%x", i))
		sources = append(sources, a)
		cmds = append(cmds, "-n "+atk.NS+" addr add "+a.String()+"/64 dev wan0 nodad")
	}
	for _, c := range cmds {
		if out, err := lab.Run(atk.NS, append([]string{"ip"}, strings.Fields(c)...)...); err != nil {
			t.Fatalf("ip %s: %v\n%s", c, err, out)
		}
	}
	gwPid := g1.Proc().Pid()
	if st, err := netlab.ProcStatus(gwPid); err != nil || st["NoNewPrivs"] != "1" {
		t.Fatalf("the gateway does not run in the sandbox: %v %v", st, err)
	}
	fdsBase := countFDs(t, gwPid)
	rssBase := rssOf(gwPid)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	atkDial := newNSDialer(t, atk.NS, 4)
	ltDial := newNSDialer(t, lt.NS, 1)
	v6 := netip.AddrPortFrom(lab.Network(1).GatewayUnderlayV6, 8443)
	v4 := netip.AddrPortFrom(lab.Network(1).GatewayUnderlay, 8443)
	var wg sync.WaitGroup
	flood := &floodStats{codes: map[string]int{}}
	for _, src := range sources {
		wg.Add(1)
		go func() { defer wg.Done(); flood.badTokens(ctx, atkDial, src, v6, 200*time.Millisecond) }()
	}
	same := &floodStats{codes: map[string]int{}}
	wg.Add(1)
	go func() { defer wg.Done(); same.badTokens(ctx, ltDial, lt.Underlay, v4, 200*time.Millisecond) }()
	var held, dials atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holdIdle(ctx, atkDial, sources[i%len(sources)], v6, &held, &dials)
		}()
	}
	cpu0, _ := g1.Proc().CPUTime()
	began := time.Now()

	// Sample the gateway's descriptors and memory while the attack runs.
	var fdsPeak, rssPeak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			if n := int64(countFDs(t, gwPid)); n > fdsPeak.Load() {
				fdsPeak.Store(n)
			}
			if n := rssOf(gwPid); n > rssPeak.Load() {
				rssPeak.Store(n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second) // the attackers' buckets are empty by now

	enrollStart := time.Now()
	p, err := lab.Start(lt.NS, "connect.log", vgateBin(t), "connect", "--interface", lt.IfName, "--dns", "off",
		"--output", lab.Path("erin.conf"), "--invite", inv.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	enrolled := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !p.Exited() {
		if _, err := os.Stat(lab.Path("erin.conf")); err == nil {
			enrolled = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	enrollTime := time.Since(enrollStart)
	reached := false
	if enrolled {
		reached = lab.WaitPing(lt.NS, lab.Network(1).HostAddr, 20*time.Second) == nil
	}
	time.Sleep(time.Second)
	attack := time.Since(began)
	cpu1, _ := g1.Proc().CPUTime()
	stop()
	wg.Wait()
	<-sampled
	log, _ := os.ReadFile(p.LogPath)

	st, _ := g1.Status()
	var attempts map[string]uint64
	if st.Enroll != nil {
		attempts = st.Enroll.Attempts
	}
	requests := flood.total() + same.total()
	t.Logf("attack for %v: /64 flood %s; same-source flood %s; idle connections: %d dialled, %d held at the end",
		attack.Round(100*time.Millisecond), flood, same, dials.Load(), held.Load())
	t.Logf("gateway: descriptors %d before, %d at the peak (+%d); resident memory %.1f MiB before, %.1f MiB at the peak; CPU %v for %d attack requests (%.0f µs each); attempts %v",
		fdsBase, fdsPeak.Load(), fdsPeak.Load()-int64(fdsBase), float64(rssBase)/(1<<20), float64(rssPeak.Load())/(1<<20),
		(cpu1 - cpu0).Round(10*time.Millisecond), requests, float64((cpu1-cpu0).Microseconds())/float64(max(requests, 1)), attempts)
	t.Logf("laptop: enrolled %v after %v, reached host 1 %v:\n%s", enrolled, enrollTime.Round(time.Millisecond), reached, tail(string(log), 4))

	if !enrolled {
		t.Errorf("the laptop with a valid invite was locked out at its first attempt:\n%s", tail(string(log), 6))
	} else if !reached {
		t.Errorf("the enrolled laptop did not reach host 1")
	}
	// Keyed by /64: the 64 addresses are one source, which gets Burst
	// answers and one per Refill after that (and one for rounding).
	answered := flood.count("403")
	if limit := enroll.Burst + int(attack/enroll.Refill) + 1; answered > limit {
		t.Errorf("the /64 got %d refusals with a reason in %v, want at most %d (one source)", answered, attack.Round(time.Second), limit)
	}
	// Every connection is counted from accept: one /64 holds at most
	// MaxConnsPerSource, the same-source flood and the laptop one each.
	if extra := fdsPeak.Load() - int64(fdsBase); extra > int64(enroll.MaxConnsPerSource+2+4) {
		t.Errorf("the gateway held %d more descriptors under attack, want at most %d", extra, enroll.MaxConnsPerSource+2+4)
	}
}

// nsDialer dials TCP from a namespace: sockets keep the namespace they
// were made in, so a few threads in the namespace make them and any
// goroutine uses them.
type nsDialer struct{ reqs chan nsDial }

type nsDial struct {
	src  netip.Addr
	dst  netip.AddrPort
	resp chan net.Conn
}

func newNSDialer(t *testing.T, ns string, threads int) *nsDialer {
	t.Helper()
	d := &nsDialer{reqs: make(chan nsDial)}
	for range threads {
		go netlab.InNS(ns, func() error {
			for r := range d.reqs {
				nd := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(r.src, 0))}
				c, err := nd.Dial("tcp", r.dst.String())
				if err != nil {
					c = nil
				}
				r.resp <- c
			}
			return nil
		})
	}
	t.Cleanup(func() { close(d.reqs) })
	return d
}

// dial returns a connection from src to dst, or nil.
func (d *nsDialer) dial(ctx context.Context, src netip.Addr, dst netip.AddrPort) net.Conn {
	r := nsDial{src: src, dst: dst, resp: make(chan net.Conn, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return nil
	}
	return <-r.resp
}

// floodStats counts the outcomes of an attacker's requests.
type floodStats struct {
	mu    sync.Mutex
	codes map[string]int
}

func (f *floodStats) add(code string) {
	f.mu.Lock()
	f.codes[code]++
	f.mu.Unlock()
}

func (f *floodStats) count(code string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.codes[code]
}

func (f *floodStats) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.codes {
		n += v
	}
	return n
}

func (f *floodStats) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for k := range f.codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, f.codes[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// badTokens sends an enrollment request with a random secret from src to
// dst every interval until ctx ends, each on a new TLS connection, and
// counts the answers by HTTP status ("conn" when there was none).
func (f *floodStats) badTokens(ctx context.Context, d *nsDialer, src netip.Addr, dst netip.AddrPort, every time.Duration) {
	priv, _ := keys.GeneratePrivate()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f.add(badTokenOnce(ctx, d, src, dst, priv.Public()))
	}
}

func badTokenOnce(ctx context.Context, d *nsDialer, src netip.Addr, dst netip.AddrPort, pub keys.PublicKey) string {
	c := d.dial(ctx, src, dst)
	if c == nil {
		return "conn"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	var secret [32]byte
	rand.Read(secret[:])
	body, _ := json.Marshal(enroll.Request{Secret: base64.StdEncoding.EncodeToString(secret[:]), PublicKey: pub.String()})
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", enroll.Path, dst, len(body), body)
	if _, err := tc.Write([]byte(req)); err != nil {
		return "conn"
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return "conn"
	}
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// holdIdle keeps one idle TCP connection (no TLS hello) from src to dst
// open until ctx ends, dialling again a second after the server closes it.
func holdIdle(ctx context.Context, d *nsDialer, src netip.Addr, dst netip.AddrPort, held, dials *atomic.Int64) {
	for ctx.Err() == nil {
		c := d.dial(ctx, src, dst)
		if c != nil {
			dials.Add(1)
			held.Add(1)
			done := make(chan struct{})
			go func() {
				select {
				case <-ctx.Done():
				case <-done:
				}
				c.Close()
			}()
			c.Read(make([]byte, 1)) // returns when the server closes it
			close(done)
			held.Add(-1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// rssOf is the resident memory of process pid in bytes (VmRSS), or 0.
func rssOf(pid int) int64 {
	st, err := netlab.ProcStatus(pid)
	if err != nil {
		return 0
	}
	var kb int64
	fmt.Sscanf(st["VmRSS"], "%d kB", &kb)
	return kb << 10
}

// countFDs is the number of open descriptors of process pid.
func countFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}
