// Command throughput measures host-to-host throughput, latency and gateway
// CPU across two sites, for vgate and the baselines it must be compared with,
// in one run on one machine:
//
//	host1 ── gw1 ══ underlay bridge ══ gw2 ── host2      (internal/netlab)
//
//	plain   plain routed forwarding, no encryption: the machine's limit
//	wggo    wireguard-go built from the library version vgate embeds (go.mod)
//	debian  Debian's /usr/bin/wireguard-go (package wireguard-go)
//	vgate   `vgate run --config F` on both gateways
//	vgate-relay  the same with all UDP between the sites dropped (nftables):
//	        the tunnel runs through `vgate relay` (TLS + WebSocket, TCP 443)
//	        in a third namespace; its CPU counts with the gateways'
//	ipsec   vgate (IPsec peering: its charon, kernel-libipsec) on gw1, a stock
//	        strongSwan (charon + swanctl, kernel-libipsec) on gw2
//	swan    the same stock strongSwan on both gateways: ipsec's baseline
//	        (same plugins, openssl before aes/gcm, same proposals)
//	vgate0  the same with -vgate0 PATH (a build before a change: A/B in one run)
//	nat     vgate with NAT rules on gw1's peering: an ingress rule for site 2
//	        and an egress rule for site 1, so gw1 translates both addresses
//	        of every packet each way (docs/nat.md); nat/vgate is the ratio
//	vgate0-relay  vgate-relay with the -vgate0 binary (gateways and relay)
//
// Each mode gets its own lab, all set up first; then every round measures
// every mode in turn (interleaved, so drift hits all modes alike): iperf3 TCP
// with 1 and 4 streams, 20 pings, and the CPU time the gateway processes used
// during each iperf3 run (utime+stime from /proc; n/a for plain forwarding,
// which runs in the kernel; for ipsec and swan both gateways' IKE daemons
// and vgate count). The table shows medians over rounds, and the p50, p99
// and p99.9 of every ping under load over all rounds; for vgate the log says
// where the backlog stood halfway through each run and what its queue
// management dropped. It never asserts anything about the figures.
//
// Run as root from the repository root:
//
//	go run ./bench/throughput -vgate bin/vgate [-modes plain,wggo,debian,vgate] [-vgate0 OLD] [-rounds 3] [-duration 5s] [-cpuprofile DIR] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

var allModes = []string{"plain", "wggo", "debian", "vgate", "vgate0", "vgate-relay", "vgate0-relay", "ipsec", "swan", "nat"}

type options struct {
	modes     []string
	rounds    int
	duration  time.Duration
	streams   []int
	pings     int
	vgate     string
	vgate0    string
	wggo      string
	debianWG  string
	jsonOut   bool
	keepFiles bool
	profDir   string
}

