package laptop

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
)

var (
	testGW, _  = keys.ParsePrivate("sH3EHIvyzyBRiwyBj3cLWDTqgtNhN+G8Wj+5yp0F42I=")
	testTok    = enroll.Token{URL: "https://198.18.0.1:8443/", Bound: enroll.Bound{Pool: mustPrefixes("172.16.201.0/24", "fd00:c1::/64"), Routes: mustPrefixes("10.1.0.0/16", "10.9.0.53/32", "172.16.201.0/24")}}
	testAnswer = "# vgate point-to-site client erin (groups: lan)\n[Interface]\n# PrivateKey = (your own private key; its public key is x)\n" +
		"Address = 172.16.201.7/32, fd00:c1::7/128\nDNS = 10.9.0.53, lan.net1.internal\n\n[Peer]\nPublicKey = " + testGW.Public().String() +
		"\nEndpoint = 198.18.0.1:51821\nAllowedIPs = 10.1.0.0/16, 10.9.0.53/32\nPersistentKeepalive = 25\n"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// The gateway's answer is hostile input: everything outside the token's
// bound, or that a client config never holds, is refused with a reason;
// what is accepted is rendered anew with the laptop's key.
func TestCheckAnswer(t *testing.T) {
	priv, _ := keys.GeneratePrivate()
	e, err := CheckAnswer(enroll.Response{Name: "erin", Config: testAnswer}, testTok, priv)
	if err != nil {
		t.Fatalf("a sound answer: %v", err)
	}
	q, err := p2s.ParseQuick(e.Config)
	if err != nil || q.PrivateKey != priv || len(q.Peers) != 1 || q.Peers[0].Endpoint != "198.18.0.1:51821" {
		t.Fatalf("saved config does not parse back: %v\n%s", err, e.Config)
	}
	if !strings.Contains(e.Config, "enrolled at https://198.18.0.1:8443/") || strings.Contains(e.Config, "groups: lan") {
		t.Errorf("the saved config is not rendered anew:\n%s", e.Config)
	}
	replace := func(old, new string) string {
		if !strings.Contains(testAnswer, old) {
			t.Fatalf("test answer lacks %q", old)
		}
		return strings.Replace(testAnswer, old, new, 1)
	}
	for _, c := range []struct{ name, answerName, config, want string }{
		{"traversal", "../../../escaped/evil", testAnswer, "client name"},
		{"slash", "a/b", testAnswer, "client name"},
		{"dot dot", "..", testAnswer, "client name"},
		{"escape", "evil\x1b[2J", testAnswer, "client name"},
		{"too long", strings.Repeat("a", 65), testAnswer, "client name"},
		{"postup", "erin", replace("[Interface]\n", "[Interface]\nPostUp = touch /tmp/x\n"), "postup"},
		{"predown in peer", "erin", replace("PersistentKeepalive = 25\n", "PersistentKeepalive = 25\nPreDown = id\n"), "predown"},
		{"table", "erin", replace("[Interface]\n", "[Interface]\nTable = off\n"), "table"},
		{"saveconfig", "erin", replace("[Interface]\n", "[Interface]\nSaveConfig = true\n"), "saveconfig"},
		{"private key", "erin", replace("# PrivateKey", "PrivateKey = "+testGW.Base64()+"\n#"), "PrivateKey"},
		{"default route", "erin", replace("AllowedIPs = 10.1.0.0/16", "AllowedIPs = 0.0.0.0/0"), "outside what the invite"},
		{"ipv6 default", "erin", replace("AllowedIPs = 10.1.0.0/16", "AllowedIPs = 10.1.0.0/16, ::/0"), "outside what the invite"},
		{"wider", "erin", replace("AllowedIPs = 10.1.0.0/16", "AllowedIPs = 10.0.0.0/8"), "outside what the invite"},
		{"address outside pool", "erin", replace("172.16.201.7/32", "10.1.0.7/32"), "outside the invite's pool"},
		{"address not a host", "erin", replace("172.16.201.7/32", "172.16.201.7/24"), "not one address"},
		{"three addresses", "erin", replace("fd00:c1::7/128", "fd00:c1::7/128, 172.16.201.8/32, fd00:c1::8/128"), "addresses"},
		{"no address", "erin", replace("Address = 172.16.201.7/32, fd00:c1::7/128\n", ""), "addresses"},
		{"dns outside", "erin", replace("DNS = 10.9.0.53", "DNS = 203.0.113.53"), "DNS server"},
		{"routing domain", "erin", replace("lan.net1.internal", "~."), "search domain"},
		{"two peers", "erin", testAnswer + "[Peer]\nPublicKey = " + priv.Public().String() + "\n", "2 [Peer]"},
		{"own key as peer", "erin", replace(testGW.Public().String(), priv.Public().String()), "own"},
		{"listen port", "erin", replace("[Interface]\n", "[Interface]\nListenPort = 53\n"), "ListenPort"},
		{"mtu", "erin", replace("[Interface]\n", "[Interface]\nMTU = 100\n"), "MTU"},
		{"keepalive", "erin", replace("PersistentKeepalive = 25", "PersistentKeepalive = -1"), "PersistentKeepalive"},
		{"no endpoint", "erin", replace("Endpoint = 198.18.0.1:51821\n", ""), "Endpoint"},
		{"endpoint no port", "erin", replace("198.18.0.1:51821", "198.18.0.1"), "Endpoint"},
		{"endpoint loopback", "erin", replace("198.18.0.1:51821", "127.0.0.1:22"), "Endpoint"},
		{"many routes", "erin", replace("AllowedIPs = 10.1.0.0/16", "AllowedIPs = "+strings.Repeat("10.1.0.1/32, ", 600)+"10.1.0.0/16"), "at most"},
		{"huge", "erin", testAnswer + strings.Repeat("#", enroll.MaxConfig), "bytes"},
		{"escape in a key", "erin", replace("[Interface]\n", "[Interface]\nX\x1b[2J = 1\n"), "not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := CheckAnswer(enroll.Response{Name: c.answerName, Config: c.config}, testTok, priv)
			var ae *AnswerError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckAnswer: %v, want an AnswerError saying %q", err, c.want)
			}
			if strings.ContainsAny(err.Error(), "\x1b\x07") || strings.Contains(err.Error(), priv.Base64()) {
				t.Errorf("the error holds an escape character or the private key: %q", err)
			}
		})
	}
}

