package bfd

import (
	"bytes"
	"errors"
	"testing"
)

// frrUp is a control packet as FRR's bfdd sends it once Up (captured in
// the lab): state Up, multiplier 5, 100 ms both ways, echo 50 ms.
var frrUp = []byte{0x20, 0xc0, 0x05, 0x18, 0x5c, 0x2e, 0x71, 0x0c, 0x00, 0x00, 0x00, 0x07,
	0x00, 0x01, 0x86, 0xa0, 0x00, 0x01, 0x86, 0xa0, 0x00, 0x00, 0xc3, 0x50}

func TestParse(t *testing.T) {
	p, err := Parse(frrUp)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{State: Up, DetectMult: 5, MyDisc: 0x5c2e710c, YourDisc: 7, DesiredMinTx: 100000, RequiredMinRx: 100000, RequiredMinEchoRx: 50000}
	if p != want {
		t.Fatalf("got %+v, want %+v", p, want)
	}
	if got := p.Append(nil); !bytes.Equal(got, frrUp) {
		t.Fatalf("re-encoded % x, want % x", got, frrUp)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(frrUp)) }
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"short", frrUp[:23], ErrShort},
		{"version 0", mod(func(b []byte) []byte { b[0] &= 0x1f; return b }), ErrVersion},
		{"version 2", mod(func(b []byte) []byte { b[0] = 0x40; return b }), ErrVersion},
		{"length beyond the payload", mod(func(b []byte) []byte { b[3] = 25; return b }), ErrLength},
		{"length below 24", mod(func(b []byte) []byte { b[3] = 23; return b }), ErrLength},
		{"auth bit", mod(func(b []byte) []byte { b[1] |= flagAuth; return b }), ErrAuth},
		{"multipoint", mod(func(b []byte) []byte { b[1] |= flagMultipoint; return b }), ErrMultipoint},
		{"multiplier 0", mod(func(b []byte) []byte { b[2] = 0; return b }), ErrMultiplier},
		{"my disc 0", mod(func(b []byte) []byte { copy(b[4:8], []byte{0, 0, 0, 0}); return b }), ErrMyDisc},
		{"your disc 0 while up", mod(func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); return b }), ErrYourDisc},
		{"your disc 0 while init", mod(func(b []byte) []byte { b[1] = 0x80; copy(b[8:12], []byte{0, 0, 0, 0}); return b }), ErrYourDisc},
	} {
		if _, err := Parse(c.b); !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
	// Down with your discriminator 0 is how a session starts; trailing
	// bytes past Length are ignored.
	down := mod(func(b []byte) []byte {
		b[1] = 0x40 | flagPoll
		copy(b[8:12], []byte{0, 0, 0, 0})
		return append(b, 1, 2, 3)
	})
	p, err = Parse(down)
	if err != nil || p.State != Down || !p.Poll || p.YourDisc != 0 {
		t.Fatalf("down packet: %+v, %v", p, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(frrUp)
	f.Add(Packet{State: Down, DetectMult: 3, MyDisc: 1, DesiredMinTx: 1000000, RequiredMinRx: 1000000, Poll: true}.Append(nil))
	f.Add(Packet{State: AdminDown, Diag: DiagAdminDown, DetectMult: 5, MyDisc: 9, YourDisc: 4, Final: true}.Append(nil))
	f.Add([]byte{0x20})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		// What parses re-encodes to the same first 24 bytes (less the
		// length byte, always 24 out) and parses to the same packet.
		out := p.Append(nil)
		if len(out) != PacketLen {
			t.Fatalf("encoded %d bytes", len(out))
		}
		q, err := Parse(out)
		if err != nil || q != p {
			t.Fatalf("round trip: %+v -> %+v, %v", p, q, err)
		}
		in := bytes.Clone(b[:PacketLen])
		in[3] = PacketLen
		if !bytes.Equal(in, out) {
			t.Fatalf("re-encoded % x, was % x", out, in)
		}
	})
}
