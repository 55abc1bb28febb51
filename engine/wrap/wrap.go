// Package wrap implements OpenVPN's control-channel wrapping: none,
// tls-auth (HMAC), tls-crypt (AES-256-CTR + HMAC-SHA256 SIV) and
// tls-crypt-v2 (tls-crypt with a per-client key whose server-wrapped copy
// rides on the first packets), together with the replay protection that
// tls-auth and tls-crypt carry in their packet id and timestamp.
//
// A Wrapper is used by one goroutine (the engine's loop); it is not safe for
// concurrent use. Wrap and Unwrap allocate nothing in steady state: they
// append to the caller's dst and decrypt into a buffer the Wrapper owns.
package wrap

import (
	"errors"
	"fmt"
	"time"

	"github.com/ovpnd/ovpnd/engine/wire"
)

// Wrapper protects control-channel packets.
type Wrapper interface {
	// Wrap appends the wire form of p to dst. For tls-auth and tls-crypt
	// every call takes the next replay id, so a retransmission of the same
	// ControlPacket goes out with a fresh id, as OpenVPN does. p.Payload
	// must not overlap dst's spare capacity.
	Wrap(dst []byte, p *wire.ControlPacket, now time.Time) ([]byte, error)
	// Unwrap authenticates (in constant time), decrypts, replay-checks and
	// parses one packet. The result's Acks and Payload alias pkt or a
	// buffer inside the Wrapper, valid until the next Unwrap call. It does
	// not record the packet's replay id: see Accept.
	Unwrap(pkt []byte, now time.Time) (wire.ControlPacket, error)
	// Accept records the replay id of the packet the last Unwrap returned,
	// once the caller knows it belongs to the session it talks to. Like
	// OpenVPN, whose replay state lives in the accepted remote session, a
	// packet that authenticates but comes from another session (an old one,
	// or the server's answer to a retransmitted reset) must not move the
	// window: its newer timestamp would make every later packet of the real
	// session look stale. Accept after a failed Unwrap does nothing.
	Accept()
	// Overhead is the number of bytes wrapping adds to a plain packet (for
	// tls-crypt-v2 clients, including the WKc that the first packets carry).
	Overhead() int
}

var (
	// ErrAuth means a packet failed authentication: wrong key, wrong key
	// direction, or tampering.
	ErrAuth = errors.New("packet authentication failed")
	// ErrReplay means a packet's replay id was seen before, is too old for
	// the window, or arrived too long after newer packets.
	ErrReplay = errors.New("replayed or stale packet")
)

// checkOutgoing rejects packets the peer would drop as malformed, so a bug
// shows up at the sender with a clear error.
func checkOutgoing(p *wire.ControlPacket) error {
	if !p.Opcode.IsControl() {
		return fmt.Errorf("wrapping packet: %v is not a control opcode", p.Opcode)
	}
	if p.KeyID > wire.MaxKeyID {
		return fmt.Errorf("wrapping %v: key id %d out of range", p.Opcode, p.KeyID)
	}
	if len(p.Acks) > wire.MaxAcks {
		return fmt.Errorf("wrapping %v: %d acks, at most %d allowed", p.Opcode, len(p.Acks), wire.MaxAcks)
	}
	if p.Opcode == wire.OpAckV1 && (len(p.Acks) == 0 || len(p.Payload) > 0) {
		return fmt.Errorf("wrapping %v: needs acks and no payload", p.Opcode)
	}
	return nil
}

// controlHeader parses the opcode byte of an incoming packet and insists on
// a control opcode.
func controlHeader(pkt []byte) (wire.Opcode, uint8, error) {
	op, keyID, err := wire.ParseHeader(pkt)
	if err != nil {
		return 0, 0, fmt.Errorf("unwrapping: %w", err)
	}
	if !op.IsControl() {
		return 0, 0, fmt.Errorf("unwrapping: %v is not a control opcode", op)
	}
	return op, keyID, nil
}

// packetBuf is the ControlPacket an Unwrap returns plus the ack array it
// points into, so decoding does not allocate.
type packetBuf struct {
	pkt  wire.ControlPacket
	acks [wire.MaxAcks]uint32
}

func (b *packetBuf) reset() *wire.ControlPacket {
	b.pkt.Acks = b.acks[:0]
	return &b.pkt
}

type none struct {
	out packetBuf
}

// NewNone returns the Wrapper for a control channel without tls-auth or
// tls-crypt: packets go out as they are and only TLS protects them.
func NewNone() Wrapper { return &none{} }

func (w *none) Wrap(dst []byte, p *wire.ControlPacket, _ time.Time) ([]byte, error) {
	if err := checkOutgoing(p); err != nil {
		return dst, err
	}
	return p.AppendPlain(dst), nil
}

func (w *none) Unwrap(pkt []byte, _ time.Time) (wire.ControlPacket, error) {
	if _, _, err := controlHeader(pkt); err != nil {
		return wire.ControlPacket{}, err
	}
	p := w.out.reset()
	if err := p.Decode(pkt); err != nil {
		return wire.ControlPacket{}, fmt.Errorf("unwrapping: %w", err)
	}
	return *p, nil
}

func (w *none) Overhead() int { return 0 }

// Accept does nothing: without tls-auth or tls-crypt there is no replay id.
func (w *none) Accept() {}