func FuzzCheckAnswer(f *testing.F) {
	f.Add("erin", testAnswer)
	f.Add("../x", testAnswer)
	f.Add("erin", strings.Replace(testAnswer, "[Interface]\n", "[Interface]\nPostUp = id\n", 1))
	f.Add("erin", strings.Replace(testAnswer, "10.1.0.0/16", "0.0.0.0/0", 1))
	f.Add("erin", "[Interface]\nAddress = 172.16.201.1/32\n[Peer]\nPublicKey = "+testGW.Public().String()+"\nEndpoint = [fd18::1]:51821\n")
	priv, _ := keys.GeneratePrivate()
	f.Fuzz(func(t *testing.T, name, config string) {
		e, err := CheckAnswer(enroll.Response{Name: name, Config: config}, testTok, priv)
		if err != nil {
			if strings.Contains(err.Error(), priv.Base64()) {
				t.Fatal("the error holds the private key")
			}
			return
		}
		if p2s.CheckName(e.Name) != nil || filepath.Base(e.Name+".conf") != e.Name+".conf" {
			t.Fatalf("accepted name %q", e.Name)
		}
		q, err := p2s.ParseQuick(e.Config)
		if err != nil {
			t.Fatalf("the saved config does not parse: %v\n%s", err, e.Config)
		}
		lower := strings.ToLower(e.Config)
		for _, hook := range []string{"postup", "preup", "postdown", "predown", "table", "saveconfig"} {
			if strings.Contains(lower, hook) && !strings.Contains(lower, "# "+hook) {
				t.Fatalf("the saved config holds %s:\n%s", hook, e.Config)
			}
		}
		if out := enroll.Outside(q.Peers[0].AllowedIPs, testTok.Bound.Routes); len(out) > 0 {
			t.Fatalf("AllowedIPs %v outside the bound", out)
		}
		if out := enroll.Outside(q.Addresses, testTok.Bound.Pool); len(out) > 0 {
			t.Fatalf("addresses %v outside the pool", out)
		}
		if q.PrivateKey != priv || len(q.Peers) != 1 || q.ListenPort != 0 {
			t.Fatalf("accepted %+v", q)
		}
	})
}

// Configs are saved only in a real directory of the user's, as new files
// (O_EXCL|O_NOFOLLOW through the directory's descriptor).
func TestConfigDir(t *testing.T) {
	base := t.TempDir()
	d, err := OpenConfigDir(filepath.Join(base, "a", "vgate"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if fi, err := os.Stat(d.Path); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("made %v %v, want mode 0700", fi, err)
	}
	// A link planted under the name is neither followed nor replaced.
	target := filepath.Join(base, "target")
	if err := os.Symlink(target, filepath.Join(d.Path, "erin.conf")); err != nil {
		t.Fatal(err)
	}
	p1, err := d.Save("erin", "one")
	if err != nil || p1 != filepath.Join(d.Path, "erin-2.conf") {
		t.Fatalf("Save beside a planted link: %s %v", p1, err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the planted link was followed: %v", err)
	}
	p2, err := d.Save("erin", "two")
	if err != nil || p2 != filepath.Join(d.Path, "erin-3.conf") {
		t.Fatalf("second enrollment with the same name: %s %v", p2, err)
	}
	if b, _ := os.ReadFile(p1); string(b) != "one" {
		t.Errorf("the first config was changed: %q", b)
	}
	if fi, _ := os.Stat(p2); fi.Mode().Perm() != 0o600 {
		t.Errorf("saved with mode %v, want 0600", fi.Mode().Perm())
	}
	if err := d.SaveAs("../x.conf", "x"); err == nil {
		t.Error("SaveAs took a path")
	}

	// A symlinked directory is refused, before anything is sent.
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(base, "b")
	os.Symlink(real, link)
	if _, err := OpenConfigDir(link, true); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked directory: %v", err)
	}
	// --output's directory is the user's choice: a link is followed.
	if d2, err := OpenConfigDir(link, false); err != nil {
		t.Errorf("--output through a link: %v", err)
	} else {
		d2.Close()
	}
	// A directory others may write to is refused.
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := OpenConfigDir(open, true); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Errorf("world-writable directory: %v", err)
	}
	// One of another user is refused.
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		os.Chown(other, 65534, 65534)
		if _, err := OpenConfigDir(other, true); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("another user's directory: %v", err)
		}
	}
}
