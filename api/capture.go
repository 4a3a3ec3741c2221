package api

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// The gateway's capture limits when a query leaves them 0.
const (
	DefaultCaptureDuration = 60 * time.Second
	DefaultCaptureBytes    = 64 << 20
)

// CaptureQuery is a request for GET /v1/capture: the decrypted packets of
// one peering or one point-to-site client, streamed back as a pcap file.
type CaptureQuery struct {
	Peering  string
	Client   string
	Count    int           // packets; 0 = until time or size
	Duration time.Duration // 0 = DefaultCaptureDuration
	MaxBytes int64         // pcap size; 0 = DefaultCaptureBytes
	Snaplen  int           // bytes per packet; 0 = whole packets
}

// Values encodes q as URL query parameters.
func (q CaptureQuery) Values() url.Values {
	v := url.Values{}
	if q.Peering != "" {
		v.Set("peering", q.Peering)
	}
	if q.Client != "" {
		v.Set("client", q.Client)
	}
	if q.Count > 0 {
		v.Set("count", strconv.Itoa(q.Count))
	}
	if q.Duration > 0 {
		v.Set("duration", q.Duration.String())
	}
	if q.MaxBytes > 0 {
		v.Set("max_bytes", strconv.FormatInt(q.MaxBytes, 10))
	}
	if q.Snaplen > 0 {
		v.Set("snaplen", strconv.Itoa(q.Snaplen))
	}
	return v
}

// ParseCaptureQuery decodes and checks the query parameters of a capture.
// Its errors have CodeBadRequest.
func ParseCaptureQuery(v url.Values) (CaptureQuery, error) {
	q := CaptureQuery{Peering: v.Get("peering"), Client: v.Get("client")}
	bad := func(err error) (CaptureQuery, error) { return q, WithCode(CodeBadRequest, err) }
	if (q.Peering == "") == (q.Client == "") {
		return bad(errors.New("capture: give exactly one of peering and client"))
	}
	var err error
	if s := v.Get("count"); s != "" {
		if q.Count, err = strconv.Atoi(s); err != nil || q.Count < 0 {
			return bad(fmt.Errorf("capture: count %q: want a number ≥ 0", s))
		}
	}
	if s := v.Get("duration"); s != "" {
		if q.Duration, err = time.ParseDuration(s); err != nil || q.Duration < 0 {
			return bad(fmt.Errorf("capture: duration %q: want a duration like 30s", s))
		}
	}
	if s := v.Get("max_bytes"); s != "" {
		if q.MaxBytes, err = strconv.ParseInt(s, 10, 64); err != nil || q.MaxBytes < 0 {
			return bad(fmt.Errorf("capture: max_bytes %q: want a number ≥ 0", s))
		}
	}
	if s := v.Get("snaplen"); s != "" {
		if q.Snaplen, err = strconv.Atoi(s); err != nil || q.Snaplen < 0 {
			return bad(fmt.Errorf("capture: snaplen %q: want a number ≥ 0", s))
		}
	}
	return q, nil
}

// CaptureStop is what ended a capture.
type CaptureStop string

const (
	StopCount    CaptureStop = "count"    // the packet count was reached
	StopDuration CaptureStop = "duration" // the time limit was reached
	StopSize     CaptureStop = "size"     // the next packet would pass the size limit
	StopCanceled CaptureStop = "canceled" // the client went away or the gateway stopped
)

// CaptureSummary is how a capture ended; it travels in HTTP trailers after
// the pcap stream.
type CaptureSummary struct {
	Packets int         `json:"packets"`
	Dropped uint64      `json:"dropped"` // lost because the stream fell behind
	Stop    CaptureStop `json:"stop"`
	Error   string      `json:"error,omitempty"`
	// Translated: the peering has NAT rules, and the file shows the
	// addresses as they crossed the tunnel (as the peer numbers them),
	// not as this side sees them (docs/nat.md).
	Translated bool `json:"translated,omitempty"`
}
