// Package wire encodes and decodes OpenVPN 2.x packets: the opcode/key-id
// byte, the control and ACK packet layouts (unwrapped, i.e. before tls-auth
// or tls-crypt is applied), the P_DATA_V2 header and the TCP length prefix.
//
// Decoders never panic and never read past their input; results alias the
// input where documented so the per-packet path does not allocate.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Opcode is the high 5 bits of a packet's first byte.
type Opcode uint8

// Opcodes of OpenVPN 2.4+ (ssl_pkt.h). Opcodes 1 and 2 belong to key-method
// 1, which OpenVPN 2.5 removed; ParseHeader rejects them.
const (
	OpSoftResetV1       Opcode = 3  // P_CONTROL_SOFT_RESET_V1: renegotiate with a new key id
	OpControlV1         Opcode = 4  // P_CONTROL_V1: carries TLS records
	OpAckV1             Opcode = 5  // P_ACK_V1: acknowledgements only
	OpDataV1            Opcode = 6  // P_DATA_V1: data packet, 1-byte header
	OpHardResetClientV2 Opcode = 7  // P_CONTROL_HARD_RESET_CLIENT_V2
	OpHardResetServerV2 Opcode = 8  // P_CONTROL_HARD_RESET_SERVER_V2
	OpDataV2            Opcode = 9  // P_DATA_V2: data packet with 24-bit peer id
	OpHardResetClientV3 Opcode = 10 // P_CONTROL_HARD_RESET_CLIENT_V3: tls-crypt-v2 reset, WKc appended
	OpControlWKCV1      Opcode = 11 // P_CONTROL_WKC_V1: P_CONTROL_V1 with WKc appended
)

const (
	opShift   = 3
	keyIDMask = 0x07

	minOpcode = OpSoftResetV1
	maxOpcode = OpControlWKCV1
)

// MaxKeyID is the largest key id (3 bits).
const MaxKeyID = keyIDMask

var opNames = [...]string{
	OpSoftResetV1:       "P_CONTROL_SOFT_RESET_V1",
	OpControlV1:         "P_CONTROL_V1",
	OpAckV1:             "P_ACK_V1",
	OpDataV1:            "P_DATA_V1",
	OpHardResetClientV2: "P_CONTROL_HARD_RESET_CLIENT_V2",
	OpHardResetServerV2: "P_CONTROL_HARD_RESET_SERVER_V2",
	OpDataV2:            "P_DATA_V2",
	OpHardResetClientV3: "P_CONTROL_HARD_RESET_CLIENT_V3",
	OpControlWKCV1:      "P_CONTROL_WKC_V1",
}

// String returns OpenVPN's name for op.
func (op Opcode) String() string {
	if op >= minOpcode && op <= maxOpcode {
		return opNames[op]
	}
	return fmt.Sprintf("P_UNKNOWN(%d)", uint8(op))
}

// Valid reports whether op is one this package understands (3..11).
func (op Opcode) Valid() bool { return op >= minOpcode && op <= maxOpcode }

// IsControl reports whether op is a control-channel opcode (everything
// that goes through the reliability layer or carries acks).
func (op Opcode) IsControl() bool { return op.Valid() && !op.IsData() }

// IsData reports whether op is a data-channel opcode.
func (op Opcode) IsData() bool { return op == OpDataV1 || op == OpDataV2 }

// Header returns the first byte of a packet: opcode<<3 | keyID.
func Header(op Opcode, keyID uint8) byte { return byte(op)<<opShift | keyID&keyIDMask }

// ErrShort means the input ended before a required field.
var ErrShort = errors.New("packet truncated")

// ParseHeader decodes the first byte of a packet.
func ParseHeader(b []byte) (op Opcode, keyID uint8, err error) {
	if len(b) < 1 {
		return 0, 0, fmt.Errorf("parsing header: %w", ErrShort)
	}
	op = Opcode(b[0] >> opShift)
	if !op.Valid() {
		return 0, 0, fmt.Errorf("parsing header: unknown opcode %d", uint8(op))
	}
	return op, b[0] & keyIDMask, nil
}

// SessionID is the random 8-byte id each side picks for a TLS session.
type SessionID [8]byte

// MaxAcks is the largest ack count OpenVPN puts in one packet
// (RELIABLE_ACK_SIZE); larger counts are rejected as malformed.
const MaxAcks = 8

// ControlPacket is an unwrapped control-channel packet:
//
//	op|key_id (1) | session_id (8) | ack_count (1) | acks (4 each, BE)
//	| remote session_id (8, only if ack_count > 0)
//	| message_id (4 BE, absent in P_ACK_V1) | payload
type ControlPacket struct {
	Opcode          Opcode
	KeyID           uint8
	SessionID       SessionID
	Acks            []uint32
	RemoteSessionID SessionID
	MessageID       uint32
	Payload         []byte
}

// HasMessageID reports whether packets with this opcode carry a message id.
func (op Opcode) HasMessageID() bool { return op.IsControl() && op != OpAckV1 }

// BodyLen returns the encoded length of the body (see AppendBody).
func (p *ControlPacket) BodyLen() int {
	n := 1 + 4*len(p.Acks)
	if len(p.Acks) > 0 {
		n += 8
	}
	if p.Opcode.HasMessageID() {
		n += 4
	}
	return n + len(p.Payload)
}

