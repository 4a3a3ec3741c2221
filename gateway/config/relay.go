package config

import (
	"encoding/hex"
	"net/url"
	"strings"
)

// checkRelay validates a peering's relay: a wss:// URL with a host, and a
// pin of the form sha256:<64 hex digits> when given.
func checkRelay(d *doc, path string, r *PeerRelay) {
	u, err := url.Parse(r.URL)
	switch {
	case r.URL == "":
		d.errorf(path+".url", "required: the relay's wss:// URL (see `vgate relay`)")
	case err != nil:
		d.errorf(path+".url", "%q is not a URL: %v", r.URL, err)
	case u.Scheme != "wss":
		d.errorf(path+".url", "%q: the scheme must be wss (TLS), not %q", r.URL, u.Scheme)
	case u.Host == "":
		d.errorf(path+".url", "%q has no host", r.URL)
	}
	if r.Pin != "" {
		h, ok := strings.CutPrefix(r.Pin, "sha256:")
		if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != 32 {
			d.errorf(path+".pin", "%q must be sha256:<64 hex digits>, as `vgate relay` logs it at start", r.Pin)
		}
	}
}
