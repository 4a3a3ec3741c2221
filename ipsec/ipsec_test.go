package ipsec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strongswan/govici/vici"
	"github.com/vgate-project/vgate/api"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Observation
		want api.DownReason
	}{
		{"charon down", Observation{IKE: "ESTABLISHED", Child: "INSTALLED"}, api.ReasonCharonNotRunning},
		{"up", Observation{Running: true, IKE: "ESTABLISHED", Child: "INSTALLED"}, ""},
		{"up despite an old alert", Observation{Running: true, IKE: "ESTABLISHED", Child: "INSTALLED", Alert: AlertLocalAuthFailed}, ""},
		{"nothing yet", Observation{Running: true}, api.ReasonIKEConnecting},
		{"connecting", Observation{Running: true, IKE: "CONNECTING"}, api.ReasonIKEConnecting},
		{"ike proposal", Observation{Running: true, Alert: AlertProposalMismatchIKE}, api.ReasonNoProposalChosen},
		{"esp proposal", Observation{Running: true, IKE: "ESTABLISHED", Alert: AlertProposalMismatchChld}, api.ReasonNoProposalChosen},
		{"psk refused by peer", Observation{Running: true, Alert: AlertLocalAuthFailed}, api.ReasonAuthFailed},
		{"peer psk refused", Observation{Running: true, Alert: AlertPeerAuthFailed}, api.ReasonAuthFailed},
		{"dead after up", Observation{Running: true, WasUp: true, Alert: AlertRetransmitTimeout}, api.ReasonDPDTimeout},
		{"dead, reconnecting", Observation{Running: true, WasUp: true, IKE: "CONNECTING", Alert: AlertRetransmitTimeout}, api.ReasonDPDTimeout},
		{"never answered", Observation{Running: true, Alert: AlertRetransmitTimeout}, api.ReasonIKEConnecting},
		{"child missing", Observation{Running: true, IKE: "ESTABLISHED"}, api.ReasonChildSADown},
		{"child missing, ts", Observation{Running: true, IKE: "ESTABLISHED", Alert: AlertTSMismatch}, api.ReasonChildSADown},
		{"retransmit info only", Observation{Running: true, Alert: AlertRetransmitSend}, api.ReasonIKEConnecting},
	} {
		if got := Decide(tc.o); got != tc.want {
			t.Errorf("%s: Decide(%+v) = %q, want %q", tc.name, tc.o, got, tc.want)
		}
	}
}

func TestCheckProposal(t *testing.T) {
	for _, tc := range []struct {
		s           string
		esp, legacy bool
		err         string // substring; "" ok
	}{
		{"aes256gcm16-prfsha384-ecp384", false, false, ""},
		{"aes256-sha256-modp2048", false, false, ""},
		{"aes256-sha384-ecp384", false, false, ""},
		{"aes256gcm16", true, false, ""},
		{"aes256gcm16-ecp384", true, false, ""},
		{"aes256-sha256-modp2048-esn", true, false, ""},
		{"3des-sha1-modp1024", false, false, "legacy"},
		{"3des-sha1-modp1024", false, true, ""},
		{"aes256-sha1", true, false, "sha1"},
		{"aes256gcm16", false, false, "DH group"},
		{"aes256-modp2048", false, false, "integrity"},
		{"sha256-modp2048", false, false, "encryption"},
		{"aes256gcm16-prfsha384", true, false, "PRF"},
		{"aes256--sha256", false, false, "empty algorithm"},
		{"aes257-sha256-modp2048", false, false, `unknown algorithm "aes257"`},
		{"", false, false, "empty"},
	} {
		err := CheckProposal(tc.s, tc.esp, tc.legacy)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("CheckProposal(%q, esp=%v, legacy=%v) = %v, want ok", tc.s, tc.esp, tc.legacy, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("CheckProposal(%q, esp=%v, legacy=%v) = %v, want error with %q", tc.s, tc.esp, tc.legacy, err, tc.err)
		}
		if tc.err == "legacy" && !errors.Is(err, ErrLegacy) {
			t.Errorf("CheckProposal(%q): %v does not wrap ErrLegacy", tc.s, err)
		}
	}
	for _, p := range DefaultIKE {
		if err := CheckProposal(p, false, false); err != nil {
			t.Errorf("default IKE proposal: %v", err)
		}
	}
	for _, p := range DefaultESP {
		if err := CheckProposal(p, true, false); err != nil {
			t.Errorf("default ESP proposal: %v", err)
		}
	}
}

func FuzzCheckProposal(f *testing.F) {
	for _, s := range []string{"aes256gcm16-prfsha384-ecp384", "3des-sha1-modp1024", "aes256gcm16", "-", "a--b", "aes256-sha256-modp2048-esn"} {
		f.Add(s, false, false)
	}
	f.Fuzz(func(t *testing.T, s string, esp, legacy bool) {
		err := CheckProposal(s, esp, legacy)
		if err == nil && (s == "" || strings.Contains(s, "--") || strings.ContainsAny(s, " \n,")) {
			t.Fatalf("accepted %q", s)
		}
		if legacy && errors.Is(err, ErrLegacy) {
			t.Fatalf("legacy allowed but refused as legacy: %v", err)
		}
	})
}

