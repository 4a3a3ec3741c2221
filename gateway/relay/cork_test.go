package relay

import (
	"bytes"
	"errors"
	"testing"
)

// writes records each Write call.
type writes struct {
	calls [][]byte
	err   error
}

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, append([]byte(nil), p...))
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// Corked writes are held and go out with the next uncorked one, in one
// call; beyond corkMax they go out at once; uncorked, each write is one call.
func TestCorker(t *testing.T) {
	var k corker
	w := &writes{}
	k.write(w, []byte("a"))
	k.cork(true)
	k.write(w, []byte("b"))
	k.write(w, []byte("c"))
	if len(w.calls) != 1 {
		t.Fatalf("%d writes while corked, want only the uncorked one before", len(w.calls))
	}
	k.cork(false)
	if n, err := k.write(w, []byte("d")); n != 1 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	if len(w.calls) != 2 || string(w.calls[1]) != "bcd" {
		t.Fatalf("writes %q, want a then bcd", w.calls)
	}

	// Over corkMax: written at once, with what was held.
	k.cork(true)
	big := bytes.Repeat([]byte{'x'}, corkMax)
	k.write(w, []byte("e"))
	k.write(w, big)
	if len(w.calls) != 3 || len(w.calls[2]) != corkMax+1 {
		t.Fatalf("a write beyond corkMax: %d writes, last of %d bytes", len(w.calls), len(w.calls[len(w.calls)-1]))
	}

	// An error surfaces at the write that writes.
	k.write(w, []byte("f"))
	w.err = errors.New("broken")
	k.cork(false)
	if _, err := k.write(w, []byte("g")); err == nil {
		t.Fatal("the error of the write was lost")
	}
	w.err = nil
	if k.write(w, []byte("h")); string(w.calls[len(w.calls)-1]) != "h" {
		t.Fatalf("after an error the held bytes were written again: %q", w.calls[len(w.calls)-1])
	}
}
