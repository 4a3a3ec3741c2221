// Package relay carries WireGuard datagrams over TLS + WebSocket (TCP 443)
// for peers whose networks let only HTTPS out.
//
// The relay (Server, `vgate relay`) forwards opaque datagrams between the
// public keys it accepts, one datagram per binary WebSocket message. It
// sees only WireGuard ciphertext: the WireGuard sessions run end to end
// through it, and it holds no key that could decrypt them.
//
// A connecting party proves that it holds the private key of the public key
// it registers (proto.go): the relay sends its static X25519 public key and
// a fresh nonce; the party answers with its public key and a BLAKE2s MAC over
// the nonce and both keys, keyed by the X25519 of its private key and the
// relay's public key. The relay computes the same DH from its side. TLS —
// with the relay's certificate pinned by SHA-256 when it is self-signed —
// authenticates the relay and its key to the party.
//
// Client is a gateway's connection to one relay (reconnecting, bounded
// queues), and Bind (bind.go) is the transport the tunnel devices use: a
// conn.Bind that sends over the shared UDP port or over the relay, switching
// to the relay after two unanswered handshake initiations over UDP and back
// when a handshake over UDP is answered again.
package relay
