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
// the nonce, both keys, the TLS session's exporter value and the SHA-256 of
// the relay's certificate, keyed by the X25519 of its private key and the
// relay's public key. The relay computes the same from its side. TLS — with
// the relay's certificate pinned by SHA-256 when it is self-signed —
// authenticates the relay and its key to the party; the binding keeps a
// relay in the middle from replaying a party's proof at another relay.
//
// Everything the listener does before a proof is bounded (listener.go):
// connections counted from accept, per source and in all, a proof
// deadline, timeouts on every step; after it, per-connection queues
// bounded in datagrams and bytes, a rate per key, a write timeout and an
// idle timeout (server.go, pool.go).
//
// Client is a gateway's connection to one relay (reconnecting, bounded
// queues), and Bind (bind.go) is the transport the tunnel devices use: a
// conn.Bind that sends over the shared UDP port or over the relay. Its
// first handshake goes both ways and the tunnel takes the path that answers
// first; once UDP has answered, it switches to the relay after two
// unanswered handshake initiations over UDP, and back when a handshake over
// UDP is answered again.
package relay
