package dataplane

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgspec"
)

// keepaliveSeconds rounds a keepalive up to whole seconds, as the UAPI wants.
func keepaliveSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// peerLines writes the lines that set every attribute of p except
// AllowedIPs after its public_key line.
func peerLines(b *strings.Builder, p wgspec.PeerSpec) {
	fmt.Fprintf(b, "public_key=%s\n", p.PublicKey.Hex())
	if p.Endpoint.IsValid() {
		fmt.Fprintf(b, "endpoint=%s\n", p.Endpoint)
	}
	fmt.Fprintf(b, "persistent_keepalive_interval=%d\n", keepaliveSeconds(p.Keepalive))
}

// DeviceUAPI is the UAPI "set" text that configures a fresh tunnel device:
// its private key and exactly one peer. The returned text contains the
// private key: pass it to IpcSet, never to a log.
func DeviceUAPI(priv keys.PrivateKey, p wgspec.PeerSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nreplace_peers=true\n", priv.Hex())
	peerLines(&b, p)
	b.WriteString("replace_allowed_ips=true\n")
	add, _ := wgspec.DiffPrefixes(nil, p.AllowedIPs)
	for _, q := range add {
		fmt.Fprintf(&b, "allowed_ip=%s\n", q)
	}
	return b.String()
}

// UpdateUAPI is the UAPI "set" text that moves a running tunnel's peer from
// have to want, or "" when nothing changes. AllowedIPs are updated by diff
// (allowed_ip=P / allowed_ip=-P), never replaced wholesale, so traffic of
// unchanged prefixes is never dropped. A new public key is a new peer: the
// old one is removed and the new one added with all its AllowedIPs.
func UpdateUAPI(have, want wgspec.PeerSpec) string {
	if have.Equal(want) {
		return ""
	}
	var b strings.Builder
	if have.PublicKey != want.PublicKey {
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", have.PublicKey.Hex())
		peerLines(&b, want)
		add, _ := wgspec.DiffPrefixes(nil, want.AllowedIPs)
		for _, q := range add {
			fmt.Fprintf(&b, "allowed_ip=%s\n", q)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "public_key=%s\nupdate_only=true\n", want.PublicKey.Hex())
	if want.Endpoint != have.Endpoint && want.Endpoint.IsValid() {
		fmt.Fprintf(&b, "endpoint=%s\n", want.Endpoint)
	}
	if want.Keepalive != have.Keepalive {
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", keepaliveSeconds(want.Keepalive))
	}
	add, del := wgspec.DiffPrefixes(have.AllowedIPs, want.AllowedIPs)
	// Add before removing, so a prefix moving to a more-specific one is
	// never uncovered in between.
	for _, q := range add {
		fmt.Fprintf(&b, "allowed_ip=%s\n", q)
	}
	for _, q := range del {
		fmt.Fprintf(&b, "allowed_ip=-%s\n", q)
	}
	return b.String()
}

// PeerStats is what wireguard-go reports about a tunnel's peer.
type PeerStats struct {
	PublicKey     keys.PublicKey
	Endpoint      string
	LastHandshake time.Time // zero: never
	RxBytes       uint64
	TxBytes       uint64
	AllowedIPs    []netip.Prefix
	// DroppedSource counts packets from the peer dropped because their
	// source is not in its AllowedIPs (srccheck.go); 0 from a dump.
	DroppedSource uint64
	// NAT are the seam's translation counters (nat.go); zero from a dump.
	NAT NATStats
	// Queue is the tunnel's queue management (queue.go); nil from a dump.
	Queue *api.QueueStatus
}

// ParseDump reads every peer section of an IpcGet dump, keyed by public
// key. Device-level lines (including private_key) are skipped and never
// retained. On a malformed value it returns what it has read with the error.
func ParseDump(dump string) (map[keys.PublicKey]*PeerStats, error) {
	out := map[keys.PublicKey]*PeerStats{}
	var cur *PeerStats
	var sec, nsec int64
	flush := func() {
		if cur != nil && (sec != 0 || nsec != 0) {
			cur.LastHandshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	// Lines are cut from dump in place (no scanner buffer: the gateway
	// reads every tunnel's dump every second).
	for rest := dump; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\r"), "=")
		if !ok {
			continue
		}
		if k == "public_key" {
			flush()
			cur = nil
			var pub keys.PublicKey
			if b, err := hex.DecodeString(v); err == nil && len(b) == keys.Len {
				copy(pub[:], b)
				cur = &PeerStats{PublicKey: pub}
				out[pub] = cur
			}
			continue
		}
		if cur == nil {
			continue
		}
		var err error
		switch k {
		case "endpoint":
			cur.Endpoint = v
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			cur.RxBytes, err = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			cur.TxBytes, err = strconv.ParseUint(v, 10, 64)
		case "allowed_ip":
			var q netip.Prefix
			q, err = netip.ParsePrefix(v)
			cur.AllowedIPs = append(cur.AllowedIPs, q)
		}
		if err != nil {
			flush()
			return out, fmt.Errorf("wireguard peer stats: %s: %w", k, err)
		}
	}
	flush()
	return out, nil
}

// ParsePeerStats reads the peer section of an IpcGet dump for the peer with
// the given public key.
func ParsePeerStats(dump string, pub keys.PublicKey) (PeerStats, bool, error) {
	all, err := ParseDump(dump)
	if err != nil {
		return PeerStats{}, false, err
	}
	st, ok := all[pub]
	if !ok {
		return PeerStats{}, false, nil
	}
	return *st, true, nil
}
