package wgbind

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ratelimiter"

	"github.com/vgate-project/vgate/gateway/keys"
)

// The front door checks every handshake initiation once for all devices,
// as a standalone wireguard-go device checks its own (device/receive.go
// RoutineHandshake): MAC1; under load MAC2, answered with a cookie reply
// when it is missing, and a per-source rate limit; then the static key
// (noise.go). It delivers what passes to the one device whose peer sent it,
// so no device ever sees, or answers, an initiation that is not its peer's.

const (
	// handshakeQueueLen bounds the initiations waiting for a worker, as
	// wireguard-go's QueueHandshakeSize bounds a device's.
	handshakeQueueLen = 1024

	// The Mux is under load while its handshake queue holds at least
	// underLoadQueue initiations, and for underLoadAfter after that
	// (wireguard-go device.IsUnderLoad and UnderLoadAfterTime).
	underLoadQueue = handshakeQueueLen / 8
	underLoadAfter = time.Second
)

// handshakeWorkers is how many goroutines process initiations.
func handshakeWorkers() int { return max(1, min(runtime.GOMAXPROCS(0), 4)) }

// frontDoor is the published, immutable routing state of initiations.
type frontDoor struct {
	id    *responder // nil until SetPrivateKey
	peers map[[keyLen]byte]*doorPeer
}

type doorPeer struct {
	b            *bind // nil while no NewBind has the peer's name
	staticStatic [keyLen]byte
	ok           bool // false for a low-order peer key: never delivered
}

// SetPrivateKey sets the gateway's private key, the one every device of the
// Mux uses: the front door decrypts initiations and answers cookies with it.
// A zero key makes the front door drop every initiation.
func (m *Mux) SetPrivateKey(k keys.PrivateKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k == m.priv {
		return
	}
	m.priv = k
	if !k.IsZero() {
		m.cookies.Init(device.NoisePublicKey(k.Public()))
	}
	m.publishDoorLocked()
}

// SetPeers sets, for every device, the public key of its one peer, keyed by
// the name given to NewBind: the whole desired mapping, replacing the last.
// Initiations from a key not in it are dropped; one from a named device
// that is not open is dropped as not open. Two names with the same key are
// refused (the mapping is then unchanged).
func (m *Mux) SetPeers(peers map[string]keys.PublicKey) error {
	byKey := make(map[keys.PublicKey]string, len(peers))
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		k := peers[name]
		if k.IsZero() {
			return fmt.Errorf("wgbind: peer of device %q: public key is zero", name)
		}
		if other, dup := byKey[k]; dup {
			return fmt.Errorf("wgbind: peer of device %q: same public key as the peer of device %q", name, other)
		}
		byKey[k] = name
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers = maps.Clone(peers)
	// Forget the devices that are closed and no longer named: their stats
	// go with them.
	for name, b := range m.binds {
		if _, named := m.peers[name]; !named && b.cur.Load() == nil {
			delete(m.binds, name)
		}
	}
	m.publishDoorLocked()
	return nil
}

// publishDoorLocked rebuilds the front door from priv, peers and binds. It
// costs one X25519 per peer (the static-static secrets).
func (m *Mux) publishDoorLocked() {
	d := &frontDoor{peers: make(map[[keyLen]byte]*doorPeer, len(m.peers))}
	if !m.priv.IsZero() {
		d.id = newResponder(m.priv, m.priv.Public())
		for name, k := range m.peers {
			p := &doorPeer{b: m.binds[name]}
			ss, err := x25519((*[keyLen]byte)(&m.priv), (*[keyLen]byte)(&k))
			p.staticStatic, p.ok = ss, err == nil
			d.peers[[keyLen]byte(k)] = p
		}
	}
	m.door.Store(d)
}

// underLoad reports whether initiations need a valid MAC2 now.
func (m *Mux) underLoad() bool {
	now := int64(time.Since(m.epoch))
	if len(m.hq) >= underLoadQueue {
		m.underLoadUntil.Store(now + int64(underLoadAfter))
		return true
	}
	return m.underLoadUntil.Load() > now
}

// worker processes initiations from the handshake queue.
type worker struct {
	m     *Mux
	rate  *ratelimiter.Ratelimiter
	reply [cookieReplySize]byte
	out   [][]byte
	dh    func()
}

func (m *Mux) newWorker(rate *ratelimiter.Ratelimiter) *worker {
	w := &worker{m: m, rate: rate}
	w.out = [][]byte{w.reply[:]}
	w.dh = func() { m.dhOps.Add(1) }
	return w
}

