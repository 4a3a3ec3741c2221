package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Onboarding with an invite: gw1 runs the enrollment listener on its
// underlay address; laptops enroll with `vgate connect --invite`.
//
//	lt1 (enrolls, group lan)   lt2 (tries spent, revoked, expired, mispinned tokens)
//	            \                /
//	         198.18.0.0/24 underlay
//	              |
//	  gw1 :51821/udp P2S, :8443/tcp enrollment ══ gw2
//	      |                                        |
//	   h1 10.1.0.2 (lan may reach)            h2 10.2.0.2 (lan may not)
const inviteExtra = `point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.1:51821
  address_pool: [172.16.201.0/24]
  enroll: { listen: "198.18.0.1:8443" }
  groups:
    - name: lan
      allow: [10.1.0.0/16]
    - name: devs
      allow: [10.1.0.0/16, 10.2.0.0/16]
`

func TestInvite(t *testing.T) {
	lab, gws := site(t, 2)
	g1, g2 := gws[0], gws[1]
	n1, n2 := lab.Network(1), lab.Network(2)
	netlab.Mesh(g1, g2)
	g2.Peerings[0].Spaces = append(g2.Peerings[0].Spaces, netip.MustParsePrefix("172.16.201.0/24"))
	g1.Extra = inviteExtra
	start(t, g1, g2)
	mustReach(t, lab, n1, n2)

	invite := func(name string, args ...string) api.Invite {
		t.Helper()
		return newInvite(t, g1, name, args...)
	}
	lt1, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	lt2, err := lab.AddLaptop(2)
	if err != nil {
		t.Fatal(err)
	}
	bin := vgateBin(t)
	// refused runs `vgate connect --invite` that must fail with want.
	refused := func(what, token, want string) {
		t.Helper()
		out, err := lab.Run(lt2.NS, bin, "connect", "--interface", lt2.IfName, "--dns", "off", "--output", lab.Path("lt2-"+what+".conf"), "--invite", token)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("%s token: err %v, want a refusal with %q:\n%s", what, err, want, out)
		}
		if strings.Contains(out, token[len(enroll.TokenPrefix):]) {
			t.Errorf("%s: the error output holds the token:\n%s", what, out)
		}
		if lt2.HasInterface() {
			t.Errorf("%s: an interface was created for a refused invite", what)
		}
		t.Logf("%s token refused: %s", what, strings.TrimSpace(tail(out, 1)))
	}

	// Enrollment works end to end; the laptop reaches what lan allows.
	inv := invite("erin", "--group", "lan", "--expires", "1h")
	if !strings.HasPrefix(inv.Token, enroll.TokenPrefix) || inv.URL != "https://198.18.0.1:8443/" {
		t.Fatalf("invite: %+v", inv)
	}
	saved := lab.Path("erin.conf")
	began := time.Now()
	// Pasted unquoted with a space inside: the shell splits the token in
	// two arguments, and connect joins them.
	p, err := lab.Start(lt1.NS, lt1.NS+"-connect.log", bin, "connect", "--interface", lt1.IfName, "--dns", "print", "--output", saved, "--invite", inv.Token[:30], inv.Token[30:])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	if err := lab.WaitPing(lt1.NS, n1.HostAddr, 20*time.Second); err != nil {
		t.Fatalf("enrolled laptop cannot reach host 1: %v\n%s", err, p.LogTail(20))
	}
	t.Logf("enrolled and reached host 1 in %v", time.Since(began).Round(time.Millisecond))
	if loss, out, _ := pingLoss(lab, lt1.NS, n2.HostAddr.String(), 3, "0.2"); loss != 100 {
		t.Fatalf("the enrolled laptop (lan) reached host 2, which lan does not allow:\n%s", out)
	}
	conf, err := os.ReadFile(saved)
	if err != nil {
		t.Fatalf("saved config: %v", err)
	}
	if fi, _ := os.Stat(saved); fi.Mode().Perm() != 0o600 {
		t.Errorf("saved config mode %v, want 0600", fi.Mode().Perm())
	}
	q, err := p2s.ParseQuick(string(conf))
	if err != nil {
		t.Fatalf("saved config: %v\n%s", err, conf)
	}
	// The gateway stores only the public key and the secret's hash.
	tok, _ := enroll.ParseToken(inv.Token)
	for _, f := range []string{p2s.RegistryFile, enroll.StoreFile} {
		b, err := os.ReadFile(filepath.Join(g1.StateDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), q.PrivateKey.Base64()) || strings.Contains(string(b), tokenSecretB64(tok)) {
			t.Errorf("%s holds the laptop's private key or the invite's secret", f)
		}
	}
	reg, _ := os.ReadFile(filepath.Join(g1.StateDir, p2s.RegistryFile))
	inviteStore, _ := os.ReadFile(filepath.Join(g1.StateDir, enroll.StoreFile))
	if !strings.Contains(string(reg), q.PublicKey.String()) || !strings.Contains(string(inviteStore), enroll.HashSecret(tok.Secret)) {
		t.Errorf("registry lacks the laptop's public key, or the store the secret's hash:\n%s\n%s", reg, inviteStore)
	}
	if out, _ := g1.CLI("client", "list", "--socket", g1.Socket); !strings.Contains(out, "erin") || strings.Contains(out, "INVITE") {
		t.Errorf("client list after enrolment:\n%s", out)
	}

	// Refusals, each with its reason.
	refused("reused", inv.Token, "was already used")
	// The same through standard input (--invite -), wrapped over two lines.
	out, err := lab.Run(lt2.NS, "sh", "-c", `echo "$1" | "$2" connect --interface "$3" --dns off --invite -`, "sh", inv.Token[:25]+"\n"+inv.Token[25:], bin, lt2.IfName)
	if err == nil || !strings.Contains(out, "was already used") {
		t.Fatalf("reused token on standard input: %v\n%s", err, out)
	}
	rev := invite("frank", "--group", "lan")
	if out, err := g1.CLI("client", "revoke", "frank", "--socket", g1.Socket); err != nil {
		t.Fatalf("revoke invite: %v\n%s", err, out)
	}
	refused("revoked", rev.Token, "was revoked")
	exp := invite("gina", "--group", "lan", "--expires", "1s")
	time.Sleep(1100 * time.Millisecond)
	refused("expired", exp.Token, "expired at")
	pinned := invite("hank", "--group", "lan")
	bad, _ := enroll.ParseToken(pinned.Token)
	bad.Pin[0] ^= 0xff
	refused("mispinned", bad.String(), "but the invite pins")
	refused("damaged", pinned.Token[:len(pinned.Token)-4], "damaged")
	st, err := g1.Status()
	if err != nil || st.Enroll == nil || st.Enroll.Pending != 1 || st.Enroll.Attempts["enrolled"] != 1 || st.Enroll.Attempts["invite_used"] != 2 ||
		st.Enroll.Attempts["invite_revoked"] != 1 || st.Enroll.Attempts["invite_expired"] != 1 || st.Enroll.Pin != inv.Pin {
		t.Errorf("status enroll: %+v %v", st.Enroll, err)
	}
	// The mispinned attempt sent nothing: hank's invite still works.
	if out, _ := g1.CLI("client", "list", "--socket", g1.Socket); !strings.Contains(out, "hank") {
		t.Errorf("hank's invite is no longer pending after a pin mismatch:\n%s", out)
	}

	// The token bounds what the laptop accepts to what the invite's
	// groups routed when it was made: after lan also allows network 2,
	// the gateway refuses ivan's invite (the laptop would refuse the
	// answer) and keeps it pending.
	ivan := invite("ivan", "--group", "lan")
	g1.Extra = strings.Replace(inviteExtra, "allow: [10.1.0.0/16]", "allow: [10.1.0.0/16, 10.2.0.0/16]", 1)
	if err := g1.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gw1 reloaded", 15*time.Second, func() (bool, string) {
		st, err := g1.Status()
		return err == nil && st.Reloads.OK >= 1, fmt.Sprintf("%+v %v", st.Reloads, err)
	})
	refused("stale", ivan.Token, "was made for what its groups routed then")
	if out, _ := g1.CLI("client", "list", "--socket", g1.Socket); !strings.Contains(out, "ivan") {
		t.Errorf("a stale invite is no longer pending:\n%s", out)
	}
	// A new invite carries the new routes and enrolls.
	jane := invite("jane", "--group", "lan")
	if tok, err := enroll.ParseToken(jane.Token); err != nil || !slices.Contains(tok.Bound.Routes, netip.MustParsePrefix("10.2.0.0/16")) {
		t.Errorf("jane's token bound: %v %v", tok.Bound, err)
	}
}

