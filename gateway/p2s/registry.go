package p2s

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/statefile"
)

// RegistryFile is the registry's file name inside state_dir.
const RegistryFile = "p2s-clients.json"

// DefaultQuarantine is how long a revoked client's addresses stay out of
// the pool: long enough that logs, flows and ACLs in other networks that
// still name the address do not suddenly mean somebody else.
const DefaultQuarantine = time.Hour

// MaxNameLen is the longest client name.
const MaxNameLen = 64

// ErrCorruptRegistry: the registry file exists but its content is not a
// registry (it does not parse, has an unknown version, or names a client,
// key or address twice). The file is left as it is. Detect it with
// errors.Is; the error names the file and what is wrong.
var ErrCorruptRegistry = errors.New("point-to-site registry is corrupt")

// Client is one registered point-to-site client. Its private key is never
// part of it: either the laptop made its own key (client add --public-key)
// or the gateway generated one, printed it once and forgot it.
type Client struct {
	Name      string         `json:"name"`
	PublicKey keys.PublicKey `json:"public_key"`
	Groups    []string       `json:"groups"`
	// Addresses holds one pool address per family the pool serves.
	Addresses []netip.Addr `json:"addresses"`
	// KeyGenerated: the gateway generated the key pair (and printed the
	// private key in the client config once).
	KeyGenerated bool      `json:"key_generated,omitempty"`
	Created      time.Time `json:"created"`
}

// Quarantined is an address of a revoked client, out of the pool until
// Until.
type Quarantined struct {
	Address netip.Addr `json:"address"`
	Until   time.Time  `json:"until"`
}

type registryFile struct {
	Version    int           `json:"version"`
	Clients    []Client      `json:"clients"`
	Quarantine []Quarantined `json:"quarantine,omitempty"`
}

// Registry is the set of registered clients and quarantined addresses,
// persisted as JSON in one file. Every change is written to a temporary
// file, synced and renamed over the old one before it takes effect, so a
// crash leaves either the old or the new registry, never a torn one.
// It is not safe for concurrent use; Server serializes access.
type Registry struct {
	path       string
	clients    map[string]*Client
	byKey      map[keys.PublicKey]string
	byAddr     map[netip.Addr]string
	quarantine map[netip.Addr]time.Time
}

// OpenRegistry reads the registry at path; a missing file is an empty
// registry. A file that does not parse is an error, never overwritten.
func OpenRegistry(path string) (*Registry, error) {
	r := &Registry{
		path:       path,
		clients:    map[string]*Client{},
		byKey:      map[keys.PublicKey]string{},
		byAddr:     map[netip.Addr]string{},
		quarantine: map[netip.Addr]time.Time{},
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("p2s registry: %w", err)
	}
	corrupt := func(err error) error {
		return fmt.Errorf("%w: %s: %w (the file is left as it is; fix or move it)", ErrCorruptRegistry, path, err)
	}
	var f registryFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, corrupt(err)
	}
	if f.Version != 1 {
		return nil, corrupt(fmt.Errorf("unknown version %d", f.Version))
	}
	for i := range f.Clients {
		c := f.Clients[i]
		if err := r.index(&c); err != nil {
			return nil, corrupt(err)
		}
	}
	for _, q := range f.Quarantine {
		r.quarantine[q.Address] = q.Until
	}
	return r, nil
}

func (r *Registry) index(c *Client) error {
	if _, dup := r.clients[c.Name]; dup {
		return fmt.Errorf("client %q: registered twice", c.Name)
	}
	if other, dup := r.byKey[c.PublicKey]; dup {
		return fmt.Errorf("client %q: public key %s already belongs to client %q", c.Name, c.PublicKey, other)
	}
	for _, a := range c.Addresses {
		if other, dup := r.byAddr[a]; dup {
			return fmt.Errorf("client %q: address %s already belongs to client %q", c.Name, a, other)
		}
	}
	r.clients[c.Name] = c
	r.byKey[c.PublicKey] = c.Name
	for _, a := range c.Addresses {
		r.byAddr[a] = c.Name
	}
	return nil
}

func (r *Registry) unindex(c *Client) {
	delete(r.clients, c.Name)
	delete(r.byKey, c.PublicKey)
	for _, a := range c.Addresses {
		delete(r.byAddr, a)
	}
}

// Len is the number of registered clients.
func (r *Registry) Len() int { return len(r.clients) }

// Get returns the client called name.
func (r *Registry) Get(name string) (Client, bool) {
	c, ok := r.clients[name]
	if !ok {
		return Client{}, false
	}
	return clone(c), true
}

func clone(c *Client) Client {
	out := *c
	out.Groups = slices.Clone(c.Groups)
	out.Addresses = slices.Clone(c.Addresses)
	return out
}