func main() {
	var o options
	var modes, streams string
	flag.StringVar(&modes, "modes", strings.Join(allModes[:4], ","), "comma-separated modes: "+strings.Join(allModes, ","))
	flag.IntVar(&o.rounds, "rounds", 3, "measurement rounds (medians are reported)")
	o.duration = 5 * time.Second
	flag.Var((*seconds)(&o.duration), "duration", "length of each iperf3 run (5s, or plain seconds: 5)")
	flag.StringVar(&streams, "streams", "1,4", "comma-separated iperf3 parallel stream counts")
	flag.IntVar(&o.pings, "pings", 20, "pings per round for the RTT figure")
	flag.StringVar(&o.vgate, "vgate", "./bin/vgate", "vgate binary (mode vgate)")
	flag.StringVar(&o.vgate0, "vgate0", "", "another vgate binary, e.g. a build before a change, measured in the same run as mode vgate0 (added to -modes when set)")
	flag.StringVar(&o.wggo, "wggo", "", "wireguard-go binary for mode wggo (default: go build golang.zx2c4.com/wireguard at the go.mod version)")
	flag.StringVar(&o.debianWG, "debian", "/usr/bin/wireguard-go", "Debian's wireguard-go binary (mode debian)")
	flag.BoolVar(&o.jsonOut, "json", false, "print results as JSON instead of a table")
	flag.StringVar(&o.profDir, "cpuprofile", "", "directory for CPU profiles of the vgate gateways, one per iperf3 run (through VGATE_DEBUG_PPROF)")
	flag.BoolVar(&o.keepFiles, "keep", false, "keep lab directories (logs, configs) and print their paths")
	flag.Parse()

	for _, m := range strings.Split(modes, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		if !slices.Contains(allModes, m) {
			fatalf("unknown mode %q (want some of %s)", m, strings.Join(allModes, ","))
		}
		if !slices.Contains(o.modes, m) {
			o.modes = append(o.modes, m)
		}
	}
	if o.vgate0 != "" && !slices.Contains(o.modes, "vgate0") {
		o.modes = append(o.modes, "vgate0")
	}
	if (slices.Contains(o.modes, "vgate0") || slices.Contains(o.modes, "vgate0-relay")) && o.vgate0 == "" {
		fatalf("mode vgate0 needs -vgate0 PATH")
	}
	for _, s := range strings.Split(streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 128 {
			fatalf("bad -streams entry %q", s)
		}
		o.streams = append(o.streams, n)
	}
	if len(o.modes) == 0 || o.rounds < 1 || o.duration < time.Second || o.pings < 1 {
		fatalf("need at least one mode, -rounds >= 1, -duration >= 1s, -pings >= 1")
	}
	if o.profDir != "" {
		if err := os.MkdirAll(o.profDir, 0o755); err != nil {
			fatalf("-cpuprofile: %v", err)
		}
	}
	if !netlab.Root() {
		fatalf("needs root (network namespaces): run as root, e.g. sudo -E go run ./bench/throughput")
	}
	for _, c := range []string{"ip", "iperf3", "ping", "wg"} {
		if !haveCmd(c) {
			fatalf("%s not found: run scripts/deps.sh as root", c)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if rep != nil {
		if o.jsonOut {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				fatalf("%v", err)
			}
		} else {
			printTable(os.Stdout, rep)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "throughput:", err)
		os.Exit(1)
	}
}

// seconds is a duration flag that also takes a bare number of seconds.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	*s = seconds(d)
	return err
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "throughput: "+format+"\n", args...)
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Report is the JSON output.
type Report struct {
	Started     time.Time    `json:"started"`
	Rounds      int          `json:"rounds"`
	DurationSec float64      `json:"duration_seconds"`
	CPUs        int          `json:"cpus"`
	LoadAvg     string       `json:"loadavg_at_start"` // other work on the machine skews figures
	Modes       []*ModeRun   `json:"modes"`
	Summary     []SummaryRow `json:"summary"`
	Ratios      []Ratio      `json:"ratios"`
}

// ModeRun holds the raw samples of one mode.
type ModeRun struct {
	Mode    string    `json:"mode"`
	Binary  string    `json:"binary,omitempty"`
	Version string    `json:"version,omitempty"`
	Error   string    `json:"error,omitempty"`
	Samples []Sample  `json:"samples"`
	RTTms   []float64 `json:"rtt_ms"`

	lab *netlab.Lab
	gws []*netlab.Proc // gateway processes whose CPU is counted
	// pids returns more processes whose CPU is counted (vgate's charon).
	pids  func() []int
	uapi  []string // wireguard-go interface names (UAPI sockets)
	pprof []string // vgate: the gateways' VGATE_DEBUG_PPROF sockets
	vgws  []*netlab.Gateway
	dst   string // host2 address
	hostA string // namespace running the clients
}

// Sample is one iperf3 run.
type Sample struct {
	Round       int      `json:"round"`
	Streams     int      `json:"streams"`
	Gbps        float64  `json:"gbps"`
	Retransmits int      `json:"retransmits"`
	CPUSeconds  *float64 `json:"gateway_cpu_seconds"` // nil: not measurable (plain)
	// LoadRTTms: every reply of a 50 pps ping that ran alongside iperf3.
	LoadRTTms []float64 `json:"load_rtt_ms,omitempty"`
}

