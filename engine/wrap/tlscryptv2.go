package wrap

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wire"
)

// tls-crypt-v2 (doc/tls-crypt-v2.txt): the client wraps with tls-crypt under
// its own key Kc and appends the server-wrapped WKc, in clear, to its
// P_CONTROL_HARD_RESET_CLIENT_V3 and P_CONTROL_WKC_V1 packets. The server
// takes WKc off the end (its last two bytes are its length), unwraps Kc with
// the server key and from then on speaks tls-crypt with Kc.

// EarlyNegStart is the first replay id - 1 of a tls-crypt-v2 client
// (EARLY_NEG_START in ssl_pkt.h). Ids with 0x0f in the top byte tell an
// OpenVPN 2.6+ server that the client understands early-negotiation TLVs in
// the server's reset and can resend WKc in P_CONTROL_WKC_V1, so the server
// can stay stateless until the third packet.
const EarlyNegStart = 0x0f000000

// Early-negotiation TLV constants (ssl_pkt.h).
const (
	TLVEarlyNegFlags      = 0x0001
	EarlyNegFlagResendWKc = 0x0001
)

type tlsCryptV2Client struct {
	*tlsCrypt
	wkc []byte
}

// NewTLSCryptV2Client returns the tls-crypt-v2 client Wrapper. Its replay
// ids start after EarlyNegStart. Overhead includes WKc, which only
// P_CONTROL_HARD_RESET_CLIENT_V3 and P_CONTROL_WKC_V1 packets carry.
func NewTLSCryptV2Client(ck *statickey.TLSCryptV2ClientKey) (Wrapper, error) {
	if ck == nil {
		return nil, fmt.Errorf("tls-crypt-v2: no client key")
	}
	if len(ck.WKc) < statickey.MinWKcLen || len(ck.WKc) > statickey.MaxWKcLen ||
		int(binary.BigEndian.Uint16(ck.WKc[len(ck.WKc)-2:])) != len(ck.WKc) {
		return nil, fmt.Errorf("tls-crypt-v2: malformed wrapped client key (%d bytes)", len(ck.WKc))
	}
	tc, err := newTLSCrypt(&ck.Key, true, "tls-crypt-v2")
	if err != nil {
		return nil, err
	}
	tc.sender.id = EarlyNegStart
	return &tlsCryptV2Client{tlsCrypt: tc, wkc: append([]byte(nil), ck.WKc...)}, nil
}

func carriesWKc(op wire.Opcode) bool {
	return op == wire.OpHardResetClientV3 || op == wire.OpControlWKCV1
}

func (w *tlsCryptV2Client) Overhead() int { return TLSCryptOverhead + len(w.wkc) }

func (w *tlsCryptV2Client) Wrap(dst []byte, p *wire.ControlPacket, now time.Time) ([]byte, error) {
	dst, err := w.tlsCrypt.Wrap(dst, p, now)
	if err != nil {
		return dst, err
	}
	if carriesWKc(p.Opcode) {
		dst = append(dst, w.wkc...)
	}
	return dst, nil
}

func (w *tlsCryptV2Client) Unwrap(pkt []byte, now time.Time) (wire.ControlPacket, error) {
	if op, _, err := wire.ParseHeader(pkt); err == nil && carriesWKc(op) {
		return wire.ControlPacket{}, fmt.Errorf("tls-crypt-v2: server sent client-only opcode %v", op)
	}
	return w.tlsCrypt.Unwrap(pkt, now)
}

// ParseEarlyNegTLVs reads the early-negotiation TLVs (u16 type, u16 length,
// value) that an OpenVPN 2.6+ server puts in the payload of its
// P_CONTROL_HARD_RESET_SERVER_V2 to a tls-crypt-v2 client that signalled
// support. resendWKc means the client's next control packet must be
// P_CONTROL_WKC_V1, because the server has kept no state. Unknown types are
// skipped, as OpenVPN does.
func ParseEarlyNegTLVs(payload []byte) (resendWKc bool, err error) {
	for b := payload; len(b) > 0; {
		if len(b) < 4 {
			return false, fmt.Errorf("parsing early-negotiation TLVs: %d stray bytes", len(b))
		}
		typ := binary.BigEndian.Uint16(b)
		n := int(binary.BigEndian.Uint16(b[2:]))
		b = b[4:]
		if len(b) < n {
			return false, fmt.Errorf("parsing early-negotiation TLVs: type %#04x wants %d bytes, %d left", typ, n, len(b))
		}
		if typ == TLVEarlyNegFlags {
			if n != 2 {
				return false, fmt.Errorf("parsing early-negotiation TLVs: flags TLV is %d bytes, want 2", n)
			}
			if binary.BigEndian.Uint16(b)&EarlyNegFlagResendWKc != 0 {
				resendWKc = true
			}
		}
		b = b[n:]
	}
	return resendWKc, nil
}