func notifyBytes(typ int32, str, name, id, ip string) []byte {
	b := make([]byte, notifyMsgLen)
	binary.BigEndian.PutUint32(b, uint32(typ))
	copy(b[4:388], str)
	copy(b[388:452], name)
	copy(b[452:708], id)
	copy(b[708:768], ip)
	return b
}

func TestParseNotify(t *testing.T) {
	m, err := parseNotify(notifyBytes(8, "no IKE proposal chosen", "hq", "203.0.113.5", "203.0.113.5[500]"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != AlertProposalMismatchIKE || m.Name != "hq" || m.ID != "203.0.113.5" || m.IP != "203.0.113.5[500]" || m.Str != "no IKE proposal chosen" {
		t.Errorf("parseNotify = %+v", m)
	}
	if _, err := parseNotify(make([]byte, 384)); err == nil {
		t.Error("short message accepted")
	}
}

func FuzzParseNotify(f *testing.F) {
	f.Add(notifyBytes(2, "local authentication failed", "s2s", "198.18.99.2", "198.18.99.2[4500]"))
	f.Add(make([]byte, notifyMsgLen))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseNotify(b)
		if err != nil {
			return
		}
		if len(m.Name) > 64 || len(m.Str) > 384*3 {
			t.Fatalf("field overran: %+v", m)
		}
	})
}

func TestTrafficSelectors(t *testing.T) {
	l, r := TrafficSelectors([]netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, netip.MustParseAddr("169.254.21.1"))
	if fmt.Sprint(l) != "[0.0.0.0/0 ::/0]" || fmt.Sprint(r) != "[192.168.0.0/16 169.254.21.1/32]" {
		t.Errorf("TrafficSelectors = %v, %v", l, r)
	}
	_, r = TrafficSelectors([]netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, netip.MustParseAddr("10.9.255.254"))
	if fmt.Sprint(r) != "[10.9.0.0/16]" {
		t.Errorf("BGP address inside the spaces added again: %v", r)
	}
}

func TestConnFor(t *testing.T) {
	p := Peer{Name: "hq", Remote: "203.0.113.5", PSK: NewSecret([]byte("s3cret-psk")), IKELifetime: 28800 * time.Second, ChildLifetime: 27000 * time.Second,
		LocalTS: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, RemoteTS: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}
	c := connFor(p)
	if c.RekeyTime != "25920s" || c.OverTime != "2880s" || c.Children["hq"].LifeTime != "27000s" || c.Children["hq"].RekeyTime != "24300s" {
		t.Errorf("lifetimes: %+v %+v", c, c.Children["hq"])
	}
	if c.Children["hq"].StartAction != "none" || c.KeyingTries != "1" || c.Encap != "yes" || c.Remote.ID != "203.0.113.5" || c.DPDDelay != "10s" {
		t.Errorf("conn: %+v", c)
	}
	if strings.Join(c.Proposals, ",") != strings.Join(DefaultIKE, ",") {
		t.Errorf("proposals %v", c.Proposals)
	}
	m, err := vici.MarshalMessage(map[string]any{p.Name: c})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.String(), "s3cret") {
		t.Error("PSK in the connection message")
	}
	k := sharedFor(p)
	if k.Data != "s3cret-psk" || k.Owners[0] != "203.0.113.5" {
		t.Errorf("shared: owners %v", k.Owners)
	}
}

func TestSecretRedacted(t *testing.T) {
	s := NewSecret([]byte("s3cret-psk"))
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s), fmt.Sprintf("%+v", Peer{PSK: s})} {
		if strings.Contains(out, "s3cret") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func TestStrongswanConf(t *testing.T) {
	c := StrongswanConf("charon-systemd", PathsIn("/run/vgate/charon"))
	for _, want := range []string{"charon-systemd {", "load_modular = no", "install_routes = no", "unix:///run/vgate/charon/charon.vici", "unix:///run/vgate/charon/charon.enfy", "init_limit_half_open = 100\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("strongswan.conf lacks %q", want)
		}
	}
	load := c[strings.Index(c, "load = "):]
	load = load[:strings.Index(load, "\n")]
	if o, a, g := strings.Index(load, "openssl"), strings.Index(load, " aes "), strings.Index(load, " gcm "); o < 0 || o > a || o > g {
		t.Errorf("openssl must load before aes and gcm: %s", load)
	}
	if k, n := strings.Index(load, "kernel-libipsec"), strings.Index(load, "kernel-netlink"); k < 0 || k > n {
		t.Errorf("kernel-libipsec must load before kernel-netlink: %s", load)
	}
}

