package view

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/observe"
)

// fakeGateway is a gateway's read surface with set answers.
type fakeGateway struct {
	obs      observe.Observation
	counts   observe.Counts
	clients  []api.ClientInfo
	bgp      api.BGPStatus
	tapErr   error
	tapped   []api.CaptureQuery
	stopped  int
	feed     int // packets Tap puts into the capture
	clientsN int // calls of Clients
}

func (f *fakeGateway) Observe(context.Context) observe.Observation { return f.obs }
func (f *fakeGateway) ObserveCounts() observe.Counts               { return f.counts }
func (f *fakeGateway) Clients(context.Context) ([]api.ClientInfo, error) {
	f.clientsN++
	return f.clients, nil
}
func (f *fakeGateway) BGP(context.Context) (api.BGPStatus, error) { return f.bgp, nil }
func (f *fakeGateway) Closed() bool                               { return false }
func (f *fakeGateway) Tap(q api.CaptureQuery, c *dataplane.Capture) (func(), bool, error) {
	f.tapped = append(f.tapped, q)
	if f.tapErr != nil {
		return nil, false, f.tapErr
	}
	for range f.feed {
		c.Tap(dataplane.Inbound, make([]byte, 40), time.Now())
	}
	return func() { f.stopped++ }, q.Peering != "", nil
}

func TestViewCapture(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	f := &fakeGateway{}
	v := New(f, log)
	for _, q := range []api.CaptureQuery{{}, {Peering: "a", Client: "b"}} {
		if _, err := v.Capture(ctx, q, &bytes.Buffer{}); api.CodeOf(err) != api.CodeBadRequest {
			t.Errorf("capture %+v: error %v, want code %s", q, err, api.CodeBadRequest)
		}
	}
	if len(f.tapped) != 0 {
		t.Fatalf("a bad query was tapped: %+v", f.tapped)
	}

	// A tap that fails writes nothing and returns its error as is.
	busy := api.WithCode(api.CodeConflict, dataplane.ErrCaptureBusy)
	f.tapErr = busy
	var w bytes.Buffer
	if _, err := v.Capture(ctx, api.CaptureQuery{Peering: "a"}, &w); !errors.Is(err, busy) || w.Len() != 0 {
		t.Errorf("failed tap: error %v, %d bytes written; want the tap's error and nothing", err, w.Len())
	}

	f.tapErr, f.feed = nil, 2
	for _, q := range []api.CaptureQuery{{Peering: "a", Count: 2}, {Client: "laptop", Count: 2}} {
		w.Reset()
		stopped := f.stopped
		sum, err := v.Capture(ctx, q, &w)
		if err != nil {
			t.Fatalf("capture %+v: %v", q, err)
		}
		if sum.Packets != 2 || sum.Stop != api.StopCount || sum.Translated != (q.Peering != "") {
			t.Errorf("capture %+v: summary %+v", q, sum)
		}
		if f.stopped != stopped+1 {
			t.Errorf("capture %+v: the tap was not detached", q)
		}
		if w.Len() == 0 {
			t.Errorf("capture %+v: no pcap written", q)
		}
	}
	for _, want := range []string{`msg="capture started" peering=a`, `msg="capture ended" peering=a`, `msg="capture started" client=laptop`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// Metrics is the status with the clients (only with point-to-site), the
// BGP status (only when enabled) and the gateway's counts.
func TestViewMetrics(t *testing.T) {
	cfg := &config.Config{Name: "east"}
	f := &fakeGateway{
		obs:     observe.Observation{Now: time.Now(), Config: cfg},
		counts:  observe.Counts{Refusals: map[api.RefusalReason]uint64{api.RefusedOverlap: 2}, RoutesInstalled: 5},
		clients: []api.ClientInfo{{Name: "laptop"}},
		bgp:     api.BGPStatus{ASN: 65001},
	}
	v := New(f, slog.New(slog.DiscardHandler))
	m := v.Metrics(context.Background())
	if m.Name != "east" || m.RoutesInstalled != 5 || m.Refusals[api.RefusedOverlap] != 2 {
		t.Errorf("metrics %+v", m)
	}
	if m.Clients != nil || f.clientsN != 0 || m.BGP != nil {
		t.Errorf("without point-to-site and BGP: clients %v (%d reads), bgp %v", m.Clients, f.clientsN, m.BGP)
	}
	f.obs.P2S = &api.P2SStatus{}
	f.bgp.Enabled = true
	m = v.Metrics(context.Background())
	if len(m.Clients) != 1 || m.BGP == nil || m.BGP.ASN != 65001 {
		t.Errorf("with point-to-site and BGP: clients %v, bgp %v", m.Clients, m.BGP)
	}
}

// View.Status adds the drop counters' growth, sampled at each look.
func TestViewStatusRecent(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := &config.Config{Name: "east"}
	f := &fakeGateway{obs: observe.Observation{Now: t0, Config: cfg}}
	v := New(f, slog.New(slog.DiscardHandler))
	var st api.Status
	for i := range 4 {
		f.obs.Now = t0.Add(time.Duration(i) * recentStep)
		f.obs.Port.DroppedMalformed = uint64(3 * i) // first seen at zero: all of it is recent
		st, _ = v.Status(context.Background())
	}
	if got := st.Port.DroppedLastMinute["malformed"]; got != 9 {
		t.Errorf("malformed drops in the last minute: %d (%v), want 9", got, st.Port.DroppedLastMinute)
	}
	if st.Port.DroppedMalformed != 9 {
		t.Errorf("malformed drops: %d, want 9", st.Port.DroppedMalformed)
	}
}
