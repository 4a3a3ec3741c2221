package plan

import (
	"errors"
	"net"
	"testing"
)

func TestProblemSame(t *testing.T) {
	sentinel := errors.New("x")
	dns := func(notFound bool) error {
		return &net.DNSError{Err: "no such host", Name: "hq.example", IsNotFound: notFound}
	}
	for _, tt := range []struct {
		name string
		a, b Problem
		want bool
	}{
		{"same error value", Problem{"a", "h:1", sentinel}, Problem{"a", "h:1", sentinel}, true},
		{"other peering", Problem{"a", "h:1", sentinel}, Problem{"b", "h:1", sentinel}, false},
		{"other endpoint", Problem{"a", "h:1", sentinel}, Problem{"a", "h:2", sentinel}, false},
		{"equal text, other errors", Problem{"a", "h:1", errors.New("x")}, Problem{"a", "h:1", errors.New("x")}, false},
		{"DNS answer of the same kind", Problem{"a", "h:1", dns(true)}, Problem{"a", "h:1", dns(true)}, true},
		{"DNS answer of another kind", Problem{"a", "h:1", dns(true)}, Problem{"a", "h:1", dns(false)}, false},
	} {
		if got := tt.a.Same(tt.b); got != tt.want {
			t.Errorf("%s: Same = %v, want %v", tt.name, got, tt.want)
		}
	}
}