// SummaryRow is the median over rounds for one mode and stream count.
type SummaryRow struct {
	Mode       string   `json:"mode"`
	Streams    int      `json:"streams"`
	Gbps       float64  `json:"gbps_median"`
	GbpsMin    float64  `json:"gbps_min"`
	GbpsMax    float64  `json:"gbps_max"`
	RTTms      float64  `json:"rtt_ms_median"`
	CPUSeconds *float64 `json:"gateway_cpu_seconds_median"`
	CPUPerGB   *float64 `json:"gateway_cpu_seconds_per_gbyte"`
	// LoadRTT: ping RTT percentiles while iperf3 ran, over all rounds.
	LoadRTTp50  float64 `json:"load_rtt_ms_p50"`
	LoadRTTp99  float64 `json:"load_rtt_ms_p99"`
	LoadRTTp999 float64 `json:"load_rtt_ms_p99_9"`
	Error       string  `json:"error,omitempty"`
}

// Ratio compares the median throughput of two modes.
type Ratio struct {
	Name    string  `json:"name"` // e.g. "vgate/wggo"
	Streams int     `json:"streams"`
	Value   float64 `json:"value"`
}

func run(ctx context.Context, o options) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), Rounds: o.rounds, DurationSec: o.duration.Seconds(), CPUs: numCPU(), LoadAvg: netlab.LoadAvg()}
	tmp, err := os.MkdirTemp("", "vgate-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var errs []error
	defer func() {
		for _, m := range rep.Modes {
			closeMode(m, o.keepFiles)
		}
	}()

	// Set up every mode first.
	for _, name := range o.modes {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m := &ModeRun{Mode: name}
		rep.Modes = append(rep.Modes, m)
		logf("setting up %s", name)
		if err := setupMode(ctx, m, o, tmp); err != nil {
			m.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			logf("%s: %v", name, err)
			closeMode(m, o.keepFiles)
		}
	}

	// Measure, interleaving modes within each round.
	for r := 1; r <= o.rounds; r++ {
		for _, m := range rep.Modes {
			if m.Error != "" {
				continue
			}
			if err := measureRound(ctx, m, o, r); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				m.Error = fmt.Sprintf("round %d: %v", r, err)
				errs = append(errs, fmt.Errorf("%s: %s", m.Mode, m.Error))
				logf("%s: %s", m.Mode, m.Error)
				closeMode(m, o.keepFiles)
			}
		}
	}
	rep.Summary, rep.Ratios = summarize(rep.Modes, o.streams, o.duration.Seconds())
	return rep, errors.Join(errs...)
}

