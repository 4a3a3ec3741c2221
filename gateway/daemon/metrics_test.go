package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/metrics"
)

func TestMetricsEndpoint(t *testing.T) {
	src := metrics.SourceFunc(func(context.Context) api.Metrics {
		return api.Metrics{Status: api.Status{Name: "east", ListenPort: 51820}, RoutesInstalled: 3}
	})
	ms, err := serveMetrics("127.0.0.1:0", src, "v9.9.9", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if s := ms.srv; s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.ReadHeaderTimeout <= 0 {
		t.Errorf("metrics server timeouts: read %v, write %v, idle %v, header %v: all must be set",
			s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.ReadHeaderTimeout)
	}
	resp, err := http.Get("http://" + ms.addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`vgate_gateway_info{gateway="east",listen_port="51820"} 1`, `version="v9.9.9"`, "vgate_routes_installed 3", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// One source holding its share of idle connections gets no more; the
	// scrape after it closes one is served.
	var idle []net.Conn
	for range metricsMaxConnsPerIP {
		c, err := net.Dial("tcp", ms.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := client.Get("http://" + ms.addr.String() + "/metrics")
		if err != nil {
			break // the idle connections are all accepted: this one is closed at once
		}
		if time.Now().After(deadline) {
			t.Fatalf("a scrape from a source holding %d connections was still served after 5 s", metricsMaxConnsPerIP)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range idle {
		c.Close()
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get("http://" + ms.addr.String() + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape after the idle connections closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ms, err := serveMetrics("", src, "v", slog.New(slog.DiscardHandler)); ms != nil || err != nil || ms.Close() != nil {
		t.Errorf("disabled endpoint: %v %v", ms, err)
	}
}
