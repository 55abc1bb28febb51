package datachannel

import "bytes"

// PingPayload is OpenVPN's keepalive: a data packet whose whole payload is
// these 16 bytes (ping.c ping_string). Receivers drop it after noting the
// activity; it never reaches the tun device.
var PingPayload = [16]byte{
	0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb,
	0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48,
}

// IsPing reports whether a decrypted payload is an OpenVPN ping.
func IsPing(p []byte) bool {
	return len(p) == len(PingPayload) && bytes.Equal(p, PingPayload[:])
}

// OCCMagic starts every OCC (options consistency check) message carried as a
// data payload (occ.c occ_magic). The op byte follows it.
var OCCMagic = [16]byte{
	0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81,
	0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c,
}

// OCC ops (occ.h).
const (
	OCCRequest        uint8 = 0 // ask the peer for its options string
	OCCReply          uint8 = 1 // body: NUL-terminated options string
	OCCMTULoadRequest uint8 = 2 // body: u16 size the peer should send
	OCCMTULoad        uint8 = 3 // padding of the requested size
	OCCMTURequest     uint8 = 4 // ask for the largest packet seen
	OCCMTUReply       uint8 = 5 // body: u16 largest received, u16 largest sent
	OCCExit           uint8 = 6 // the peer is shutting down (explicit-exit-notify)
)

// ParseOCC recognizes an OCC message in a decrypted payload. ok is true when
// p starts with OCCMagic and carries an op byte; unknown ops are reported
// too so the caller can log and ignore them. body aliases p.
func ParseOCC(p []byte) (op uint8, body []byte, ok bool) {
	if len(p) <= len(OCCMagic) || !bytes.Equal(p[:len(OCCMagic)], OCCMagic[:]) {
		return 0, nil, false
	}
	return p[len(OCCMagic)], p[len(OCCMagic)+1:], true
}

// AppendOCCExit appends the OCC_EXIT payload (magic and op 6, 17 bytes) that
// explicit-exit-notify sends when cc-exit was not negotiated.
func AppendOCCExit(dst []byte) []byte {
	dst = append(dst, OCCMagic[:]...)
	return append(dst, OCCExit)
}
