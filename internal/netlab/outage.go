package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Pinger is a steady ping from one namespace to one address, measuring the
// host-to-host outage: the longest gap between two replies.
type Pinger struct {
	interval time.Duration
	start    time.Time
	d        time.Duration
	done     chan struct{}
	out      string
	err      error
}

// PingResult is what a Pinger saw.
type PingResult struct {
	Sent, Received int
	// LongestGap is the longest time between two consecutive replies (or
	// from the start to the first, or from the last to the end).
	LongestGap time.Duration
	// Replies are the times the replies came, in order.
	Replies []time.Time
}

// Outage is the longest gap minus one ping interval: the time no reply
// came beyond the steady spacing (0 when nothing was lost).
func (r PingResult) Outage(interval time.Duration) time.Duration {
	return max(r.LongestGap-interval, 0)
}

// StartPing pings dst from ns every interval (ping -D, as root down to
// 2 ms) for d (whole seconds); Wait reports.
func (l *Lab) StartPing(ns string, dst netip.Addr, interval, d time.Duration) *Pinger {
	p := &Pinger{interval: interval, start: time.Now(), d: d.Round(time.Second), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		// -w: ping ends by itself (and flushes what it printed); -W: a
		// reply later than 1 s counts as lost.
		p.out, p.err = l.RunContext(context.Background(), ns, "ping", "-D", "-n", "-W", "1",
			"-w", strconv.Itoa(int(d.Round(time.Second)/time.Second)),
			"-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), dst.String())
	}()
	return p
}

var pingReplyRE = regexp.MustCompile(`(?m)^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=(\d+)`)

// Wait waits for the ping to end and reports the longest gap between
// replies.
func (p *Pinger) Wait() PingResult {
	<-p.done
	// ping ran for d at most: a Wait called later must not count the
	// time after it as a gap.
	end := time.Now()
	if e := p.start.Add(p.d); e.Before(end) {
		end = e
	}
	return parsePing(p.out, p.start, end, p.interval)
}

func parsePing(out string, start, end time.Time, interval time.Duration) PingResult {
	var res PingResult
	var at []time.Time
	maxSeq := 0
	for _, m := range pingReplyRE.FindAllStringSubmatch(out, -1) {
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac := m[2]
		for len(frac) < 9 {
			frac += "0"
		}
		ns, _ := strconv.ParseInt(frac[:9], 10, 64)
		at = append(at, time.Unix(sec, ns))
		seq, _ := strconv.Atoi(m[3])
		maxSeq = max(maxSeq, seq)
	}
	res.Received = len(at)
	res.Sent = max(int(end.Sub(start)/interval), maxSeq)
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	res.Replies = at
	prev := start
	for _, t := range at {
		res.LongestGap = max(res.LongestGap, t.Sub(prev))
		prev = t
	}
	res.LongestGap = max(res.LongestGap, end.Sub(prev))
	return res
}

// UnderlayLoss drops percent of the UDP packets crossing the lab's
// underlay bridge at random, each packet on its own, in each direction
// (nftables in the WAN namespace: `numgen random mod 100 < percent drop`;
// 10 % is the same as `numgen random mod 10 == 0 drop`); the returned
// function removes the rule.
func (l *Lab) UnderlayLoss(percent int) (func() error, error) {
	if percent < 1 || percent > 100 {
		return nil, fmt.Errorf("netlab: loss %d%% out of range", percent)
	}
	// numgen random mod 100 < percent: each packet independently.
	cmds := [][]string{
		{"nft", "add", "table", "bridge", "vgloss"},
		{"nft", "add", "chain", "bridge", "vgloss", "lossy", "{ type filter hook forward priority 0 ; }"},
		{"nft", "add", "rule", "bridge", "vgloss", "lossy", "meta", "l4proto", "udp", "numgen", "random", "mod", "100", "<", strconv.Itoa(percent), "counter", "drop"},
	}
	for _, c := range cmds {
		if out, err := l.Run(l.WAN, c...); err != nil {
			return nil, fmt.Errorf("netlab: %v: %w\n%s", c, err, out)
		}
	}
	// WireGuard sends UDP GSO batches: across veths and the bridge a batch
	// stays one packet unless the sender's wan0 takes one segment at a
	// time, so that the loss is per packet on the wire.
	l.mu.Lock()
	var nss []string
	for _, n := range l.networks {
		nss = append(nss, n.GatewayNS)
	}
	l.mu.Unlock()
	for _, ns := range nss {
		if out, err := l.Run(ns, "ip", "link", "set", "dev", "wan0", "gso_max_segs", "1"); err != nil {
			return nil, fmt.Errorf("netlab: one segment per packet on %s: %w\n%s", ns, err, out)
		}
	}
	return func() error {
		_, err := l.Run(l.WAN, "nft", "delete", "table", "bridge", "vgloss")
		return err
	}, nil
}

// UnderlayDropped is how many packets UnderlayLoss dropped so far.
func (l *Lab) UnderlayDropped() (int, error) {
	out, err := l.Run(l.WAN, "nft", "list", "chain", "bridge", "vgloss", "lossy")
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("netlab: no counter in %s", out)
	}
	return strconv.Atoi(m[1])
}