// newInvite makes an invite on g with `vgate client invite NAME --json`.
func newInvite(t *testing.T, g *netlab.Gateway, name string, args ...string) api.Invite {
	t.Helper()
	out, err := g.CLI(append([]string{"client", "invite", name, "--json", "--socket", g.Socket}, args...)...)
	if err != nil {
		t.Fatalf("client invite %s: %v\n%s", name, err, out)
	}
	var inv api.Invite
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("client invite %s: %v\n%s", name, err, out)
	}
	return inv
}

func tokenSecretB64(t enroll.Token) string {
	b, _ := json.Marshal(t.Secret[:]) // base64 of the bytes, quoted
	return strings.Trim(string(b), `"`)
}

// sandboxNamesExtra turns p2sExtra into a config with the name server
// (its point_to_site.dns becomes the upstream) and the enrollment
// listener, for TestSandbox.
func sandboxNamesExtra(extra string) string {
	extra = strings.Replace(extra, "  dns: [10.1.0.2]\n", "  enroll: { listen: \"198.18.0.1:8443\" }\n", 1)
	return extra + "dns: { zone: net1.internal, upstream: [10.1.0.2] }\n"
}

// checkSandboxNames: the sandboxed gateway answers DNS on its tunnel
// address (port 53: CAP_NET_BIND_SERVICE) and enrolls a laptop with an
// invite (certificate and invite store in its state directory).
func checkSandboxNames(t *testing.T, lab *netlab.Lab, g *netlab.Gateway, lt *netlab.Laptop) {
	t.Helper()
	status, addrs := dig(t, lab, lt.NS, g.TunnelAddress, "alice.net1.internal")
	if status != "NOERROR" || len(addrs) != 1 || addrs[0] != lt.Addresses[0].String() {
		t.Fatalf("sandboxed gateway: dig alice.net1.internal: %s %v", status, addrs)
	}
	inv := newInvite(t, g, "erin", "--group", "devs")
	lt2, err := lab.AddLaptop(2)
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.Start(lt2.NS, lt2.NS+"-connect.log", vgateBin(t), "connect", "--interface", lt2.IfName, "--dns", "print",
		"--output", lab.Path("erin.conf"), "--invite", inv.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := lab.WaitPing(lt2.NS, g.Net.HostAddr, 20*time.Second); err != nil {
		t.Fatalf("laptop enrolled with an invite at the sandboxed gateway cannot reach host 1: %v\n%s", err, p.LogTail(20))
	}
	t.Logf("sandboxed gateway: DNS answered alice, erin enrolled with an invite and reached %s", g.Net.HostAddr)
	if out, err := g.CLI("client", "revoke", "erin", "--socket", g.Socket); err != nil { // the rest counts one client
		t.Fatalf("revoke erin: %v\n%s", err, out)
	}
}