func (w *worker) run(stop <-chan struct{}) {
	for {
		select {
		case pb := <-w.m.hq:
			w.handle(pb)
		case <-stop:
			return
		}
	}
}

// handle takes pb's reference: it passes it to a device or releases it.
func (w *worker) handle(pb *packetBuf) {
	m := w.m
	if b := w.admit(pb.data[:pb.n], pb.ep, pb.via); b != nil {
		m.deliverHandshake(b, pb) // hsgate.go
	} else {
		m.release(pb)
	}
	m.doorDone.Add(1)
}

// admit returns the device msg (an initiation from ep) is for, or nil when
// it is dropped (and counted) or answered with a cookie reply. via, if not
// nil, is the device whose peer's relay connection carried msg: the relay
// proved that peer's key and rate-limits it, so no cookie is asked for
// (there is no UDP source to answer), and msg goes to via or nowhere.
func (w *worker) admit(msg []byte, ep conn.Endpoint, via *bind) *bind {
	m := w.m
	door := m.door.Load()
	if door.id == nil {
		m.droppedUnknownPeer.Add(1)
		return nil
	}
	if !m.cookies.CheckMAC1(msg) {
		m.droppedBadMAC.Add(1)
		return nil
	}
	if via == nil && m.underLoad() {
		src := ep.DstToBytes()
		if !m.cookies.CheckMAC2(msg, src) {
			w.sendCookie(msg, src, ep)
			return nil
		}
		if !w.rate.Allow(ep.DstIP()) {
			m.droppedRate.Add(1)
			return nil
		}
	}
	var st handshakeState
	peer, err := door.id.openStatic(msg, &st, w.dh)
	if err != nil {
		m.droppedBadHS.Add(1)
		return nil
	}
	p := door.peers[peer]
	if p == nil {
		m.droppedUnknownPeer.Add(1)
		return nil
	}
	if !p.ok {
		m.droppedBadHS.Add(1)
		return nil
	}
	ts, err := openTimestamp(msg, &st, &p.staticStatic)
	if err != nil {
		m.droppedBadHS.Add(1)
		return nil
	}
	if p.b == nil {
		m.droppedNotOpen.Add(1)
		return nil
	}
	if via != nil && p.b != via {
		m.droppedUnknownPeer.Add(1)
		return nil
	}
	if !p.b.freshTimestamp(peer, ts) {
		m.droppedReplay.Add(1)
		return nil
	}
	return p.b
}

// freshTimestamp reports whether ts, of an initiation from peer, is later
// than every one admitted for this device from that peer before, and then
// remembers it. wireguard-go's device makes the same check (its timestamps
// are whitened to ~17 ms, so a peer cannot initiate faster than that); the
// front door makes it first so that a replayed initiation never reaches the
// device's handshake gate (hsgate.go), where it could hold back the peer's
// real one. A new peer key starts afresh, as does a new device (a new
// bind): a device's peer lives as long as the device in the gateway.
func (b *bind) freshTimestamp(peer [keyLen]byte, ts [12]byte) bool {
	b.tsMu.Lock()
	defer b.tsMu.Unlock()
	if peer != b.tsPeer {
		b.tsPeer, b.tsLast = peer, ts
		return true
	}
	if bytes.Compare(ts[:], b.tsLast[:]) <= 0 {
		return false
	}
	b.tsLast = ts
	return true
}

// sendCookie answers msg with a cookie reply from the gateway's key: at most
// one per initiation, smaller than the initiation.
func (w *worker) sendCookie(msg, src []byte, ep conn.Endpoint) {
	m := w.m
	sender := binary.LittleEndian.Uint32(msg[4:8])
	reply, err := m.cookies.CreateReply(msg, sender, src)
	if err != nil {
		m.log.Warn("shared wireguard port: cannot create a cookie reply", "err", err)
		return
	}
	b := w.reply[:]
	binary.LittleEndian.PutUint32(b[0:], reply.Type)
	binary.LittleEndian.PutUint32(b[4:], reply.Receiver)
	copy(b[8:], reply.Nonce[:])
	copy(b[8+len(reply.Nonce):], reply.Cookie[:])
	if err := m.under.Send(w.out, ep); err != nil {
		m.log.Debug("shared wireguard port: cookie reply not sent", "err", err)
		return
	}
	m.cookieReplies.Add(1)
}
