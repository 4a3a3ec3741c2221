package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/sdnotify"
)

// Run is `vgate relay`: it serves cfg until ctx ends. Each value on reload
// re-reads the config file's accepted keys (the listener, certificate and
// limits stay until a restart).
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reload <-chan struct{}) error {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.StateDir, KeyFile))
	if err != nil {
		return err
	}
	cert, pin, err := LoadOrCreateCert(cfg.CertFile, cfg.KeyFile, cfg.StateDir, cfg.Names)
	if err != nil {
		return err
	}
	accepted, err := cfg.AcceptedKeys()
	if err != nil {
		return err
	}
	srv := NewServer(key, cfg.Limits(), log)
	srv.SetAccepted(accepted)
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
	hs := &http.Server{
		Handler:           srv,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() { done <- hs.ServeTLS(ln, "", "") }()
	log.Info("relay listening", "listen", ln.Addr().String(), "relay_public_key", srv.PublicKey().String(),
		"pin", pin, "accepted_keys", len(accepted))
	sdnotify.Notify("READY=1")
	for {
		select {
		case err := <-done:
			return err
		case <-reload:
			c2, err := LoadConfig(cfg.Path)
			if err == nil {
				accepted, err = c2.AcceptedKeys()
			}
			if err != nil {
				log.Error("relay reload rejected; keeping the accepted keys", "error", err)
				continue
			}
			srv.SetAccepted(accepted)
			log.Info("relay reloaded", "accepted_keys", len(accepted))
		case <-ctx.Done():
			sdnotify.Notify("STOPPING=1")
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx) // WebSocket connections are hijacked: Close ends them below
			hs.Close()
			st := srv.Stats()
			log.Info("relay stopped", "forwarded", st.Forwarded, "forwarded_bytes", st.ForwardedBytes,
				"refused", st.Refused, "dropped_queue_full", st.DroppedQueueFull, "dropped_rate", st.DroppedRate)
			return nil
		}
	}
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