func measureRound(ctx context.Context, m *ModeRun, o options, round int) error {
	// Latency first, on the idle path.
	rtt, err := pingRTT(ctx, m.lab, m.hostA, m.dst, o.pings)
	if err != nil {
		return err
	}
	m.RTTms = append(m.RTTms, rtt)
	logf("round %d %-6s rtt %.3f ms", round, m.Mode, rtt)
	for _, n := range o.streams {
		before, err := cpuTotal(m.gws, m.pids)
		if err != nil {
			return err
		}
		// Alongside iperf3: a 50 pps ping (RTT under load) starting a
		// second in, when TCP has filled the path, and with -cpuprofile a
		// CPU profile of each vgate gateway.
		var loadRTT []float64
		var pingErr error
		side := make(chan struct{})
		var pending int
		go func() {
			defer func() { side <- struct{}{} }()
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			loadRTT, pingErr = pingUnderLoad(ctx, m.lab, m.hostA, m.dst, o.duration-2*time.Second)
		}()
		pending++
		if len(m.vgws) > 0 { // where the backlog stands, halfway through
			pending++
			go func() {
				defer func() { side <- struct{}{} }()
				select {
				case <-time.After(o.duration / 2):
					logDepths(m)
				case <-ctx.Done():
				}
			}()
		}
		if o.profDir != "" {
			for i, sock := range m.pprof {
				path := filepath.Join(o.profDir, fmt.Sprintf("%s-gw%d-%dstreams-r%d.pb.gz", m.Mode, i+1, n, round))
				pending++
				go func() {
					defer func() { side <- struct{}{} }()
					if err := cpuProfile(ctx, sock, path, max(1, int(o.duration.Seconds())-1)); err != nil {
						logf("cpu profile %s: %v", path, err)
					}
				}()
			}
		}
		res, err := iperf(ctx, m.lab, m.hostA, m.dst, n, o.duration)
		for ; pending > 0; pending-- {
			<-side
		}
		if err != nil {
			return err
		}
		if pingErr != nil {
			logf("round %d %-6s %d stream(s): %v", round, m.Mode, n, pingErr)
		}
		s := Sample{Round: round, Streams: n, Gbps: res.gbps, Retransmits: res.retransmits, LoadRTTms: loadRTT}
		if len(m.gws) > 0 {
			after, err := cpuTotal(m.gws, m.pids)
			if err != nil {
				return err
			}
			c := (after - before).Seconds()
			s.CPUSeconds = &c
		}
		m.Samples = append(m.Samples, s)
		logf("round %d %-6s %d stream(s): %.2f Gbit/s, %d retransmits, gateway CPU %s, RTT under load p50 %.2f p99 %.2f ms (%d replies)",
			round, m.Mode, n, s.Gbps, s.Retransmits, fmtOpt(s.CPUSeconds, "%.2f s"),
			percentile(loadRTT, 50), percentile(loadRTT, 99), len(loadRTT))
		logQueues(m)
	}
	return nil
}

// logDepths logs, for each vgate gateway, how many packets wait in its
// send queue, are in flight in the device each way, and wait in the shared
// port's device queue.
func logDepths(m *ModeRun) {
	for _, g := range m.vgws {
		st, err := g.Status()
		if err != nil {
			continue
		}
		var queued, sendFlight, recvFlight, port int
		for _, p := range st.Peerings {
			if q := p.Queue; q != nil {
				queued, sendFlight, recvFlight = queued+q.Queued, sendFlight+q.SendInFlight, recvFlight+q.RecvInFlight
			}
		}
		for _, d := range st.Port.Devices {
			port += d.QueueDepth
		}
		logf("  %s %s under load: send queue %d, in flight %d sent / %d received, port queue %d", m.Mode, g.Name, queued, sendFlight, recvFlight, port)
	}
}

// logQueues logs what vgate's queue management did so far on each gateway:
// drops at the send queue (CoDel, overflow), CE marks, budget resets, and
// CoDel drops at the shared port's device queues.
func logQueues(m *ModeRun) {
	for _, g := range m.vgws {
		st, err := g.Status()
		if err != nil {
			continue
		}
		var codel, ce, limit, resync, port uint64
		for _, p := range st.Peerings {
			if q := p.Queue; q != nil {
				codel, ce, limit, resync = codel+q.DroppedCoDel, ce+q.MarkedCE, limit+q.DroppedLimit, resync+q.BudgetResyncs
			}
		}
		for _, d := range st.Port.Devices {
			port += d.DroppedCoDel
		}
		logf("  %s %s: send queue CoDel drops %d, CE marks %d, overflow %d, budget resets %d; port queue CoDel drops %d",
			m.Mode, g.Name, codel, ce, limit, resync, port)
	}
}