// Clients returns every client, sorted by name.
func (r *Registry) Clients() []Client {
	out := make([]Client, 0, len(r.clients))
	for _, c := range r.clients {
		out = append(out, clone(c))
	}
	slices.SortFunc(out, func(a, b Client) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// CheckName refuses names that are empty, too long, or not made of
// letters, digits and . _ @ - (not starting with '-').
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || name[0] == '-' || name[0] == '.' {
		return fmt.Errorf("client name %q: want 1 to %d characters of a-z, A-Z, 0-9 and . _ @ -, not starting with - or .", name, MaxNameLen)
	}
	for _, ch := range name {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '.' || ch == '_' || ch == '@' || ch == '-'
		if !ok {
			return fmt.Errorf("client name %q: character %q not allowed (a-z, A-Z, 0-9 and . _ @ -)", name, ch)
		}
	}
	return nil
}

// taken reports whether a is in use or quarantined at now.
func (r *Registry) taken(a netip.Addr, now time.Time) bool {
	if _, used := r.byAddr[a]; used {
		return true
	}
	until, q := r.quarantine[a]
	return q && now.Before(until)
}

// Add registers c (Name, PublicKey, Groups, KeyGenerated), allocating one
// address per pool family, and persists the registry. The registered
// client is returned. Nothing changes if any step fails.
func (r *Registry) Add(c Client, pool Pool, maxClients int, now time.Time) (Client, error) {
	if err := CheckName(c.Name); err != nil {
		return Client{}, err
	}
	if _, dup := r.clients[c.Name]; dup {
		return Client{}, api.WithCode(api.CodeConflict, fmt.Errorf("client %q already exists (revoke it first to re-add it)", c.Name))
	}
	if c.PublicKey.IsZero() {
		return Client{}, fmt.Errorf("client %q: public key required", c.Name)
	}
	if other, dup := r.byKey[c.PublicKey]; dup {
		return Client{}, api.WithCode(api.CodeConflict, fmt.Errorf("client %q: public key %s is already client %q's", c.Name, c.PublicKey, other))
	}
	if maxClients > 0 && len(r.clients) >= maxClients {
		return Client{}, fmt.Errorf("client %q: point_to_site.max_clients (%d) reached", c.Name, maxClients)
	}
	c.Addresses = nil
	v4, v6 := pool.Families()
	for _, fam := range []struct {
		want, is4 bool
	}{{v4, true}, {v6, false}} {
		if !fam.want {
			continue
		}
		a, ok := pool.Next(fam.is4, func(a netip.Addr) bool { return r.taken(a, now) })
		if !ok {
			return Client{}, fmt.Errorf("client %q: point_to_site.address_pool has no free %s address (revoked addresses return after %v)", c.Name, familyName(fam.is4), DefaultQuarantine)
		}
		c.Addresses = append(c.Addresses, a)
	}
	if len(c.Addresses) == 0 {
		return Client{}, fmt.Errorf("client %q: point_to_site.address_pool is empty", c.Name)
	}
	c.Groups = slices.Clone(c.Groups)
	c.Created = now.UTC().Truncate(time.Second)
	nc := c
	if err := r.index(&nc); err != nil {
		return Client{}, err
	}
	if err := r.save(now); err != nil {
		r.unindex(&nc)
		return Client{}, err
	}
	return clone(&nc), nil
}

func familyName(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

// Remove unregisters the client called name, quarantines its addresses
// until now+quarantine and persists the registry. It returns the removed
// client.
func (r *Registry) Remove(name string, now time.Time, quarantine time.Duration) (Client, error) {
	c, ok := r.clients[name]
	if !ok {
		return Client{}, api.WithCode(api.CodeNotFound, fmt.Errorf("no client %q", name))
	}
	r.unindex(c)
	prev := make(map[netip.Addr]time.Time, len(c.Addresses))
	for _, a := range c.Addresses {
		if t, ok := r.quarantine[a]; ok {
			prev[a] = t
		}
		r.quarantine[a] = now.Add(quarantine)
	}
	if err := r.save(now); err != nil {
		for _, a := range c.Addresses {
			if t, ok := prev[a]; ok {
				r.quarantine[a] = t
			} else {
				delete(r.quarantine, a)
			}
		}
		_ = r.index(c)
		return Client{}, err
	}
	return clone(c), nil
}

// Outside returns the clients that hold an address outside pool (a pool
// the config no longer has).
func (r *Registry) Outside(pool Pool) []string {
	var out []string
	for _, c := range r.clients {
		for _, a := range c.Addresses {
			if !pool.Contains(a) {
				out = append(out, c.Name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// Free returns how many addresses of each family are neither in use nor
// quarantined at now (saturating).
func (r *Registry) Free(pool Pool, now time.Time) (v4, v6 uint64) {
	var used4, used6 uint64
	count := func(a netip.Addr) {
		if !pool.Contains(a) {
			return
		}
		if a.Is4() {
			used4++
		} else {
			used6++
		}
	}
	for a := range r.byAddr {
		count(a)
	}
	for a, until := range r.quarantine {
		if now.Before(until) {
			if _, used := r.byAddr[a]; !used {
				count(a)
			}
		}
	}
	sub := func(n, u uint64) uint64 {
		if u > n {
			return 0
		}
		return n - u
	}
	return sub(pool.Size(true), used4), sub(pool.Size(false), used6)
}

// save writes the registry atomically: temporary file in the same
// directory, fsync, rename, fsync of the directory. Expired quarantine
// entries are dropped.
func (r *Registry) save(now time.Time) error {
	f := registryFile{Version: 1, Clients: r.Clients()}
	for a, until := range r.quarantine {
		if now.Before(until) {
			f.Quarantine = append(f.Quarantine, Quarantined{Address: a, Until: until.UTC()})
		} else {
			delete(r.quarantine, a)
		}
	}
	slices.SortFunc(f.Quarantine, func(a, b Quarantined) int { return a.Address.Compare(b.Address) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("p2s registry: %w", err)
	}
	return writeFileAtomic(r.path, append(b, '\n'))
}

// writeFileAtomic replaces path with data so that a crash at any point
// leaves either the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	if err := statefile.WriteAtomic(path, data); err != nil {
		return fmt.Errorf("p2s registry: %w", err)
	}
	return nil
}
