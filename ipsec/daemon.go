package ipsec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/strongswan/govici/vici"
)

// Options configure a Daemon.
type Options struct {
	// Charon is the daemon's path; "" finds it (FindCharon).
	Charon string
	// Dir is the private directory of the charon's files (PathsIn).
	Dir string
	Log *slog.Logger
	// OnRunning, if set, is called (on its own goroutine) each time a
	// charon is running with the peerings loaded after a restart: its TUN
	// is new, so the routes through it must be installed again.
	OnRunning func()
}

// State is one IPsec peering as vgate sees it now.
type State struct {
	// Reason is why it is not up (Decide); "" when up.
	Reason     string
	IKE, Child string // charon's SA states, "" when none
	ESPMode    ESPMode
	Endpoint   string // the device's address and port of the IKE SA
	// Remote is the configured address or name of the device (Peer.Remote),
	// for a peering whose IKE SA never came up.
	Remote  string
	UpSince time.Time
	// LastUp is the last time the peering was seen up (zero: never),
	// kept across a config change of the peering (a new PSK, say).
	LastUp            time.Time
	IKERekeys         uint64
	ChildRekeys       uint64
	RxBytes, TxBytes  uint64
	LastError         string // charon's text of the last alert, for people
	Alert             Alert
	CharonStartFailed string // why charon could not start, if it could not
}

// Daemon is vgate's charon and the peerings loaded into it. Its methods
// are safe for concurrent use.
type Daemon struct {
	opts  Options
	paths Paths

	mu       sync.Mutex
	peers    map[string]*peer
	running  bool
	startErr string
	sess     *vici.Session // commands
	list     *vici.Session // list-sas only: a streamed call never shares a session with commands
	cmd      *exec.Cmd

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	// first is closed when the first charon runs or has failed to start;
	// firstErr says which.
	first     chan struct{}
	firstOnce sync.Once
	firstErr  error
	starts    int
}

// peer is one peering's desired config and what charon says of it.
type peer struct {
	want        Peer
	loaded      bool // its conn and key are loaded into the running charon
	ike, child  string
	endpoint    string
	alert       Alert
	alertText   string
	wasUp       bool
	upSince     time.Time
	lastUp      time.Time
	ikeRekeys   uint64
	childRekeys uint64
	rxBase      uint64
	txBase      uint64
	rx, tx      uint64 // reported (monotonic)
	nextTry     time.Time
	backoff     time.Duration
	up          bool // as last settled
	// missed counts consecutive listings without an SA while p was up
	// (reconcile): one miss may be govici's lost last event, a few in a
	// row mean charon has no SA (e.g. an up read from a listing taken
	// just before a terminated SA's down event).
	missed int
}

// maxMissed is how many listings in a row may miss an up peering's SA
// before it is taken down (about one a second).
const maxMissed = 3

// viciTimeout bounds the VICI calls of one Set or one reconcile: a hung
// charon must not hold the daemon's lock (and with it status) forever.
const viciTimeout = 10 * time.Second

// Backoffs of vgate's own re-initiation of a peering that is not up, and
// of restarting charon.
const (
	minBackoff = 5 * time.Second
	maxBackoff = 60 * time.Second
)

// Start starts the supervisor: charon is started (and restarted when it
// ends, with backoff) in the background; a charon that cannot start shows
// as charon_not_running on every peering. It fails only when charon is not
// installed or opts.Dir is not private to vgate's user (ErrUnsafeDir).
func Start(opts Options) (*Daemon, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Charon == "" {
		c, err := FindCharon()
		if err != nil {
			return nil, err
		}
		opts.Charon = c
	}
	dir, err := openPrivateDir(opts.Dir) // dir.go; checked again at every start of charon
	if err != nil {
		return nil, err
	}
	dir.Close()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{opts: opts, paths: PathsIn(opts.Dir), peers: map[string]*peer{}, kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}), first: make(chan struct{})}
	go d.supervise(ctx)
	return d, nil
}

