// Package bfd is single-hop Bidirectional Forwarding Detection (RFC 5880,
// RFC 5881) in asynchronous mode, without echo and without
// authentication: a pure state machine (Session) and the UDP sockets that
// drive it (Runner). It runs through a BGP peering's tunnel to the
// neighbour's tunnel address, so that a router that is not vgate learns a
// dead tunnel as fast as vgate does.
package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// State is a session state (RFC 5880 4.1).
type State uint8

const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "admin_down"
	case Down:
		return "down"
	case Init:
		return "init"
	case Up:
		return "up"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Diag is a diagnostic code (RFC 5880 4.1): why a session last left Up.
type Diag uint8

const (
	DiagNone             Diag = 0
	DiagDetectionExpired Diag = 1
	DiagEchoFailed       Diag = 2
	DiagNeighborDown     Diag = 3
	DiagForwardingReset  Diag = 4
	DiagPathDown         Diag = 5
	DiagConcatPathDown   Diag = 6
	DiagAdminDown        Diag = 7
	DiagRevConcatPath    Diag = 8
)

var diagNames = [...]string{"none", "control_detection_time_expired", "echo_function_failed",
	"neighbor_signaled_session_down", "forwarding_plane_reset", "path_down",
	"concatenated_path_down", "administratively_down", "reverse_concatenated_path_down"}

func (d Diag) String() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return fmt.Sprintf("diag_%d", uint8(d))
}

// Packet is a BFD control packet without authentication. Intervals are
// in microseconds, as on the wire.
type Packet struct {
	Diag              Diag
	State             State
	Poll, Final       bool
	CPI               bool // control plane independent
	Demand            bool
	DetectMult        uint8
	MyDisc, YourDisc  uint32
	DesiredMinTx      uint32
	RequiredMinRx     uint32
	RequiredMinEchoRx uint32
}

// PacketLen is the length of a control packet without authentication.
const PacketLen = 24

const (
	flagPoll       = 0x20
	flagFinal      = 0x10
	flagCPI        = 0x08
	flagAuth       = 0x04
	flagDemand     = 0x02
	flagMultipoint = 0x01
)

// Parse errors; each is a reason a received packet is discarded (RFC 5880
// 6.8.6), counted by the runner.
var (
	ErrShort      = errors.New("bfd: packet shorter than 24 bytes")
	ErrVersion    = errors.New("bfd: version is not 1")
	ErrLength     = errors.New("bfd: length field does not match the packet")
	ErrAuth       = errors.New("bfd: authentication present (not supported)")
	ErrMultipoint = errors.New("bfd: multipoint bit set")
	ErrMultiplier = errors.New("bfd: detect multiplier is zero")
	ErrMyDisc     = errors.New("bfd: my discriminator is zero")
	ErrYourDisc   = errors.New("bfd: your discriminator is zero outside down and admin down")
)

// Parse decodes a control packet with RFC 5880 6.8.6's checks that need
// no session. b is the UDP payload; anything after Length is ignored.
func Parse(b []byte) (Packet, error) {
	if len(b) < PacketLen {
		return Packet{}, ErrShort
	}
	if b[0]>>5 != 1 {
		return Packet{}, ErrVersion
	}
	flags := b[1] & 0x3f
	if flags&flagAuth != 0 {
		return Packet{}, ErrAuth
	}
	if n := int(b[3]); n < PacketLen || n > len(b) {
		return Packet{}, ErrLength
	}
	if flags&flagMultipoint != 0 {
		return Packet{}, ErrMultipoint
	}
	p := Packet{
		Diag:              Diag(b[0] & 0x1f),
		State:             State(b[1] >> 6),
		Poll:              flags&flagPoll != 0,
		Final:             flags&flagFinal != 0,
		CPI:               flags&flagCPI != 0,
		Demand:            flags&flagDemand != 0,
		DetectMult:        b[2],
		MyDisc:            binary.BigEndian.Uint32(b[4:]),
		YourDisc:          binary.BigEndian.Uint32(b[8:]),
		DesiredMinTx:      binary.BigEndian.Uint32(b[12:]),
		RequiredMinRx:     binary.BigEndian.Uint32(b[16:]),
		RequiredMinEchoRx: binary.BigEndian.Uint32(b[20:]),
	}
	switch {
	case p.DetectMult == 0:
		return Packet{}, ErrMultiplier
	case p.MyDisc == 0:
		return Packet{}, ErrMyDisc
	case p.YourDisc == 0 && p.State != Down && p.State != AdminDown:
		return Packet{}, ErrYourDisc
	}
	return p, nil
}

// Append encodes p after b (version 1, no authentication).
func (p Packet) Append(b []byte) []byte {
	var flags byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{p.Poll, flagPoll}, {p.Final, flagFinal}, {p.CPI, flagCPI}, {p.Demand, flagDemand}} {
		if f.on {
			flags |= f.bit
		}
	}
	b = append(b, 1<<5|byte(p.Diag&0x1f), byte(p.State&3)<<6|flags, p.DetectMult, PacketLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDisc)
	b = binary.BigEndian.AppendUint32(b, p.YourDisc)
	b = binary.BigEndian.AppendUint32(b, p.DesiredMinTx)
	b = binary.BigEndian.AppendUint32(b, p.RequiredMinRx)
	return binary.BigEndian.AppendUint32(b, p.RequiredMinEchoRx)
}
