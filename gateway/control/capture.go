package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// CaptureQuery is a request for GET /v1/capture: the decrypted packets of
// one peering or one point-to-site client, streamed back as a pcap file.
type CaptureQuery struct {
	Peering  string
	Client   string
	Count    int           // packets; 0 = until time or size
	Duration time.Duration // 0 = the gateway's default
	MaxBytes int64         // pcap size; 0 = the gateway's default
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
func ParseCaptureQuery(v url.Values) (CaptureQuery, error) {
	q := CaptureQuery{Peering: v.Get("peering"), Client: v.Get("client")}
	if (q.Peering == "") == (q.Client == "") {
		return q, errors.New("capture: give exactly one of peering and client")
	}
	var err error
	if s := v.Get("count"); s != "" {
		if q.Count, err = strconv.Atoi(s); err != nil || q.Count < 0 {
			return q, fmt.Errorf("capture: count %q: want a number ≥ 0", s)
		}
	}
	if s := v.Get("duration"); s != "" {
		if q.Duration, err = time.ParseDuration(s); err != nil || q.Duration < 0 {
			return q, fmt.Errorf("capture: duration %q: want a duration like 30s", s)
		}
	}
	if s := v.Get("max_bytes"); s != "" {
		if q.MaxBytes, err = strconv.ParseInt(s, 10, 64); err != nil || q.MaxBytes < 0 {
			return q, fmt.Errorf("capture: max_bytes %q: want a number ≥ 0", s)
		}
	}
	if s := v.Get("snaplen"); s != "" {
		if q.Snaplen, err = strconv.Atoi(s); err != nil || q.Snaplen < 0 {
			return q, fmt.Errorf("capture: snaplen %q: want a number ≥ 0", s)
		}
	}
	return q, nil
}

// CaptureSummary is how a capture ended; it travels in HTTP trailers after
// the pcap stream.
type CaptureSummary struct {
	Packets int    `json:"packets"`
	Dropped uint64 `json:"dropped"` // lost because the stream fell behind
	Stop    string `json:"stop"`    // count, duration, size or canceled
	Error   string `json:"error,omitempty"`
}

// TrailerCapture carries the CaptureSummary as JSON.
const TrailerCapture = "Vgate-Capture-Summary"

// Capturer is an API that can stream packet captures. Capture writes a pcap
// file to w; it must not write anything when it fails to start, so that the
// error can still be sent as JSON.
type Capturer interface {
	Capture(ctx context.Context, q CaptureQuery, w io.Writer) (CaptureSummary, error)
}

// handleCapture adds GET /v1/capture if api can capture.
func handleCapture(m *http.ServeMux, api API) {
	c, ok := api.(Capturer)
	if !ok {
		return
	}
	m.HandleFunc("GET /v1/capture", func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseCaptureQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: err.Error()})
			return
		}
		w.Header().Set("Trailer", TrailerCapture)
		sw := &streamWriter{w: w, rc: http.NewResponseController(w)}
		sum, err := c.Capture(r.Context(), q, sw)
		if err != nil {
			if !sw.started {
				w.Header().Del("Trailer")
				writeJSON(w, http.StatusUnprocessableEntity, Error{Error: err.Error()})
				return
			}
			sum.Error = err.Error()
		}
		b, _ := json.Marshal(sum)
		w.Header().Set(TrailerCapture, string(b))
	})
}

// streamWriter sends the response header on the first write and flushes
// every write, so the client sees packets as they are captured.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
		s.w.WriteHeader(http.StatusOK)
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

// Stream sends a GET for path with query v and returns the response for
// the caller to read as it arrives (no overall timeout: a stream lasts as
// long as the server sends). A non-200 answer is returned as an error.
func (c *Client) Stream(ctx context.Context, path string, v url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://vgate"+path+"?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", c.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("control socket %s: %s", c.Socket, resp.Status)
	}
	return resp, nil
}

// CaptureSummaryOf reads the summary from the trailers of a finished
// capture stream (its body read to EOF); ok is false if there is none.
func CaptureSummaryOf(resp *http.Response) (s CaptureSummary, ok bool) {
	v := resp.Trailer.Get(TrailerCapture)
	if v == "" || json.Unmarshal([]byte(v), &s) != nil {
		return CaptureSummary{}, false
	}
	return s, true
}