// WaitRunning waits until the first charon runs (its TUN exists), or
// returns why it could not start.
func (d *Daemon) WaitRunning(timeout time.Duration) error {
	select {
	case <-d.first:
		return d.firstErr
	case <-time.After(timeout):
		return fmt.Errorf("charon did not start within %v", timeout)
	}
}

func (d *Daemon) firstDone(err error) {
	d.firstOnce.Do(func() { d.firstErr = err; close(d.first) })
}

// Close stops charon and the supervisor.
func (d *Daemon) Close() error {
	d.cancel()
	<-d.done
	return nil
}

// ESPMode is the mode this daemon runs ESP in.
func (d *Daemon) ESPMode() ESPMode { return ESPLibipsec }

// Set makes the loaded peerings exactly want: a removed peering's SAs
// are closed and its conn and key unloaded, a changed one is reloaded and
// initiated again, an unchanged one is not touched. With charon running,
// an error loading a peering is returned (the others are applied).
func (d *Daemon) Set(ctx context.Context, want []Peer) error {
	ctx, cancel := context.WithTimeout(ctx, viciTimeout)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	names := map[string]bool{}
	var errs []error
	for _, w := range want {
		names[w.Name] = true
		p, ok := d.peers[w.Name]
		switch {
		case !ok:
			d.peers[w.Name] = &peer{want: w}
		case !p.want.Equal(w):
			if d.sess != nil && p.loaded {
				d.terminate(ctx, w.Name)
			}
			*p = peer{want: w, ikeRekeys: p.ikeRekeys, childRekeys: p.childRekeys, rxBase: p.rx, txBase: p.tx, rx: p.rx, tx: p.tx, lastUp: p.lastUp}
		}
	}
	for name, p := range d.peers {
		if names[name] {
			continue
		}
		if d.sess != nil && p.loaded {
			errs = append(errs, d.unload(ctx, name))
		}
		delete(d.peers, name)
	}
	if d.sess != nil {
		for _, p := range d.peers {
			if !p.loaded {
				if err := d.load(ctx, p); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return errors.Join(errs...)
}

// State returns what vgate knows of peering name now, and whether it is
// loaded.
func (d *Daemon) State(name string) (State, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.peers[name]
	if !ok {
		return State{}, false
	}
	s := State{
		IKE: p.ike, Child: p.child, ESPMode: ESPLibipsec, Endpoint: p.endpoint, Remote: p.want.Remote, UpSince: p.upSince, LastUp: p.lastUp,
		IKERekeys: p.ikeRekeys, ChildRekeys: p.childRekeys, RxBytes: p.rx, TxBytes: p.tx,
		Alert: p.alert, LastError: p.alertText, CharonStartFailed: d.startErr,
	}
	s.Reason = string(Decide(Observation{Running: d.running && p.loaded, IKE: p.ike, Child: p.child, Alert: p.alert, WasUp: p.wasUp}))
	return s, true
}

// supervise runs charon until ctx ends, restarting it with backoff.
func (d *Daemon) supervise(ctx context.Context) {
	defer close(d.done)
	backoff := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := d.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 2*maxBackoff {
			backoff = time.Second
		}
		d.opts.Log.Error("charon not running; restarting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// runOnce starts charon, loads every peering and follows it until it
// ends or ctx does.
func (d *Daemon) runOnce(ctx context.Context) error {
	cmd, err := startCharon(d.opts.Charon, d.paths, d.opts.Log.With("component", "charon"))
	if err != nil {
		d.mu.Lock()
		d.startErr = err.Error()
		d.mu.Unlock()
		d.firstDone(err)
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		d.mu.Lock()
		d.running, d.cmd = false, nil
		if d.sess != nil {
			d.sess.Close()
			d.list.Close()
			d.sess, d.list = nil, nil
		}
		for _, p := range d.peers {
			p.loaded, p.ike, p.child = false, "", ""
		}
		d.mu.Unlock()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
	}()
	sess, err := dialVICI(ctx, d.paths.VICI, exited)
	if err != nil {
		d.firstDone(err)
		return err
	}
	list, err := dialVICI(ctx, d.paths.VICI, exited)
	if err != nil {
		sess.Close()
		d.firstDone(err)
		return err
	}
	events, err := dialVICI(ctx, d.paths.VICI, exited)
	if err != nil {
		sess.Close()
		list.Close()
		d.firstDone(err)
		return err
	}
	defer events.Close()
	evc := make(chan vici.Event, 64)
	events.NotifyEvents(evc)
	if err := events.Subscribe("ike-updown", "child-updown", "ike-rekey", "child-rekey"); err != nil {
		sess.Close()
		list.Close()
		d.firstDone(err)
		return fmt.Errorf("vici subscribe: %w", err)
	}
	alerts := make(chan notifyMsg, 16)
	enfyCtx, stopEnfy := context.WithCancel(ctx)
	defer stopEnfy()
	go followAlerts(enfyCtx, d.paths.ErrorNotify, alerts)

	d.mu.Lock()
	d.sess, d.list, d.cmd, d.running, d.startErr = sess, list, cmd, true, ""
	var errs []error
	for _, p := range d.peers {
		if err := d.load(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		d.opts.Log.Error("loading IPsec peerings into charon", "error", err)
	}
	d.opts.Log.Info("charon running", "pid", cmd.Process.Pid, "charon", d.opts.Charon, "esp", ESPLibipsec.Describe(), "why", ESPLibipsec.Why())
	d.starts++
	if d.starts > 1 && d.opts.OnRunning != nil {
		go d.opts.OnRunning()
	}
	d.firstDone(nil)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			exited <- err // for the deferred wait
			return fmt.Errorf("charon exited: %v", err)
		case ev, ok := <-evc:
			if ok {
				d.event(ev)
			}
		case m := <-alerts:
			d.alert(m)
		case <-d.kick:
			d.reconcile(ctx)
		case <-tick.C:
			d.reconcile(ctx)
		}
	}
}

// dialVICI connects to charon's VICI socket, waiting up to 15 s for
// charon to open it.
func dialVICI(ctx context.Context, path string, exited chan error) (*vici.Session, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := vici.NewSession(vici.WithSocketPath(path))
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("charon's VICI socket %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-exited:
			exited <- e
			return nil, fmt.Errorf("charon exited during start: %v", e)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// followAlerts reads error-notify messages until ctx ends.
func followAlerts(ctx context.Context, path string, out chan<- notifyMsg) {
	for ctx.Err() == nil {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
				continue
			}
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		buf := make([]byte, notifyMsgLen)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				break
			}
			if m, err := parseNotify(buf); err == nil {
				select {
				case out <- m:
				case <-ctx.Done():
				}
			}
		}
		stop()
		c.Close()
	}
}

// load loads p's key and conn into charon. d.mu is held.
func (d *Daemon) load(ctx context.Context, p *peer) error {
	key, err := vici.MarshalMessage(sharedFor(p.want))
	if err != nil {
		return err
	}
	if _, err := d.sess.Call(ctx, "load-shared", key); err != nil {
		return fmt.Errorf("ipsec peering %q: load pre-shared key: %w", p.want.Name, err)
	}
	c, err := vici.MarshalMessage(map[string]any{p.want.Name: connFor(p.want)})
	if err != nil {
		return err
	}
	if _, err := d.sess.Call(ctx, "load-conn", c); err != nil {
		return fmt.Errorf("ipsec peering %q: load connection: %w", p.want.Name, err)
	}
	p.loaded, p.nextTry, p.backoff = true, time.Time{}, 0
	return nil
}

// unload closes name's SAs and unloads its conn and key. d.mu is held.
func (d *Daemon) unload(ctx context.Context, name string) error {
	d.terminate(ctx, name)
	m := vici.NewMessage()
	_ = m.Set("name", name)
	_, err1 := d.sess.Call(ctx, "unload-conn", m)
	k := vici.NewMessage()
	_ = k.Set("id", "vgate-"+name)
	_, err2 := d.sess.Call(ctx, "unload-shared", k)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("ipsec peering %q: unload: %w", name, err)
	}
	return nil
}

// terminate closes name's IKE SA (and its children) without waiting.
func (d *Daemon) terminate(ctx context.Context, name string) {
	m := vici.NewMessage()
	_ = m.Set("ike", name)
	_ = m.Set("force", "yes")
	_ = m.Set("timeout", "-1")
	_, _ = d.sess.Call(ctx, "terminate", m)
}

// initiate starts name's child SA (and the IKE SA if needed) without
// waiting: the outcome arrives as events and alerts.
func (d *Daemon) initiate(ctx context.Context, name string) error {
	m := vici.NewMessage()
	_ = m.Set("child", name)
	_ = m.Set("ike", name)
	_ = m.Set("timeout", "-1")
	_, err := d.sess.Call(ctx, "initiate", m)
	return err
}

// reconcile reads every SA from charon (byte counters, endpoint, and an
// up state whose event was lost) and initiates each loaded peering that is
// not up, with backoff. A peering's up and down come from charon's events
// (event): govici's streamed list-sas can end before its last list-sa
// event is read (its response and events race on two channels), so a
// peering missing from one listing is not taken down. A needless
// initiation is harmless: charon refuses a duplicate child SA.
func (d *Daemon) reconcile(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, viciTimeout)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sess == nil {
		return
	}
	sas, err := listSAs(ctx, d.list)
	if err != nil {
		d.opts.Log.Debug("vici list-sas", "error", err)
		return
	}
	now := time.Now()
	for name, p := range d.peers {
		if !p.loaded {
			if err := d.load(ctx, p); err != nil {
				d.opts.Log.Error("loading IPsec peering", "error", err)
				continue
			}
		}
		s, seen := sas[name]
		switch {
		case seen:
			p.missed = 0
		case p.isUp():
			if p.missed++; p.missed >= maxMissed {
				d.opts.Log.Debug("IPsec peering up but charon lists no SA: down", "peering", name, "listings", p.missed)
				p.ike, p.child, p.missed = "", "", 0
			}
		}
		if seen {
			if s.endpoint != "" {
				p.endpoint = s.endpoint
			}
			if s.ike == "ESTABLISHED" && s.child == "INSTALLED" {
				p.ike, p.child = s.ike, s.child
				p.rx, p.tx = max(p.rx, p.rxBase+s.rx), max(p.tx, p.txBase+s.tx)
			}
		}
		p.settle(now)
		if p.isUp() {
			continue
		}
		if seen && (s.ike == "CONNECTING" || s.ike == "REKEYING" || s.ike == "DELETING" || s.childPending) {
			continue // under way
		}
		if now.Before(p.nextTry) {
			continue
		}
		p.backoff = min(max(p.backoff*2, minBackoff), maxBackoff)
		p.nextTry = now.Add(p.backoff)
		if err := d.initiate(ctx, name); err != nil {
			d.opts.Log.Debug("vici initiate", "peering", name, "error", err)
		}
	}
}

func (p *peer) isUp() bool { return p.ike == "ESTABLISHED" && p.child == "INSTALLED" }

// settle records the moment p came up: the failure that kept it down is
// over, and re-initiation starts again from the shortest backoff.
func (p *peer) settle(now time.Time) {
	up := p.isUp()
	if up {
		p.lastUp = now
	}
	if up && !p.up {
		p.upSince = now
		p.wasUp, p.alert, p.alertText, p.backoff, p.nextTry = true, 0, "", 0, time.Time{}
	}
	p.up = up
}

// event follows the SAs' ups and downs, counts rekeys and keeps the bytes
// of child SAs that end.
func (d *Daemon) event(ev vici.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	up, _ := ev.Message.Get("up").(string)
	for _, name := range ev.Message.Keys() {
		p, ok := d.peers[name]
		if !ok {
			continue
		}
		ike, _ := ev.Message.Get(name).(*vici.Message)
		switch ev.Name {
		case "ike-updown":
			if up == "yes" {
				p.ike = "ESTABLISHED"
				if info := parseIKE(ike); info.endpoint != "" {
					p.endpoint = info.endpoint
				}
			} else {
				p.ike, p.child = "", ""
			}
		case "child-updown":
			if up == "yes" {
				p.ike, p.child = "ESTABLISHED", "INSTALLED"
			} else {
				p.child = ""
				for _, c := range childSAs(ike) {
					rx, tx := childBytes(c)
					p.rxBase, p.txBase = p.rxBase+rx, p.txBase+tx
				}
			}
		case "ike-rekey":
			p.ikeRekeys++
		case "child-rekey":
			p.childRekeys++
			// The old child SA's bytes end with it: keep them.
			for _, c := range childSAs(ike) {
				if old, ok := c.Get("old").(*vici.Message); ok {
					rx, tx := childBytes(old)
					p.rxBase, p.txBase = p.rxBase+rx, p.txBase+tx
				}
			}
		}
		p.settle(time.Now())
	}
}

// alert records a typed alert for its peering.
func (d *Daemon) alert(m notifyMsg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.peers[m.Name]
	if !ok {
		return
	}
	switch m.Type {
	case AlertProposalMismatchIKE, AlertProposalMismatchChld, AlertLocalAuthFailed, AlertPeerAuthFailed,
		AlertAuthorizationFailed, AlertRetransmitTimeout, AlertHalfOpenTimeout, AlertTSMismatch, AlertInstallChildFailed, AlertInstallPolicyFailed:
		if p.alert != m.Type {
			d.opts.Log.Info("ipsec alert", "peering", m.Name, "alert", m.Type.String(), "alert_code", int(m.Type), "charon", m.Str)
		}
		p.alert, p.alertText = m.Type, m.Str
	}
}

// saInfo is one peering's SAs as list-sas reports them.
type saInfo struct {
	ike, child   string
	childPending bool // a child SA is being created or rekeyed
	endpoint     string
	rx, tx       uint64
}

// listSAs asks charon for every IKE SA, keyed by connection name. With
// several IKE SAs of one name (during a rekey), an established one wins.
func listSAs(ctx context.Context, s *vici.Session) (map[string]saInfo, error) {
	out := map[string]saInfo{}
	for m, err := range s.CallStreaming(ctx, "list-sas", "list-sa", nil) {
		if err != nil {
			return nil, err
		}
		for _, name := range m.Keys() {
			ike, ok := m.Get(name).(*vici.Message)
			if !ok {
				continue
			}
			info := parseIKE(ike)
			if prev, ok := out[name]; ok && prev.ike == "ESTABLISHED" && info.ike != "ESTABLISHED" {
				continue
			}
			if prev, ok := out[name]; ok && prev.child == "INSTALLED" && info.child != "INSTALLED" {
				continue
			}
			out[name] = info
		}
	}
	return out, nil
}

func parseIKE(ike *vici.Message) saInfo {
	str := func(m *vici.Message, k string) string { v, _ := m.Get(k).(string); return v }
	info := saInfo{ike: str(ike, "state")}
	if h := str(ike, "remote-host"); h != "" {
		info.endpoint = net.JoinHostPort(h, str(ike, "remote-port"))
	}
	for _, c := range childSAs(ike) {
		switch st := str(c, "state"); st {
		case "INSTALLED":
			info.child = st
			in, out := childBytes(c)
			info.rx += in
			info.tx += out
		case "CREATED", "ROUTED", "INSTALLING", "UPDATING", "REKEYING":
			info.childPending = true
		}
	}
	return info
}

// childSAs are the child SA sections of an IKE SA section.
func childSAs(ike *vici.Message) []*vici.Message {
	if ike == nil {
		return nil
	}
	children, _ := ike.Get("child-sas").(*vici.Message)
	if children == nil {
		return nil
	}
	var out []*vici.Message
	for _, k := range children.Keys() {
		if c, ok := children.Get(k).(*vici.Message); ok {
			out = append(out, c)
		}
	}
	return out
}

// childBytes are a child SA's byte counters (in, out).
func childBytes(c *vici.Message) (uint64, uint64) {
	in, _ := c.Get("bytes-in").(string)
	out, _ := c.Get("bytes-out").(string)
	rx, _ := strconv.ParseUint(in, 10, 64)
	tx, _ := strconv.ParseUint(out, 10, 64)
	return rx, tx
}