func cpuTotal(ps []*netlab.Proc, pids func() []int) (time.Duration, error) {
	var sum time.Duration
	if pids != nil {
		for _, pid := range pids() {
			c, err := netlab.ProcessCPUTime(pid)
			if err != nil {
				return 0, fmt.Errorf("process %d: %w", pid, err)
			}
			sum += c
		}
	}
	for _, p := range ps {
		if p.Exited() {
			return 0, fmt.Errorf("gateway process %d (%s) exited; log:\n%s", p.Pid(), p.Args[0], p.LogTail(20))
		}
		c, err := p.CPUTime()
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

func summarize(modes []*ModeRun, streams []int, runSeconds float64) ([]SummaryRow, []Ratio) {
	var rows []SummaryRow
	med := map[string]map[int]float64{}
	for _, m := range modes {
		med[m.Mode] = map[int]float64{}
		for _, n := range streams {
			row := SummaryRow{Mode: m.Mode, Streams: n, Error: m.Error}
			var g, c, lr []float64
			for _, s := range m.Samples {
				if s.Streams != n {
					continue
				}
				g = append(g, s.Gbps)
				lr = append(lr, s.LoadRTTms...)
				if s.CPUSeconds != nil {
					c = append(c, *s.CPUSeconds)
				}
			}
			if len(g) > 0 {
				row.Gbps, row.GbpsMin, row.GbpsMax = median(g), slices.Min(g), slices.Max(g)
				med[m.Mode][n] = row.Gbps
				if len(m.RTTms) > 0 {
					row.RTTms = median(m.RTTms)
				}
			}
			row.LoadRTTp50, row.LoadRTTp99, row.LoadRTTp999 = percentile(lr, 50), percentile(lr, 99), percentile(lr, 99.9)
			if len(c) > 0 {
				cm := median(c)
				row.CPUSeconds = &cm
				// GB moved in one run at the median rate.
				if gb := row.Gbps * runSeconds / 8; gb > 0 {
					per := cm / gb
					row.CPUPerGB = &per
				}
			}
			rows = append(rows, row)
		}
	}
	var ratios []Ratio
	for _, pair := range [][2]string{{"vgate", "wggo"}, {"nat", "vgate"}, {"vgate", "vgate0"}, {"vgate-relay", "vgate0-relay"}, {"vgate-relay", "vgate"}, {"vgate0", "wggo"}, {"vgate", "debian"}, {"vgate", "plain"}, {"wggo", "debian"}, {"wggo", "plain"}, {"ipsec", "swan"}} {
		for _, n := range streams {
			a, okA := med[pair[0]][n]
			b, okB := med[pair[1]][n]
			if okA && okB && b > 0 {
				ratios = append(ratios, Ratio{Name: pair[0] + "/" + pair[1], Streams: n, Value: a / b})
			}
		}
	}
	return rows, ratios
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtOpt(v *float64, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

func printTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\nhost1 -> gw1 -> underlay -> gw2 -> host2, iperf3 TCP %gs x %d rounds (medians), %d CPUs, load average at start %s\n\n",
		rep.DurationSec, rep.Rounds, rep.CPUs, rep.LoadAvg)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tstreams\tGbit/s\tmin-max\tidle RTT ms\tload RTT p50\tp99\tp99.9\tgw CPU s\tCPU s/GB\t")
	for _, r := range rep.Summary {
		if r.Error != "" && r.Gbps == 0 {
			fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t\n", r.Mode, r.Streams)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f-%.2f\t%.3f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", r.Mode, r.Streams, r.Gbps, r.GbpsMin, r.GbpsMax,
			r.RTTms, r.LoadRTTp50, r.LoadRTTp99, r.LoadRTTp999, fmtOpt(r.CPUSeconds, "%.2f"), fmtOpt(r.CPUPerGB, "%.2f"))
	}
	tw.Flush()
	if len(rep.Ratios) > 0 {
		fmt.Fprintln(w, "\nthroughput ratios (median Gbit/s):")
		for _, r := range rep.Ratios {
			fmt.Fprintf(w, "  %-13s %d stream(s): %.2f\n", r.Name, r.Streams, r.Value)
		}
	}
	for _, m := range rep.Modes {
		if m.Version != "" {
			fmt.Fprintf(w, "\n%s: %s %s", m.Mode, m.Binary, m.Version)
		}
	}
	fmt.Fprintln(w)
	for _, m := range rep.Modes {
		if m.Error != "" {
			fmt.Fprintf(w, "\n%s FAILED: %s\n", m.Mode, m.Error)
		}
	}
}
