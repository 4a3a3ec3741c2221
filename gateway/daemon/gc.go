package daemon

import (
	"os"
	"runtime/debug"
)

// gcPercent is the gateway's GOGC unless the environment sets one. A
// gateway's heap is nearly all long-lived buffers (wireguard-go keeps
// 96 x 64 KiB per tunnel) and it allocates little once running (issue 14:
// ~0.1 MB/s idle, pooled buffers under load), so collecting at 1.5x the
// live heap instead of Go's 2x costs a few collections more and keeps
// each gateway's resident memory about a quarter lower (bench/scale:
// 21 gateways, 752 -> 580 MiB PSS).
const gcPercent = 50

// setGCPercent applies gcPercent when GOGC is not set.
func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}