// AppendEarlyNegTLVs appends the flags TLV a server puts in its reset; used
// by tests and a future server side.
func AppendEarlyNegTLVs(dst []byte, resendWKc bool) []byte {
	var flags uint16
	if resendWKc {
		flags |= EarlyNegFlagResendWKc
	}
	dst = binary.BigEndian.AppendUint16(dst, TLVEarlyNegFlags)
	dst = binary.BigEndian.AppendUint16(dst, 2)
	return binary.BigEndian.AppendUint16(dst, flags)
}

// TLSCryptV2Server is the server side of tls-crypt-v2 for one client: it
// learns Kc from the client's first P_CONTROL_HARD_RESET_CLIENT_V3 (or a
// P_CONTROL_WKC_V1) and is then a tls-crypt server under Kc. It exists for
// tests and golden checks of the client; it does not check the metadata
// (age, verify script) as an OpenVPN server can.
type TLSCryptV2Server struct {
	sk       *statickey.TLSCryptV2ServerKey
	tc       *tlsCrypt
	metadata []byte
}

// NewTLSCryptV2Server returns a server-side Wrapper awaiting a client key.
func NewTLSCryptV2Server(sk *statickey.TLSCryptV2ServerKey) (*TLSCryptV2Server, error) {
	if sk == nil {
		return nil, fmt.Errorf("tls-crypt-v2 server: no server key")
	}
	return &TLSCryptV2Server{sk: sk}, nil
}

// Metadata returns the metadata of the client's WKc, or nil before the
// client key is known.
func (s *TLSCryptV2Server) Metadata() []byte { return s.metadata }

// Overhead is the tls-crypt overhead of the server's packets.
func (s *TLSCryptV2Server) Overhead() int { return TLSCryptOverhead }

// Wrap wraps a server packet with tls-crypt under the client's Kc; it fails
// until Unwrap has accepted a packet carrying WKc.
func (s *TLSCryptV2Server) Wrap(dst []byte, p *wire.ControlPacket, now time.Time) ([]byte, error) {
	if s.tc == nil {
		return dst, fmt.Errorf("tls-crypt-v2 server: no client key yet")
	}
	return s.tc.Wrap(dst, p, now)
}

// Unwrap accepts a client packet. Packets with WKc appended have it removed
// first; the first one's WKc must unwrap under the server key and the
// packet must authenticate under the resulting Kc before the key is adopted.
// Later copies of WKc are ignored, as OpenVPN does.
func (s *TLSCryptV2Server) Unwrap(pkt []byte, now time.Time) (wire.ControlPacket, error) {
	op, _, err := controlHeader(pkt)
	if err != nil {
		return wire.ControlPacket{}, fmt.Errorf("tls-crypt-v2 server: %w", err)
	}
	if !carriesWKc(op) {
		if s.tc == nil {
			return wire.ControlPacket{}, fmt.Errorf("tls-crypt-v2 server: %v before the client key", op)
		}
		return s.tc.Unwrap(pkt, now)
	}
	if len(pkt) < 1+2 {
		return wire.ControlPacket{}, fmt.Errorf("tls-crypt-v2 server: %v too short for WKc", op)
	}
	n := int(binary.BigEndian.Uint16(pkt[len(pkt)-2:]))
	if n < statickey.MinWKcLen || n > len(pkt)-1 {
		return wire.ControlPacket{}, fmt.Errorf("tls-crypt-v2 server: WKc length %d invalid in %d-byte %v", n, len(pkt), op)
	}
	inner, wkc := pkt[:len(pkt)-n], pkt[len(pkt)-n:]
	if s.tc != nil {
		return s.tc.Unwrap(inner, now)
	}
	kc, md, err := s.sk.UnwrapClientKey(wkc)
	if err != nil {
		return wire.ControlPacket{}, fmt.Errorf("tls-crypt-v2 server: %w", err)
	}
	tc, err := newTLSCrypt(&kc, false, "tls-crypt-v2 server")
	if err != nil {
		return wire.ControlPacket{}, err
	}
	p, err := tc.Unwrap(inner, now)
	if err != nil {
		return wire.ControlPacket{}, err
	}
	s.tc, s.metadata = tc, md
	return p, nil
}

// Accept records the replay id of the packet the last Unwrap returned.
func (s *TLSCryptV2Server) Accept() {
	if s.tc != nil {
		s.tc.Accept()
	}
}

var (
	_ Wrapper = (*none)(nil)
	_ Wrapper = (*tlsAuth)(nil)
	_ Wrapper = (*tlsCrypt)(nil)
	_ Wrapper = (*tlsCryptV2Client)(nil)
	_ Wrapper = (*TLSCryptV2Server)(nil)
)
