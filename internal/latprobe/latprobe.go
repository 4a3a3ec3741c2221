// Package latprobe is a temporary measurement aid: it follows ICMP echo
// packets (and their encrypted form, by size) through a gateway's stages and
// writes per-second percentiles of each stage's delay to a file. Enabled by
// VGATE_LATPROBE=DIR.
package latprobe

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stages.
const (
	SendQueued   = iota // drain read the ICMP from the TUN
	SendHanded          // fqTUN.Read handed it to wireguard-go
	SendSent            // bind.Send of the encrypted (size match)
	RecvDispatch        // mux reader dispatched the encrypted (size match)
	RecvHanded          // session.receive handed it to wireguard-go
	RecvWritten         // TUN Write of the ICMP
	nStages
)

var names = [nStages]string{"s.queued", "s.handed", "s.sent", "r.disp", "r.handed", "r.written"}

var (
	on    = os.Getenv("VGATE_LATPROBE") != ""
	epoch = time.Now()
	last  [nStages]atomic.Int64
	mu    sync.Mutex
	spans = map[string][]float64{}
)

// On reports whether probing is enabled.
func On() bool { return on }

func now() int64 { return int64(time.Since(epoch)) }

// IsEcho reports whether pkt is an IPv4 ICMP echo request or reply.
func IsEcho(pkt []byte) bool {
	if len(pkt) < 28 || pkt[0]>>4 != 4 || pkt[9] != 1 {
		return false
	}
	ihl := int(pkt[0]&0xf) * 4
	return len(pkt) > ihl && (pkt[ihl] == 8 || pkt[ihl] == 0)
}

// EncSize is the size of an encrypted 84-byte ICMP echo.
const EncSize = 128

// IsEncEcho reports whether msg looks like an encrypted ping.
func IsEncEcho(msg []byte) bool {
	return len(msg) == EncSize && binary.LittleEndian.Uint32(msg[0:4]) == 4
}

// Mark records stage s now; with from >= 0 it also records the span from
// stage from's last mark.
func Mark(s int, from ...int) {
	if !on {
		return
	}
	t := now()
	last[s].Store(t)
	for _, f := range from {
		p := last[f].Load()
		if p == 0 || t-p > int64(time.Second) {
			continue
		}
		add(names[f]+"->"+names[s], float64(t-p)/1e6)
	}
}

func add(k string, v float64) {
	mu.Lock()
	spans[k] = append(spans[k], v)
	mu.Unlock()
}

func init() {
	if !on {
		return
	}
	dir := os.Getenv("VGATE_LATPROBE")
	go func() {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("latprobe-%d.txt", os.Getpid())))
		if err != nil {
			return
		}
		for range time.Tick(time.Second) {
			mu.Lock()
			cur := spans
			spans = map[string][]float64{}
			mu.Unlock()
			keys := make([]string, 0, len(cur))
			for k := range cur {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			ts := time.Now().UTC().Format("15:04:05")
			for _, k := range keys {
				v := cur[k]
				slices.Sort(v)
				fmt.Fprintf(f, "%s %-22s n=%3d p50=%6.2f p90=%6.2f max=%6.2f\n", ts, k, len(v), v[len(v)/2], v[len(v)*9/10], v[len(v)-1])
			}
		}
	}()
}
