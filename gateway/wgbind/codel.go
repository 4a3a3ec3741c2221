package wgbind

import (
	"math"
	"time"
)

// A device's queue is drained by its wireguard-go device, which takes no
// more than its receive budget (gateway/dataplane/budget.go): when the
// device cannot keep up, the backlog of a saturated tunnel stands here. It
// is managed by CoDel (RFC 8289) on the sojourn time of the packet at the
// head: once that stays above codelTarget for codelInterval, transport
// packets are dropped at a rate rising with the square root of the drop
// count, so TCP through the tunnel backs off and the queue stays near the
// target instead of filling to queueLen. Encrypted packets carry no flow
// to separate; handshake messages and keepalives are never dropped.
//
// What can be told apart is size: a transport packet of at most
// smallTransportMax bytes (a ping, a TCP ACK, a voice frame, an SSH
// keystroke) waits in a lane of its own, which the device takes first for
// up to half of each batch, so a sparse flow does not wait behind a bulk
// transfer's backlog, and a flood of small packets gets no more than half
// the packets (a sixth of the bytes) when the main queue is busy. Lanes
// reorder only small packets ahead of large ones, by at most the main
// queue's length, well within WireGuard's replay window (8128 packets).
const (
	codelTarget   = 5 * time.Millisecond
	codelInterval = 100 * time.Millisecond

	smallTransportMax = 256
	smallLaneLen      = 512
)

// smallTransport reports whether pb goes to the small lane.
func smallTransport(pb *packetBuf) bool {
	return pb.n <= smallTransportMax && pb.n > transportMin && pb.data[0] == msgTransport
}

// codel is the state of one queue's CoDel.
type codel struct {
	firstAbove time.Duration // when the sojourn may count as persistent; 0: below target
	dropNext   time.Duration
	count      uint32
	lastCount  uint32
	dropping   bool
}

// drop decides for the packet taken from the head at now, after sojourn in
// the queue, with backlog packets left behind it.
func (c *codel) drop(sojourn, now time.Duration, backlog int) bool {
	okToDrop := false
	switch {
	case sojourn < codelTarget || backlog == 0:
		c.firstAbove = 0
	case c.firstAbove == 0:
		c.firstAbove = now + codelInterval
	case now >= c.firstAbove:
		okToDrop = true
	}
	if c.dropping {
		if !okToDrop {
			c.dropping = false
			return false
		}
		if now < c.dropNext {
			return false
		}
		c.count++
		c.dropNext = controlLaw(c.dropNext, c.count)
		return true
	}
	if !okToDrop {
		return false
	}
	c.dropping = true
	// Dropping again soon after the last stretch: resume near its rate.
	if delta := c.count - c.lastCount; delta > 1 && now-c.dropNext < 16*codelInterval {
		c.count = delta
	} else {
		c.count = 1
	}
	c.dropNext = controlLaw(now, c.count)
	c.lastCount = c.count
	return true
}

func controlLaw(t time.Duration, count uint32) time.Duration {
	return t + time.Duration(float64(codelInterval)/math.Sqrt(float64(count)))
}