// AppendBody appends everything after op|session_id: ack count, acks, remote
// session id, message id and payload. This is the part tls-crypt encrypts.
// It writes len(Acks) as given; callers must keep it at most MaxAcks, or the
// peer (and ParseControlBody) rejects the packet.
func (p *ControlPacket) AppendBody(dst []byte) []byte {
	dst = append(dst, byte(len(p.Acks)))
	for _, a := range p.Acks {
		dst = binary.BigEndian.AppendUint32(dst, a)
	}
	if len(p.Acks) > 0 {
		dst = append(dst, p.RemoteSessionID[:]...)
	}
	if p.Opcode.HasMessageID() {
		dst = binary.BigEndian.AppendUint32(dst, p.MessageID)
	}
	return append(dst, p.Payload...)
}

// AppendPlain appends the whole unwrapped packet (no tls-auth/tls-crypt).
func (p *ControlPacket) AppendPlain(dst []byte) []byte {
	dst = append(dst, Header(p.Opcode, p.KeyID))
	dst = append(dst, p.SessionID[:]...)
	return p.AppendBody(dst)
}

// ParseControlPlain decodes an unwrapped control packet. Payload aliases b;
// Acks is newly allocated when the packet has acks (use Decode to reuse a
// slice instead).
func ParseControlPlain(b []byte) (ControlPacket, error) {
	var p ControlPacket
	err := p.Decode(b)
	return p, err
}

// ParseControlBody decodes the body of a control packet whose opcode, key
// id and session id were read elsewhere (tls-auth and tls-crypt move them).
// Payload aliases body; Acks is newly allocated when there are acks.
func ParseControlBody(op Opcode, keyID uint8, sid SessionID, body []byte) (ControlPacket, error) {
	var p ControlPacket
	err := p.DecodeBody(op, keyID, sid, body)
	return p, err
}

// Decode is ParseControlPlain into p, reusing p.Acks's backing array, so a
// caller that keeps one ControlPacket with len(Acks) capacity MaxAcks decodes
// without allocating. On error p is left in an unspecified state.
func (p *ControlPacket) Decode(b []byte) error {
	op, keyID, err := ParseHeader(b)
	if err != nil {
		return err
	}
	if len(b) < 1+len(SessionID{}) {
		return fmt.Errorf("parsing %v: session id: %w", op, ErrShort)
	}
	return p.DecodeBody(op, keyID, SessionID(b[1:9]), b[9:])
}

// DecodeBody is ParseControlBody into p, reusing p.Acks's backing array.
func (p *ControlPacket) DecodeBody(op Opcode, keyID uint8, sid SessionID, body []byte) error {
	if !op.IsControl() {
		return fmt.Errorf("parsing control packet: %v is not a control opcode", op)
	}
	if keyID > MaxKeyID {
		return fmt.Errorf("parsing %v: key id %d out of range", op, keyID)
	}
	p.Opcode, p.KeyID, p.SessionID = op, keyID, sid
	p.RemoteSessionID, p.MessageID, p.Payload = SessionID{}, 0, nil
	if len(body) < 1 {
		return fmt.Errorf("parsing %v: ack count: %w", op, ErrShort)
	}
	n := int(body[0])
	body = body[1:]
	if n > MaxAcks {
		return fmt.Errorf("parsing %v: %d acks, at most %d allowed", op, n, MaxAcks)
	}
	if op == OpAckV1 && n == 0 {
		return fmt.Errorf("parsing %v: no acks", op)
	}
	if len(body) < 4*n {
		return fmt.Errorf("parsing %v: acks: %w", op, ErrShort)
	}
	p.Acks = p.Acks[:0]
	for i := 0; i < n; i++ {
		p.Acks = append(p.Acks, binary.BigEndian.Uint32(body[4*i:]))
	}
	body = body[4*n:]
	if n > 0 {
		if len(body) < 8 {
			return fmt.Errorf("parsing %v: remote session id: %w", op, ErrShort)
		}
		p.RemoteSessionID = SessionID(body[:8])
		body = body[8:]
	}
	if op.HasMessageID() {
		if len(body) < 4 {
			return fmt.Errorf("parsing %v: message id: %w", op, ErrShort)
		}
		p.MessageID = binary.BigEndian.Uint32(body)
		body = body[4:]
	} else if len(body) > 0 {
		// OpenVPN never sends data after the acks of a P_ACK_V1; treat it as
		// corruption rather than guess at its meaning.
		return fmt.Errorf("parsing %v: %d bytes of trailing data", op, len(body))
	}
	if len(body) > 0 {
		p.Payload = body
	}
	return nil
}

// NoPeerID is the P_DATA_V2 peer id meaning "none assigned".
const NoPeerID = 0xFFFFFF

// DataV2HeaderLen is the length of the P_DATA_V2 header.
const DataV2HeaderLen = 4

// DataV2Header returns the 4-byte P_DATA_V2 header: opcode|key id, then the
// 24-bit peer id big-endian. Bits of keyID above 3 and of peerID above 24
// are dropped.
func DataV2Header(keyID uint8, peerID uint32) [4]byte {
	return [4]byte{Header(OpDataV2, keyID), byte(peerID >> 16), byte(peerID >> 8), byte(peerID)}
}

// ParseDataV2Header decodes a P_DATA_V2 header.
func ParseDataV2Header(b []byte) (keyID uint8, peerID uint32, err error) {
	if len(b) < DataV2HeaderLen {
		return 0, 0, fmt.Errorf("parsing P_DATA_V2 header: %w", ErrShort)
	}
	op, keyID, err := ParseHeader(b)
	if err != nil {
		return 0, 0, err
	}
	if op != OpDataV2 {
		return 0, 0, fmt.Errorf("parsing P_DATA_V2 header: opcode is %v", op)
	}
	return keyID, uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}