func TestOtherCharon(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := dir + "/charon.pid"
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self := os.Getpid()
	if pid := otherCharon(write(fmt.Sprintf("%d\n", self)), 0); pid != self {
		t.Errorf("a live process in the PID file: %d, want %d", pid, self)
	}
	if pid := otherCharon(write(fmt.Sprintf("%d\n", self)), self); pid != 0 {
		t.Errorf("our own charon reported as another: %d", pid)
	}
	if pid := otherCharon(write("2147483646\n"), 0); pid != 0 {
		t.Errorf("a dead PID reported: %d", pid)
	}
	if pid := otherCharon(write("garbage"), 0); pid != 0 {
		t.Errorf("garbage reported: %d", pid)
	}
	if pid := otherCharon(dir+"/missing", 0); pid != 0 {
		t.Errorf("missing file reported: %d", pid)
	}
	if section("/usr/sbin/charon-systemd") != "charon-systemd" || section("/usr/lib/ipsec/charon") != "charon" {
		t.Error("strongswan.conf section of a daemon")
	}
}

func TestUDPPortsFree(t *testing.T) {
	c, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Skip(err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).Port
	if err := udpPortsFree(port); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a bound port reported free: %v", err)
	}
	c.Close()
	if err := udpPortsFree(port); err != nil {
		t.Errorf("a free port reported: %v", err)
	}
}

func TestParseIKE(t *testing.T) {
	m, err := vici.MarshalMessage(map[string]any{
		"state": "ESTABLISHED", "remote-host": "203.0.113.5", "remote-port": "4500",
		"child-sas": map[string]any{
			"hq-7": map[string]any{"state": "INSTALLED", "bytes-in": "1000", "bytes-out": "2000"},
			"hq-6": map[string]any{"state": "REKEYED", "bytes-in": "5", "bytes-out": "5"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := parseIKE(m)
	if got.ike != "ESTABLISHED" || got.child != "INSTALLED" || got.endpoint != "203.0.113.5:4500" || got.rx != 1000 || got.tx != 2000 || got.childPending {
		t.Errorf("parseIKE = %+v", got)
	}
	m, _ = vici.MarshalMessage(map[string]any{"state": "ESTABLISHED",
		"child-sas": map[string]any{"hq-8": map[string]any{"state": "INSTALLING"}}})
	if got := parseIKE(m); got.child != "" || !got.childPending {
		t.Errorf("pending child: %+v", got)
	}
}

// The state machine driven by charon's events, without charon.
func TestEvents(t *testing.T) {
	d := &Daemon{opts: Options{Log: slog.New(slog.DiscardHandler)}, peers: map[string]*peer{"hq": {loaded: true}}, running: true}
	ev := func(name string, up bool, ike map[string]any) {
		m := map[string]any{"hq": ike}
		if up {
			m["up"] = "yes"
		}
		msg, err := vici.MarshalMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		d.event(vici.Event{Name: name, Message: msg})
	}
	state := func() State { s, _ := d.State("hq"); return s }
	ev("ike-updown", true, map[string]any{"state": "ESTABLISHED", "remote-host": "203.0.113.5", "remote-port": "4500"})
	if s := state(); s.Reason != string(api.ReasonChildSADown) || s.Endpoint != "203.0.113.5:4500" {
		t.Fatalf("IKE up, no child: %+v", s)
	}
	ev("child-updown", true, map[string]any{"state": "ESTABLISHED", "child-sas": map[string]any{"hq-1": map[string]any{"state": "INSTALLED"}}})
	if s := state(); s.Reason != "" || s.UpSince.IsZero() {
		t.Fatalf("child up: %+v", s)
	}
	ev("child-rekey", false, map[string]any{"child-sas": map[string]any{"hq-1": map[string]any{
		"old": map[string]any{"bytes-in": "100", "bytes-out": "200"}, "new": map[string]any{"bytes-in": "0"}}}})
	ev("ike-rekey", false, map[string]any{})
	if s := state(); s.ChildRekeys != 1 || s.IKERekeys != 1 || s.Reason != "" {
		t.Fatalf("rekeys: %+v", s)
	}
	d.alert(notifyMsg{Type: AlertRetransmitTimeout, Name: "hq", Str: "giving up"})
	ev("ike-updown", false, map[string]any{"child-sas": map[string]any{"hq-2": map[string]any{"bytes-in": "10", "bytes-out": "20"}}})
	s := state()
	if s.Reason != string(api.ReasonDPDTimeout) || s.LastError != "giving up" {
		t.Fatalf("dead peer: %+v", s)
	}
	if p := d.peers["hq"]; p.rxBase != 100 || p.txBase != 200 {
		t.Errorf("bytes kept across the rekey: rx %d tx %d", p.rxBase, p.txBase)
	}
	d.alert(notifyMsg{Type: AlertLocalAuthFailed, Name: "other"}) // another peering: ignored
	if state().Reason != string(api.ReasonDPDTimeout) {
		t.Error("an alert of another peering changed this one")
	}
	d.running = false
	if state().Reason != string(api.ReasonCharonNotRunning) {
		t.Error("charon not running")
	}
}
