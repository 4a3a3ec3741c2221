package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCaptureQueryRoundTrip(t *testing.T) {
	for _, q := range []CaptureQuery{
		{Peering: "west"},
		{Peering: "west", Count: 10, Duration: 90 * time.Second, MaxBytes: 1 << 20, Snaplen: 128},
		{Client: "alice"},
	} {
		got, err := ParseCaptureQuery(q.Values())
		if err != nil || got != q {
			t.Errorf("round trip of %+v = %+v, %v", q, got, err)
		}
	}
	for _, bad := range []string{"", "peering=w&client=c", "peering=w&count=-1", "peering=w&duration=soon", "peering=w&max_bytes=x", "peering=w&snaplen=-5"} {
		v, _ := url.ParseQuery(bad)
		_, err := ParseCaptureQuery(v)
		if err == nil || !errors.Is(err, CodeBadRequest) {
			t.Errorf("ParseCaptureQuery(%q) = %v, want a bad_request error", bad, err)
		}
	}
}

func TestCodeError(t *testing.T) {
	base := errors.New("no client \"bob\"")
	err := fmt.Errorf("revoke: %w", WithCode(CodeNotFound, base))
	if !errors.Is(err, CodeNotFound) || errors.Is(err, CodeNoP2S) || !errors.Is(err, base) {
		t.Errorf("errors.Is on %v: code or cause not found", err)
	}
	if CodeOf(err) != CodeNotFound || CodeOf(base) != "" || CodeOf(nil) != "" {
		t.Errorf("CodeOf: %q, %q", CodeOf(err), CodeOf(base))
	}
	if err.Error() != `revoke: no client "bob"` {
		t.Errorf("message %q: the code must not change the text", err.Error())
	}
	if WithCode(CodeNotFound, nil) != nil {
		t.Error("WithCode(nil) is not nil")
	}
}

// The JSON names are a contract with scripts: a few spot checks.
func TestJSONNames(t *testing.T) {
	b, _ := json.Marshal(Status{Peerings: []PeeringStatus{{State: StateDown, Reason: ReasonNoHandshake}},
		P2S: &P2SStatus{}, Port: PortStats{DroppedQueueFull: 1}})
	for _, want := range []string{`"address_spaces"`, `"tunnel_address"`, `"point_to_site"`, `"dropped_queue_full":1`,
		`"state":"down"`, `"reason":"no_handshake"`, `"clients_registered"`, `"pool_free_ipv4"`, `"reloads"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s: %s", want, b)
		}
	}
	b, _ = json.Marshal(Error{Error: "x", Code: CodeNoP2S})
	if string(b) != `{"error":"x","code":"no_p2s"}` {
		t.Errorf("error JSON = %s", b)
	}
}

func TestVocabulariesDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range DownReasons {
		if seen[string(r)] || r == "" {
			t.Errorf("down reason %q repeated or empty", r)
		}
		seen[string(r)] = true
	}
	seen = map[string]bool{}
	for _, r := range RefusalReasons {
		if seen[string(r)] || r == "" {
			t.Errorf("refusal reason %q repeated or empty", r)
		}
		seen[string(r)] = true
	}
}

// A /64 pool's free count does not fit a JSON number exactly: it
// saturates at 2^53, and the exact count travels as a string.
func TestCountJSON(t *testing.T) {
	free := uint64(1<<64 - 7)
	b, err := json.Marshal(P2SStatus{PoolFree6: Count(free), PoolFree4: 250, PoolFree6Exact: "18446744073709551609"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"pool_free_ipv6":9007199254740992`, `"pool_free_ipv4":250`, `"pool_free_ipv6_exact":"18446744073709551609"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	var back P2SStatus
	if err := json.Unmarshal(b, &back); err != nil || back.PoolFree6 != MaxExactJSON || back.PoolFree4 != 250 {
		t.Errorf("round trip: %+v %v", back, err)
	}
}
