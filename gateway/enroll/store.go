package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vgate-project/vgate/gateway/statefile"
)

// StoreFile is the invite store's file name inside state_dir.
const StoreFile = "p2s-invites.json"

// DefaultExpiry is how long an invite is valid unless --expires says.
const DefaultExpiry = 24 * time.Hour

// MaxExpiry is the longest an invite may be valid.
const MaxExpiry = 30 * 24 * time.Hour

// Keep is how long a used, revoked or expired invite is remembered after
// it expired, so that a second attempt is told why it is refused.
const Keep = 7 * 24 * time.Hour

// Invite is one invite as stored: never the secret, only its SHA-256.
type Invite struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	// SecretSHA256 is the hex SHA-256 of the token's secret.
	SecretSHA256 string    `json:"secret_sha256"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	// Used and Revoked are set once; an invite with either is spent.
	Used    time.Time `json:"used,omitzero"`
	Revoked time.Time `json:"revoked,omitzero"`
	// Bound is what the token lets the client's config hold (nil in
	// invites made before tokens carried it).
	Bound *Bound `json:"bound,omitempty"`
}

// State is an invite's state at a time.
type State string

const (
	Pending State = "pending"
	Used    State = "used"
	Expired State = "expired"
	Revoked State = "revoked"
)

// StateAt is the invite's state at now.
func (i Invite) StateAt(now time.Time) State {
	switch {
	case !i.Used.IsZero():
		return Used
	case !i.Revoked.IsZero():
		return Revoked
	case !now.Before(i.Expires):
		return Expired
	}
	return Pending
}

// Code classifies a refused enrollment (it crosses the wire as the
// answer's code).
type Code string

const (
	CodeUnknown     Code = "invite_unknown"
	CodeUsed        Code = "invite_used"
	CodeExpired     Code = "invite_expired"
	CodeRevoked     Code = "invite_revoked"
	CodeRateLimited Code = "rate_limited"
	CodeBadRequest  Code = "bad_request"
	CodeFailed      Code = "enroll_failed" // the gateway could not add the client
	// CodeStale: the gateway would now give the client more than the
	// invite's bound (its groups or pool changed); the invite stays
	// pending until revoked.
	CodeStale Code = "invite_stale"
)

// Refused is an enrollment the gateway refused, with its code.
type Refused struct {
	Code Code
	Msg  string
}

func (e *Refused) Error() string { return e.Msg }

// Store is the gateway's invites, persisted in one JSON file through
// statefile's atomic writer. It is safe for concurrent use; Redeem is
// serialized, so a token is used at most once even when two laptops race.
type Store struct {
	path string
	mu   sync.Mutex
	inv  []Invite
}

type storeFile struct {
	Version int      `json:"version"`
	Invites []Invite `json:"invites"`
}

// OpenStore reads the store at path; a missing file is an empty store.
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invites: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("invites: %s is not an invite store (version 1): %v (fix or move it)", path, err)
	}
	s.inv = f.Invites
	return s, nil
}

// HashSecret is the stored form of a secret.
func HashSecret(secret [32]byte) string {
	h := sha256.Sum256(secret[:])
	return hex.EncodeToString(h[:])
}

// Create records a new invite for name and groups with bound, valid for
// ttl from now, and returns it with its secret. taken says whether name
// is already a client. A name with a pending invite is refused too.
func (s *Store) Create(name string, groups []string, bound Bound, ttl time.Duration, now time.Time, taken func(string) bool) (Invite, [32]byte, error) {
	var secret [32]byte
	if ttl <= 0 || ttl > MaxExpiry {
		return Invite{}, secret, fmt.Errorf("invite %q: --expires %v must be more than 0 and at most %v", name, ttl, MaxExpiry)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.pending(name, now); i >= 0 {
		return Invite{}, secret, &Conflict{fmt.Sprintf("invite %q: a pending invite for this name exists (expires %s); revoke it first", name, s.inv[i].Expires.Format(time.RFC3339))}
	}
	if taken(name) {
		return Invite{}, secret, &Conflict{fmt.Sprintf("invite %q: a client of this name exists (revoke it first to invite it again)", name)}
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return Invite{}, secret, err
	}
	inv := Invite{Name: name, Groups: slices.Clone(groups), SecretSHA256: HashSecret(secret),
		Created: now.UTC().Truncate(time.Second), Expires: now.Add(ttl).UTC().Truncate(time.Second), Bound: &bound}
	next := append(slices.Clone(s.inv), inv)
	if err := s.save(next, now); err != nil {
		return Invite{}, [32]byte{}, err
	}
	return inv, secret, nil
}

// Conflict: the name is taken by a client or a pending invite.
type Conflict struct{ Msg string }

func (e *Conflict) Error() string { return e.Msg }

// NotFound: no pending invite of that name.
type NotFound struct{ Msg string }

func (e *NotFound) Error() string { return e.Msg }

func (s *Store) pending(name string, now time.Time) int {
	return slices.IndexFunc(s.inv, func(i Invite) bool { return i.Name == name && i.StateAt(now) == Pending })
}

// PendingSecret reports whether secret is the secret of a pending invite.
// It changes nothing, costs one SHA-256 and a scan of the invites, and
// runs for every enrollment request before any rate limit.
func (s *Store) PendingSecret(secret [32]byte, now time.Time) bool {
	h := HashSecret(secret)
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.inv, func(i Invite) bool { return i.SecretSHA256 == h && i.StateAt(now) == Pending })
}

// Pending reports whether name has a pending invite.
func (s *Store) Pending(name string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending(name, now) >= 0
}

// Revoke spends the pending invite of name.
func (s *Store) Revoke(name string, now time.Time) (Invite, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.pending(name, now)
	if i < 0 {
		return Invite{}, &NotFound{fmt.Sprintf("no pending invite %q", name)}
	}
	next := slices.Clone(s.inv)
	next[i].Revoked = now.UTC()
	if err := s.save(next, now); err != nil {
		return Invite{}, err
	}
	return next[i], nil
}

// List returns every remembered invite, by name.
func (s *Store) List() []Invite {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.inv)
	slices.SortStableFunc(out, func(a, b Invite) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Redeem finds the invite of secret; if it is pending, add registers the
// client (returning whatever the caller needs, e.g. its config) and the
// invite is marked used. A refusal is a *Refused naming why (add's own
// *Refused as it is, any other error of add as CodeFailed). Redeem holds
// the store's lock throughout: one secret enrolls one client.
func (s *Store) Redeem(secret [32]byte, now time.Time, add func(Invite) (string, error)) (Invite, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := HashSecret(secret)
	i := slices.IndexFunc(s.inv, func(i Invite) bool { return i.SecretSHA256 == h })
	if i < 0 {
		return Invite{}, "", &Refused{CodeUnknown, "the gateway knows no such invite (never issued, or spent more than a week ago)"}
	}
	inv := s.inv[i]
	switch inv.StateAt(now) {
	case Used:
		return inv, "", &Refused{CodeUsed, fmt.Sprintf("invite %q was already used at %s; an invite enrolls one device: ask for a new one", inv.Name, inv.Used.Format(time.RFC3339))}
	case Revoked:
		return inv, "", &Refused{CodeRevoked, fmt.Sprintf("invite %q was revoked at %s", inv.Name, inv.Revoked.Format(time.RFC3339))}
	case Expired:
		return inv, "", &Refused{CodeExpired, fmt.Sprintf("invite %q expired at %s", inv.Name, inv.Expires.Format(time.RFC3339))}
	}
	out, err := add(inv)
	if ref := (*Refused)(nil); errors.As(err, &ref) {
		return inv, "", ref
	}
	if err != nil {
		return inv, "", &Refused{CodeFailed, fmt.Sprintf("invite %q: %v", inv.Name, err)}
	}
	next := slices.Clone(s.inv)
	next[i].Used = now.UTC()
	if err := s.save(next, now); err != nil {
		// The client exists: a second attempt fails on its name.
		return inv, out, nil
	}
	return next[i], out, nil
}

// save persists next (dropping invites spent more than Keep ago) and
// makes it current.
func (s *Store) save(next []Invite, now time.Time) error {
	next = slices.DeleteFunc(next, func(i Invite) bool {
		return i.StateAt(now) != Pending && now.Sub(i.Expires) > Keep
	})
	b, err := json.MarshalIndent(storeFile{Version: 1, Invites: next}, "", "  ")
	if err != nil {
		return err
	}
	if err := statefile.WriteAtomic(s.path, append(b, '\n')); err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	s.inv = next
	return nil
}
