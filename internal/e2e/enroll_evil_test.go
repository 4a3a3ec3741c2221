package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

// A malicious enrollment server against a real `vgate connect --invite`:
// the server holds the certificate the token pins (a phished token, or a
// gateway taken over), so TLS and the pin pass, and every answer is the
// attacker's. Each case runs its own `vgate connect --invite` with its own
// HOME (the default save path, ~/.config/vgate/NAME.conf) inside a case
// directory; nothing may appear in that directory outside
// HOME/.config/vgate, and a hostile answer is refused with a clear error
// before anything is saved or brought up.
//
//	lt1: vgate connect --invite (one per case)      lt9: the attacker's enrollment
//	     198.18.0.101                                     server 198.18.0.109:8443 (TLS)
//	        \                                             and a plain HTTP trap :8080
//	         `------------ 198.18.0.0/24 underlay -----------'
func TestEnrollMaliciousServer(t *testing.T) {
	lab := netlab.NewT(t)
	bin := vgateBin(t)
	lt, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	atk, err := lab.AddLaptop(9)
	if err != nil {
		t.Fatal(err)
	}
	evil := startEvilEnroll(t, lab, atk)
	gwKey, _ := keys.GeneratePrivate()
	// What the attacker's answers claim; the tokens bound the routes to
	// 10.1.0.0/16 and the addresses to the pool 172.16.201.0/24.
	conf := func(iface, peer string) string {
		return "[Interface]\n# PrivateKey = (your own private key)\n" + iface +
			"\n[Peer]\nPublicKey = " + gwKey.Public().String() + "\nEndpoint = 198.18.0.109:51821\n" + peer + "PersistentKeepalive = 25\n"
	}
	good := conf("Address = 172.16.201.9/32\nDNS = 10.1.0.53\n", "AllowedIPs = 10.1.0.0/16\n")
	answer := func(name, config string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(enroll.Response{Name: name, Config: config})
		}
	}
	var manyRoutes strings.Builder
	manyRoutes.WriteString("AllowedIPs = ")
	for i := range 1000 {
		fmt.Fprintf(&manyRoutes, "10.1.%d.%d/32, ", i/250, i%250+1)
	}
	manyRoutes.WriteString("10.1.255.1/32\n")

	type evilCase struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request)
		// prepare runs in the case directory before vgate connect.
		prepare func(t *testing.T, dir, home string)
		runAs   []string // a command prefix (setpriv ...), nil: root
		// want: the laptop refuses, saying this; "" : it comes up.
		want string
		// hits: how many requests the server must see (-1: any).
		hits int
		// check runs after the case with its directory.
		check func(t *testing.T, dir, home string)
	}
	cases := []evilCase{
		// ../../../ from HOME/.config/vgate is the case directory, where
		// escaped/ exists, as /etc/modprobe.d does on a laptop.
		{name: "traversal", serve: answer("../../../escaped/evil", good), want: "client name", hits: 1,
			prepare: func(t *testing.T, dir, home string) { mkdirs(t, filepath.Join(dir, "escaped")) }},
		{name: "slash", serve: answer("sub/evil", good), want: "client name", hits: 1},
		{name: "dotdot", serve: answer("..", good), want: "client name", hits: 1},
		{name: "terminal", serve: answer("evil\x1b]0;owned\x07", good), want: "client name", hits: 1},
		{name: "refusal-escapes", serve: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"error": "\x1b[2J\x1b]0;owned\x07 sorry", "code": "invite_used"})
		}, want: "sorry", hits: 1},
		{name: "dir-symlink", serve: answer("bob", good), want: "symbolic link", hits: 0,
			prepare: func(t *testing.T, dir, home string) {
				mkdirs(t, filepath.Join(dir, "outside"), filepath.Join(home, ".config"))
				if err := os.Symlink(filepath.Join(dir, "outside"), filepath.Join(home, ".config", "vgate")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "file-symlink", serve: answer("carol", good), want: "", hits: 1,
			prepare: func(t *testing.T, dir, home string) {
				mkdirs(t, filepath.Join(dir, "outside"), filepath.Join(home, ".config", "vgate"))
				if err := os.Symlink(filepath.Join(dir, "outside", "carol-target"), filepath.Join(home, ".config", "vgate", "carol.conf")); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, dir, home string) {
				if fi, err := os.Lstat(filepath.Join(home, ".config", "vgate", "carol.conf")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("file-symlink: the planted symlink was replaced: %v %v", fi, err)
				}
				if saved := savedConfigs(t, home); len(saved) != 1 {
					t.Errorf("file-symlink: want one config saved beside the symlink, got %v", saved)
				}
			}},
		{name: "hook", serve: answer("dave", conf("Address = 172.16.201.9/32\nPostUp = touch /tmp/vgate-evil-postup\n", "AllowedIPs = 10.1.0.0/16\n")),
			want: "postup", hits: 1},
		{name: "hook-peer", serve: answer("dave", conf("Address = 172.16.201.9/32\n", "AllowedIPs = 10.1.0.0/16\nPreDown = touch /tmp/vgate-evil-predown\n")),
			want: "predown", hits: 1},
		{name: "routes-outside", serve: answer("erin", conf("Address = 172.16.201.9/32\n", "AllowedIPs = 0.0.0.0/0, ::/0\n")),
			want: "outside", hits: 1},
		{name: "address-outside", serve: answer("erin", conf("Address = 192.168.77.1/24\n", "AllowedIPs = 10.1.0.0/16\n")),
			want: "outside", hits: 1},
		{name: "dns-outside", serve: answer("erin", conf("Address = 172.16.201.9/32\nDNS = 203.0.113.53, ~.\n", "AllowedIPs = 10.1.0.0/16\n")),
			want: "DNS", hits: 1},
		{name: "many-routes", serve: answer("erin", conf("Address = 172.16.201.9/32\n", manyRoutes.String())),
			want: "AllowedIPs", hits: 1},
		{name: "huge-body", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"name":"erin","config":"`)
			chunk := bytes.Repeat([]byte("A"), 64<<10)
			for range 4096 { // 256 MiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			io.WriteString(w, `"}`)
		}, want: "answer", hits: 1},
		{name: "huge-headers", serve: func(w http.ResponseWriter, r *http.Request) {
			v := strings.Repeat("B", 1000)
			for i := range 8192 { // 8 MiB
				w.Header().Set(fmt.Sprintf("X-Junk-%d", i), v)
			}
			answer("erin", good)(w, r)
		}, want: "header", hits: 1},
		{name: "slow", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			rc := http.NewResponseController(w)
			for range 240 {
				if _, err := io.WriteString(w, " "); err != nil || rc.Flush() != nil {
					return
				}
				select {
				case <-r.Context().Done():
					return
				case <-time.After(500 * time.Millisecond):
				}
			}
		}, want: "", hits: 1},
		{name: "redirect", serve: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://198.18.0.109:8080/steal", http.StatusTemporaryRedirect)
		}, want: "redirect", hits: 1},
		// An unprivileged user with CAP_NET_ADMIN, on a machine whose
		// /dev/net/tun is 0666 as Debian has it (bound over this one's,
		// which is 0600, in a private mount namespace).
		{name: "nonroot", serve: answer("frank", good), want: "", hits: 1,
			runAs: append(tunForAll(t, lab), "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "-all,+net_admin", "--ambient-caps", "-all,+net_admin", "--"),
			prepare: func(t *testing.T, dir, home string) {
				if err := os.Chown(home, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, dir, home string) {
				saved := savedConfigs(t, home)
				if len(saved) != 1 {
					t.Fatalf("nonroot: want one saved config, got %v", saved)
				}
				fi, err := os.Stat(saved[0])
				if err != nil {
					t.Fatal(err)
				}
				if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != 65534 {
					t.Errorf("nonroot: saved config not owned by the user who ran vgate connect: %+v", fi.Sys())
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("nonroot: saved config mode %v, want 0600", fi.Mode().Perm())
				}
			}},
		{name: "nonroot-nocap", serve: answer("gina", good), want: "CAP_NET_ADMIN", hits: 0,
			runAs: append(tunForAll(t, lab), "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "-all", "--bounding-set", "-all", "--"),
			prepare: func(t *testing.T, dir, home string) {
				if err := os.Chown(home, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}},
	}

	// The lab directory must be traversable by the unprivileged cases.
	if err := os.Chmod(lab.Dir, 0o711); err != nil {
		t.Fatal(err)
	}
	runBin := lab.Path("vgate")
	if err := copyFile(bin, runBin, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var figures []string
	t.Cleanup(func() {
		t.Logf("malicious enrollment server, figures (case: outcome, seconds, peak RSS, bytes the server wrote):\n%s", strings.Join(figures, "\n"))
	})
	t.Run("cases", func(t *testing.T) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				dir := lab.Path("case-" + c.name)
				home := filepath.Join(dir, "home")
				mkdirs(t, home)
				if err := os.Chmod(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if c.prepare != nil {
					c.prepare(t, dir, home)
				}
				before := treeOf(t, dir)
				tok := evil.token(c.name, c.serve)
				ifname := fmt.Sprintf("%s%d", lt.IfName, i)
				args := append(slices.Clone(c.runAs), "env", "-i", "HOME="+home, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
					runBin, "connect", "--interface", ifname, "--dns", "off", "--invite", tok)
				began := time.Now()
				p, err := lab.Start(lt.NS, "connect-"+c.name+".log", args...)
				if err != nil {
					t.Fatal(err)
				}
				up := false
				deadline := time.Now().Add(45 * time.Second)
				for !p.Exited() && time.Now().Before(deadline) {
					if out, err := lab.Run(lt.NS, "ip", "-o", "route", "show", "dev", ifname); err == nil && strings.TrimSpace(out) != "" {
						up = true
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				elapsed := time.Since(began)
				routes, _ := lab.Run(lt.NS, "ip", "-o", "route", "show", "dev", ifname)
				p.Stop()
				log, _ := os.ReadFile(p.LogPath)
				rss, _ := p.MaxRSS()
				hits, sent := evil.stats(c.name)
				escaped := outsideConfigDir(t, dir, home, before)
				outcome := "refused"
				if up {
					outcome = fmt.Sprintf("came up (%d routes)", strings.Count(strings.TrimSpace(routes), "\n")+1)
				} else if !p.Exited() || elapsed > 44*time.Second {
					outcome = "still running"
				}
				if len(escaped) > 0 {
					outcome += fmt.Sprintf("; wrote outside the config directory: %v", escaped)
				}
				if n := len(savedConfigs(t, home)); n > 0 && c.want != "" {
					outcome += fmt.Sprintf("; saved %d config(s)", n)
				}
				mu.Lock()
				figures = append(figures, fmt.Sprintf("  %-16s %s, %.1f s, %.1f MiB, %d B, %d request(s)", c.name+":", outcome, elapsed.Seconds(), float64(rss)/(1<<20), sent, hits))
				mu.Unlock()
				t.Logf("%s: %s\n%s", c.name, outcome, tail(string(log), 4))

				if len(escaped) > 0 {
					t.Errorf("%s: files appeared outside %s/.config/vgate: %v", c.name, home, escaped)
				}
				if bytes.IndexByte(log, 0x1b) >= 0 {
					t.Errorf("%s: the laptop printed a raw escape character from the server's answer", c.name)
				}
				if c.hits >= 0 && hits != c.hits {
					t.Errorf("%s: the server saw %d requests, want %d", c.name, hits, c.hits)
				}
				if rss > 96<<20 {
					t.Errorf("%s: vgate connect peaked at %.1f MiB", c.name, float64(rss)/(1<<20))
				}
				// The laptop's deadline is enroll.EnrollTimeout (20 s), with 7 s
				// more for starting processes on a loaded machine.
				if elapsed > 27*time.Second {
					t.Errorf("%s: vgate connect took %v to give up", c.name, elapsed.Round(time.Second))
				}
				switch {
				case c.want == "" && c.name == "slow":
					if up || !p.Exited() {
						t.Errorf("slow: the laptop did not give up on a trickling answer")
					}
				case c.want == "":
					if !up {
						t.Errorf("%s: a sound answer did not come up:\n%s", c.name, tail(string(log), 10))
					}
				default:
					if up {
						t.Errorf("%s: the laptop brought the hostile answer up (routes %s)", c.name, strings.TrimSpace(routes))
					}
					if !strings.Contains(string(log), c.want) {
						t.Errorf("%s: want a refusal saying %q:\n%s", c.name, c.want, tail(string(log), 10))
					}
					if saved := savedConfigs(t, home); len(saved) > 0 {
						t.Errorf("%s: a hostile answer was saved: %v", c.name, saved)
					}
				}
				if c.check != nil {
					c.check(t, dir, home)
				}
			})
		}
	})
	// After the parallel cases: nothing reached the plain HTTP trap.
	if n, secret := evil.trapped(); n > 0 {
		t.Errorf("the laptop followed a redirect to plain HTTP %d time(s) (secret sent in clear text: %v)", n, secret)
	}
}

// evilEnroll is the attacker's enrollment server: the TLS listener every
// token pins, answering each token's secret with its case's handler, and
// a plain HTTP trap a redirect may point at.
type evilEnroll struct {
	url   string
	pin   [32]byte
	bound enroll.Bound

	mu     sync.Mutex
	cases  map[[32]byte]string
	serves map[string]func(http.ResponseWriter, *http.Request)
	hits   map[string]int
	sent   map[string]int64
	trap   int
	leaked bool
}

func startEvilEnroll(t *testing.T, lab *netlab.Lab, lt *netlab.Laptop) *evilEnroll {
	t.Helper()
	dir := lab.Path("evil")
	mkdirs(t, dir)
	cert, pin, err := enroll.LoadOrCreateCert(dir, "evil")
	if err != nil {
		t.Fatal(err)
	}
	e := &evilEnroll{url: "https://" + lt.Underlay.String() + ":8443/", pin: pin,
		bound: enroll.Bound{Pool: []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24")}, Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
		cases: map[[32]byte]string{}, serves: map[string]func(http.ResponseWriter, *http.Request){}, hits: map[string]int{}, sent: map[string]int64{}}
	var ln, trapLn net.Listener
	if err := netlab.InNS(lt.NS, func() error {
		var err error
		if ln, err = net.Listen("tcp", lt.Underlay.String()+":8443"); err != nil {
			return err
		}
		trapLn, err = net.Listen("tcp", lt.Underlay.String()+":8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(e.serve),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  nil,
	}
	trap := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		e.mu.Lock()
		e.trap++
		e.leaked = e.leaked || bytes.Contains(b, []byte(`"secret"`))
		e.mu.Unlock()
		io.WriteString(w, "{}")
	})}
	go srv.ServeTLS(ln, "", "")
	go trap.Serve(trapLn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		trap.Shutdown(ctx)
		srv.Close()
		trap.Close()
	})
	return e
}

// token registers a case and returns a token for it.
func (e *evilEnroll) token(name string, serve func(http.ResponseWriter, *http.Request)) string {
	tok := enroll.Token{URL: e.url, Pin: e.pin, Bound: e.bound}
	rand.Read(tok.Secret[:])
	e.mu.Lock()
	e.cases[tok.Secret] = name
	e.serves[name] = serve
	e.mu.Unlock()
	return tok.String()
}

func (e *evilEnroll) serve(w http.ResponseWriter, r *http.Request) {
	var req enroll.Request
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var secret [32]byte
	b, _ := base64.StdEncoding.DecodeString(req.Secret)
	copy(secret[:], b)
	e.mu.Lock()
	name := e.cases[secret]
	serve := e.serves[name]
	e.hits[name]++
	e.mu.Unlock()
	if serve == nil {
		http.Error(w, "unknown", http.StatusForbidden)
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	serve(cw, r)
	e.mu.Lock()
	e.sent[name] += cw.n
	e.mu.Unlock()
}

func (e *evilEnroll) stats(name string) (int, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits[name], e.sent[name]
}

func (e *evilEnroll) trapped() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.trap, e.leaked
}

// countingWriter counts the body bytes a handler wrote.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// tunForAll is a command prefix that runs the rest in a private mount
// namespace where /dev/net/tun is a copy of the device open to everyone.
func tunForAll(t *testing.T, lab *netlab.Lab) []string {
	t.Helper()
	node := lab.Path("tun-for-all")
	if _, err := os.Stat(node); err != nil {
		if out, err := exec.Command("mknod", "-m", "0666", node, "c", "10", "200").CombinedOutput(); err != nil {
			t.Fatalf("mknod: %v %s", err, out)
		}
	}
	return []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", `mount --bind "$0" /dev/net/tun && exec "$@"`, node}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// treeOf lists every path under dir (symlinks not followed).
func treeOf(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			out[p] = true
		}
		return nil
	})
	return out
}

// outsideConfigDir lists the paths that appeared under dir since before,
// other than HOME/.config, HOME/.config/vgate and the files in it.
func outsideConfigDir(t *testing.T, dir, home string, before map[string]bool) []string {
	t.Helper()
	cfg := filepath.Join(home, ".config", "vgate")
	var out []string
	for p := range treeOf(t, dir) {
		if before[p] || p == filepath.Join(home, ".config") || p == cfg || filepath.Dir(p) == cfg {
			continue
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// savedConfigs lists the regular files in HOME/.config/vgate (not
// following a symlinked directory).
func savedConfigs(t *testing.T, home string) []string {
	t.Helper()
	cfg := filepath.Join(home, ".config", "vgate")
	if fi, err := os.Lstat(cfg); err != nil || !fi.IsDir() {
		return nil
	}
	ents, _ := os.ReadDir(cfg)
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(cfg, e.Name()))
		}
	}
	return out
}
