package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/sdnotify"
)

// keysPoll is how often the relay looks at the gateway's PublicKeysFile
// (a stat; the file is read only when it changed): a revoked client is
// closed within this and kickGrace.
const keysPoll = 250 * time.Millisecond

// Run is `vgate relay`: it serves cfg until ctx ends. It accepts the keys
// of accept and, with accept_gateway, those the gateway publishes in its
// PublicKeysFile, which it watches: an added or revoked key takes effect
// within keysPoll, without a signal. Each value on reload re-reads the
// config file's accept and accept_gateway (the listener, certificate and
// limits stay until a restart).
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reload <-chan struct{}) error {
	dir, legacy := cfg.stateDir()
	if legacy {
		log.Warn("state_dir: using the key and certificate in the relay's former default directory; move them to the new default or set state_dir",
			"state_dir", dir, "default", DefaultStateDir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return err
	}
	cert, pin, err := LoadOrCreateCert(cfg.CertFile, cfg.KeyFile, dir, cfg.Names)
	if err != nil {
		return err
	}
	w := &keyWatch{log: log}
	w.configure(cfg)
	w.poll()
	srv := NewServer(key, cfg.Limits(), log)
	srv.SetAccepted(w.keys())
	if cfg.Metrics.Listen != "" {
		ms, err := serveMetrics(cfg.Metrics.Listen, srv, log) // metrics.go
		if err != nil {
			return err
		}
		defer ms.Close()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln, cert) }()
	lim := srv.limits
	log.Info("relay listening", "listen", ln.Addr().String(), "relay_public_key", srv.PublicKey().String(),
		"pin", pin, "accepted_keys", len(w.keys()), "max_connections", lim.MaxConnections,
		"max_pending", lim.MaxPending, "max_pending_per_source", lim.MaxPendingPerSource)
	sdnotify.Notify("READY=1")
	t := time.NewTicker(keysPoll)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			if w.poll() {
				srv.SetAccepted(w.keys())
				log.Info("relay: accepted keys changed", "accepted_keys", len(w.keys()), "gateway_keys", w.path)
			}
		case <-reload:
			c2, err := LoadConfig(cfg.Path)
			if err != nil {
				log.Error("relay reload rejected; keeping the accepted keys", "error", err)
				continue
			}
			w.configure(c2)
			w.poll()
			srv.SetAccepted(w.keys())
			log.Info("relay reloaded", "accepted_keys", len(w.keys()))
		case <-ctx.Done():
			sdnotify.Notify("STOPPING=1")
			srv.Close()
			st := srv.Stats()
			log.Info("relay stopped", "forwarded", st.Forwarded, "forwarded_bytes", st.ForwardedBytes,
				"refused", st.Refused, "dropped_queue_full", st.DroppedQueueFull, "dropped_rate", st.DroppedRate)
			return nil
		}
	}
}

// keyWatch is the accepted keys: the config's own, and those of the
// gateway's PublicKeysFile, re-read when its inode, size or modification
// time changes (the gateway replaces it by rename).
type keyWatch struct {
	log    *slog.Logger
	static []keys.PublicKey
	path   string
	stamp  fileStamp
	gw     []keys.PublicKey
}

type fileStamp struct {
	ino, size, mtime int64
	present          bool
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), present: true}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = int64(sys.Ino)
	}
	return st, nil
}

// configure takes cfg's keys and file; the next poll reads the file.
func (w *keyWatch) configure(cfg *Config) {
	w.static = slices.Clone(cfg.Accept)
	if cfg.GatewayKeys != w.path {
		w.path, w.stamp, w.gw = cfg.GatewayKeys, fileStamp{}, nil
	}
	w.stamp.mtime = -1 // read again
}

// poll reads the file if it changed and reports whether the gateway's keys
// did. A missing file accepts none of them; one that does not parse keeps
// the last good keys.
func (w *keyWatch) poll() bool {
	if w.path == "" {
		return false
	}
	st, err := stampOf(w.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		if w.stamp.present || w.stamp.mtime == -1 {
			w.log.Error("accept_gateway: cannot read the gateway's public keys; keeping the last ones", "file", w.path, "error", err)
		}
		w.stamp = fileStamp{}
		return false
	}
	if st == w.stamp {
		return false
	}
	first := w.stamp.mtime == -1
	w.stamp = st
	var next []keys.PublicKey
	if st.present {
		pk, err := ReadPublicKeys(w.path)
		if err != nil {
			w.log.Error("accept_gateway: the gateway's public keys do not parse; keeping the last ones", "error", err)
			return false
		}
		next = pk.Keys()
	} else if first || w.gw != nil {
		w.log.Warn("accept_gateway: no public keys from the gateway (yet): accepting none of its keys until it writes them", "file", w.path)
	}
	changed := !slices.Equal(next, w.gw)
	w.gw = next
	return changed
}

// keys is every accepted key now.
func (w *keyWatch) keys() []keys.PublicKey {
	return append(slices.Clone(w.static), w.gw...)
}

// loadOrCreateKey reads the relay's static key, creating it (mode 0600)
// on first start.
func loadOrCreateKey(path string) (keys.PrivateKey, error) {
	k, err := keys.LoadPrivateFile(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return k, fmt.Errorf("relay key: %w", err)
	}
	k, err = keys.GeneratePrivate()
	if err != nil {
		return k, err
	}
	if err := keys.WritePrivateFile(path, k); err != nil {
		return k, fmt.Errorf("relay key: %w", err)
	}
	return k, nil
}
