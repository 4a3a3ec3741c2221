package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/nat"
)

// Direction says which way a captured packet crossed the tunnel.
type Direction uint8

const (
	// Outbound packets were read from the TUN: they are about to be
	// encrypted and sent to the peer.
	Outbound Direction = iota + 1
	// Inbound packets were decrypted from the peer and written to the TUN.
	Inbound
)

// Capture limits: hard caps whatever a caller asks for.
const (
	DefaultSnaplen       = 65535
	DefaultCaptureQueue  = 1024
	MaxCaptureDuration   = 24 * time.Hour
	DefaultCaptureTime   = api.DefaultCaptureDuration
	DefaultCaptureBytes  = api.DefaultCaptureBytes
	MaxCaptureBytes      = 1 << 30
	pcapFileHeaderLen    = 24
	pcapRecordHeaderLen  = 16
	captureFlushInterval = 200 * time.Millisecond
)

// ErrCaptureBusy: a tunnel carries at most one capture at a time.
var ErrCaptureBusy = errors.New("a capture is already running on this tunnel")

// CapturedPacket is one packet copied off a tunnel's TUN seam.
type CapturedPacket struct {
	Time time.Time
	Dir  Direction
	Len  int    // length on the wire
	Data []byte // the first snaplen bytes
}

// Capture receives copies of the plaintext packets of one tunnel. The data
// path only ever does a non-blocking send: when the reader falls behind,
// packets are dropped (and counted), never queued without bound, so a
// capture cannot slow the tunnel down beyond the copy it makes.
type Capture struct {
	snaplen int
	ch      chan CapturedPacket
	dropped atomic.Uint64
}

// NewCapture returns a capture keeping at most snaplen bytes of each packet
// (DefaultSnaplen if ≤ 0) and buffering at most queue packets.
func NewCapture(snaplen, queue int) *Capture {
	if snaplen <= 0 || snaplen > DefaultSnaplen {
		snaplen = DefaultSnaplen
	}
	if queue <= 0 {
		queue = DefaultCaptureQueue
	}
	return &Capture{snaplen: snaplen, ch: make(chan CapturedPacket, queue)}
}

// Snaplen is the most bytes kept per packet.
func (c *Capture) Snaplen() int { return c.snaplen }

// Packets delivers the captured packets. It is never closed: a tap may
// still be sending while the capture is being detached.
func (c *Capture) Packets() <-chan CapturedPacket { return c.ch }

// Dropped counts packets lost because the reader fell behind.
func (c *Capture) Dropped() uint64 { return c.dropped.Load() }

// Tap copies pkt to the capture without blocking. Any TUN decorator can
// feed a capture through it (the site-to-site clampTUN does; a P2S seam can).
func (c *Capture) Tap(dir Direction, pkt []byte, now time.Time) {
	n := min(len(pkt), c.snaplen)
	c.send(CapturedPacket{Time: now, Dir: dir, Len: len(pkt), Data: append([]byte(nil), pkt[:n]...)})
}

// tapUndo is Tap of pkt as it was before tr translated it out of the
// tunnel (nat.go): the whole copy is translated back, then cut to snaplen.
func (c *Capture) tapUndo(dir Direction, pkt []byte, now time.Time, undo *nat.Translator) {
	b := append([]byte(nil), pkt...)
	undo.Inbound(b)
	if n := min(len(b), c.snaplen); n < len(b) {
		b = append([]byte(nil), b[:n]...)
	}
	c.send(CapturedPacket{Time: now, Dir: dir, Len: len(pkt), Data: b})
}

func (c *Capture) send(p CapturedPacket) {
	select {
	case c.ch <- p:
	default:
		c.dropped.Add(1)
	}
}

// StartCapture attaches c to the tunnel's TUN seam: from now on every
// packet entering or leaving the tunnel is copied to it. Only one capture
// may be attached at a time.
func (t *Tunnel) StartCapture(c *Capture) error {
	if !t.tun.tap.CompareAndSwap(nil, c) {
		return fmt.Errorf("tunnel %s: %w", t.name, ErrCaptureBusy)
	}
	return nil
}

// StopCapture detaches c (if it is still the attached capture).
func (t *Tunnel) StopCapture(c *Capture) { t.tun.tap.CompareAndSwap(c, nil) }

// CaptureLimits bound a capture; zero fields take the defaults, and every
// capture ends at the latest after MaxCaptureDuration and MaxCaptureBytes.
type CaptureLimits struct {
	Count    int           // packets; 0 = no limit besides time and size
	Duration time.Duration // 0 = DefaultCaptureTime
	Bytes    int64         // pcap file size; 0 = DefaultCaptureBytes
}

func (l CaptureLimits) normalized() CaptureLimits {
	if l.Count < 0 {
		l.Count = 0
	}
	if l.Duration <= 0 {
		l.Duration = DefaultCaptureTime
	}
	l.Duration = min(l.Duration, MaxCaptureDuration)
	if l.Bytes <= 0 {
		l.Bytes = DefaultCaptureBytes
	}
	l.Bytes = min(l.Bytes, MaxCaptureBytes)
	return l
}

// Why a capture ended.
const (
	StopCount    = "count"
	StopDuration = "duration"
	StopSize     = "size"
	StopCanceled = "canceled"
)

// CaptureResult summarizes a finished capture.
type CaptureResult struct {
	Packets int
	Bytes   int64  // pcap bytes written, headers included
	Dropped uint64 // lost because the writer fell behind
	Stop    string // StopCount, StopDuration, StopSize or StopCanceled
}

// WritePcap writes the packets of c to w as a pcap file (raw IP link type,
// nanosecond timestamps) until a limit is reached or ctx ends. Output is
// flushed whenever the queue runs empty and at least every
// captureFlushInterval, so a reader on the other end of a stream sees
// packets as they come.
func (c *Capture) WritePcap(ctx context.Context, w io.Writer, lim CaptureLimits) (CaptureResult, error) {
	lim = lim.normalized()
	bw := bufio.NewWriterSize(w, 64<<10)
	pw := pcapgo.NewWriterNanos(bw)
	res := CaptureResult{}
	if err := pw.WriteFileHeader(uint32(c.snaplen), layers.LinkTypeRaw); err != nil {
		return res, err
	}
	res.Bytes = pcapFileHeaderLen
	if err := bw.Flush(); err != nil {
		return res, err
	}
	timer := time.NewTimer(lim.Duration)
	defer timer.Stop()
	tick := time.NewTicker(captureFlushInterval)
	defer tick.Stop()
	finish := func(stop string) (CaptureResult, error) {
		res.Stop = stop
		res.Dropped = c.Dropped()
		return res, bw.Flush()
	}
	for {
		select {
		case <-ctx.Done():
			return finish(StopCanceled)
		case <-timer.C:
			return finish(StopDuration)
		case <-tick.C:
			if err := bw.Flush(); err != nil {
				return res, err
			}
		case p := <-c.ch:
			size := int64(pcapRecordHeaderLen + len(p.Data))
			if res.Bytes+size > lim.Bytes {
				return finish(StopSize)
			}
			ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: p.Len}
			if err := pw.WritePacket(ci, p.Data); err != nil {
				return res, err
			}
			res.Packets++
			res.Bytes += size
			if lim.Count > 0 && res.Packets >= lim.Count {
				return finish(StopCount)
			}
			if len(c.ch) == 0 {
				if err := bw.Flush(); err != nil {
					return res, err
				}
			}
		}
	}
}
