package netlab

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// staleRE matches namespace names made with a NewPrefix prefix.
var staleRE = regexp.MustCompile(`^vgl[0-9a-f]{6}-(wan|gw[0-9]+|h[0-9]+)$`)

// CleanupStale deletes namespaces left behind by labs that died without
// Close (names "vgl<6 hex>-…", created more than maxAge ago). It never kills
// anything: a namespace that still holds processes is kept and reported in
// the error, with the PIDs, for a human to judge. It returns the names it
// deleted.
func CleanupStale(maxAge time.Duration) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !staleRE.MatchString(name) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < maxAge {
			continue
		}
		pids, err := run("ip", "netns", "pids", name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p := strings.Fields(pids); len(p) > 0 {
			errs = append(errs, fmt.Errorf("netlab: stale namespace %s still runs pids %v; not deleted", name, p))
			continue
		}
		if _, err := run("ip", "netns", "del", name); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, name)
	}
	return deleted, errors.Join(errs...)
}
