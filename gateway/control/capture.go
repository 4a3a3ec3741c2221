package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/vgate-project/vgate/api"
)

// TrailerCapture carries the api.CaptureSummary as JSON.
const TrailerCapture = "Vgate-Capture-Summary"

// serveCapture serves GET /v1/capture: the pcap stream, then the summary
// in a trailer. An error before the first packet is sent as api.Error.
func serveCapture(w http.ResponseWriter, r *http.Request, gw Gateway) {
	q, err := api.ParseCaptureQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Trailer", TrailerCapture)
	sw := &streamWriter{w: w, rc: http.NewResponseController(w)}
	sum, err := gw.Capture(r.Context(), q, sw)
	if err != nil {
		if !sw.started {
			w.Header().Del("Trailer")
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		sum.Error = err.Error()
	}
	b, _ := json.Marshal(sum)
	w.Header().Set(TrailerCapture, string(b))
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

// CaptureStream is a running capture: read the pcap file from it until
// EOF, then Summary says how it ended. Close it when done.
type CaptureStream struct {
	io.ReadCloser
	resp *http.Response
}

// Summary is how the capture ended, from the trailer that follows the
// stream (read to EOF); ok is false if the gateway sent none.
func (s *CaptureStream) Summary() (sum api.CaptureSummary, ok bool) {
	v := s.resp.Trailer.Get(TrailerCapture)
	if v == "" || json.Unmarshal([]byte(v), &sum) != nil {
		return api.CaptureSummary{}, false
	}
	return sum, true
}

// Capture starts a capture and returns its stream as it arrives (no
// overall timeout: a capture lasts as long as the gateway sends, or until
// ctx ends). A capture that cannot start is an error with its code.
func (c *Client) Capture(ctx context.Context, q api.CaptureQuery) (*CaptureStream, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://vgate/v1/capture?"+q.Values().Encode(), nil)
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
		return nil, c.answerError(resp, body)
	}
	return &CaptureStream{ReadCloser: resp.Body, resp: resp}, nil
}
