package daemon

import (
	"os"
	"runtime/debug"
)

// gcPercent is the gateway's GOGC unless the environment sets one. A
// gateway's heap is nearly all long-lived buffers (wireguard-go's per
// tunnel) and it allocates little once running, so collecting at 1.5x the
// live heap instead of Go's 2x costs a few collections more and keeps
// resident memory lower (figures in docs/architecture.md).
const gcPercent = 50

// setGCPercent applies gcPercent when GOGC is not set.
func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}
