package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/fragment"
	"github.com/ovpnd/ovpnd/engine/kdf"
)

// Key-method 2 record sizes and limits (ssl.c, ssl_common.h).
const (
	keyMethod2      = 2
	keyMethodMask   = 0x0f
	maxOptionsLen   = 512 // TLS_OPTIONS_LEN
	maxUserPassLen  = 128 // USER_PASS_LEN
	maxPeerInfoLen  = 10000
	randomHalfLen   = kdf.RandomSize
	clientSourceLen = kdf.PreMasterSize + 2*kdf.RandomSize
)

// IV_PROTO bits we announce (ssl.h), what OpenVPN 2.7 announces for what ovpnd implements:
// DATA_V2, REQUEST_PUSH, TLS_KEY_EXPORT, AUTH_PENDING_KW, CC_EXIT_NOTIFY, AUTH_FAIL_TEMP,
// DYN_TLS_CRYPT, DATA_EPOCH, PUSH_UPDATE and DNS_OPTION_V2 (the `dns` option as 2.6.7+ servers push it; the
// pre-2.6.7 bit 6 is not sent, as OpenVPN 2.7 no longer sends it). NCP_P2P is for
// peer-to-peer mode only.
const (
	ivProtoDataV2        = 1 << 1
	ivProtoRequestPush   = 1 << 2
	ivProtoTLSKeyExport  = 1 << 3
	ivProtoAuthPendingKW = 1 << 4
	ivProtoCCExitNotify  = 1 << 7
	ivProtoAuthFailTemp  = 1 << 8
	ivProtoDynTLSCrypt   = 1 << 9
	ivProtoDataEpoch     = 1 << 10
	ivProtoDNSOptionV2   = 1 << 11
	ivProtoPushUpdate    = 1 << 12
	ivProto              = ivProtoDataV2 | ivProtoRequestPush | ivProtoTLSKeyExport | ivProtoAuthPendingKW | ivProtoCCExitNotify | ivProtoAuthFailTemp |
		ivProtoDynTLSCrypt | ivProtoDataEpoch | ivProtoDNSOptionV2 | ivProtoPushUpdate
)

// clientKeySource is the client's half of the key material: pre_master, random1, random2.
type clientKeySource struct {
	preMaster [kdf.PreMasterSize]byte
	random1   [kdf.RandomSize]byte
	random2   [kdf.RandomSize]byte
}

// serverRecord is what the client needs from the server's key-method 2 record.
type serverRecord struct {
	random1, random2 [kdf.RandomSize]byte
	options          string
	peerInfo         string
}

// appendString writes an OpenVPN string: u16 length including the NUL, bytes, NUL.
func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)+1))
	dst = append(dst, s...)
	return append(dst, 0)
}

// buildClientRecord assembles the client's key-method 2 record (ssl.c key_method_2_write).
// user/pass are written only when authUserPass is set; otherwise two empty strings follow the
// options, exactly as OpenVPN does, so the server finds the peer-info after them.
func buildClientRecord(src *clientKeySource, options string, authUserPass bool, user, pass, peerInfo string) []byte {
	b := make([]byte, 0, 5+clientSourceLen+len(options)+len(user)+len(pass)+len(peerInfo)+12)
	b = append(b, 0, 0, 0, 0, keyMethod2)
	b = append(b, src.preMaster[:]...)
	b = append(b, src.random1[:]...)
	b = append(b, src.random2[:]...)
	b = appendString(b, options)
	if authUserPass {
		b = appendString(b, user)
		b = appendString(b, pass)
	} else {
		b = append(b, 0, 0, 0, 0)
	}
	return appendString(b, peerInfo)
}

var errShortRecord = errors.New("key-method 2 record truncated")

// readString reads one OpenVPN string of at most limit bytes (NUL included). A zero length is
// the empty string.
func readString(b []byte, limit int) (string, []byte, error) {
	if len(b) < 2 {
		return "", b, errShortRecord
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 {
		return "", b, nil
	}
	if n > len(b) {
		return "", b, errShortRecord
	}
	if n > limit {
		return "", b, fmt.Errorf("key-method 2 string of %d bytes exceeds %d", n, limit)
	}
	s := b[:n]
	if i := strings.IndexByte(string(s), 0); i >= 0 {
		s = s[:i]
	}
	return string(s), b[n:], nil
}

// parseServerRecord parses the server's key-method 2 record. The fields after the options
// string (username, password, peer-info) are optional: some servers stop after the options.
func parseServerRecord(b []byte) (serverRecord, error) {
	var r serverRecord
	if len(b) < 5+2*randomHalfLen {
		return r, errShortRecord
	}
	if binary.BigEndian.Uint32(b) != 0 {
		return r, errors.New("key-method 2 record does not start with four zero bytes")
	}
	if m := b[4] & keyMethodMask; m != keyMethod2 {
		return r, fmt.Errorf("server uses key-method %d, only 2 is supported", m)
	}
	b = b[5:]
	copy(r.random1[:], b)
	copy(r.random2[:], b[randomHalfLen:])
	b = b[2*randomHalfLen:]
	var err error
	if r.options, b, err = readString(b, maxOptionsLen); err != nil {
		return r, fmt.Errorf("reading options string: %w", err)
	}
	// Username and password are ignored on the client but must be skipped to reach peer-info.
	if len(b) < 2 {
		return r, nil
	}
	if _, b, err = readString(b, maxUserPassLen); err != nil {
		return r, nil
	}
	if _, b, err = readString(b, maxUserPassLen); err != nil {
		return r, nil
	}
	if len(b) >= 2 {
		r.peerInfo, _, _ = readString(b, maxPeerInfoLen)
	}
	return r, nil
}

// occCipherField returns what OpenVPN writes after "cipher" in the options string.
func occCipherField(name string) string {
	if name == "" || strings.EqualFold(name, "none") {
		return "[null-cipher]"
	}
	return name
}

// cipherKeyBits is the key size in bits of a data cipher, for the OCC keysize field.
func cipherKeyBits(name string) int {
	switch strings.ToUpper(name) {
	case "AES-128-GCM", "AES-128-CBC":
		return 128
	case "AES-192-GCM", "AES-192-CBC":
		return 192
	case "AES-256-GCM", "AES-256-CBC", "CHACHA20-POLY1305":
		return 256
	}
	return 0
}

func isAEAD(name string) bool {
	n := strings.ToUpper(name)
	return strings.HasSuffix(n, "-GCM") || n == "CHACHA20-POLY1305"
}

// digestLen is the HMAC size of an --auth digest, 0 when unknown or none.
func digestLen(name string) int {
	switch strings.ToUpper(name) {
	case "SHA1":
		return 20
	case "SHA224":
		return 28
	case "SHA256":
		return 32
	case "SHA384":
		return 48
	case "SHA512":
		return 64
	case "MD5":
		return 16
	}
	return 0
}

// occCipher is the cipher OpenVPN 2.6 names in the options string: the fallback if one is
// set, else the first data cipher.
func (c *Config) occCipher() string {
	if c.DataCiphersFallback != "" {
		return c.DataCiphersFallback
	}
	if len(c.DataCiphers) > 0 {
		return c.DataCiphers[0]
	}
	return ""
}

// linkMTU approximates OpenVPN's link-mtu figure for the OCC string: tun-mtu plus the
// worst-case data-channel overhead. Peers compare it only to print a warning.
func (c *Config) linkMTU(cipher string) int {
	o := 1 + 4 // opcode, packet id
	if isAEAD(cipher) {
		o += 16
	} else if cipherKeyBits(cipher) > 0 {
		o += digestLen(c.Auth) + 16 + 16 // HMAC, IV, padding
	} else {
		o += digestLen(c.Auth)
	}
	if c.Compression != datachannel.CompressNone {
		o++
	}
	if c.Fragment > 0 {
		o += fragment.HeaderSize
	}
	if c.Proto == ProtoTCP {
		o += 2
	}
	return c.TunMTU + o
}

// protoName is the OCC proto field (options.c proto2ascii with remote flag).
func (c *Config) protoName() string {
	p := "UDPv4"
	if c.Proto == ProtoTCP {
		p = "TCPv4_CLIENT"
	}
	if c.IPv6 {
		p = strings.Replace(p, "v4", "v6", 1)
	}
	return p
}

// optionsString builds the OCC options string (options.c options_string) for a TLS client.
func (c *Config) optionsString() string {
	cipher := c.occCipher()
	var b strings.Builder
	b.WriteString("V4,dev-type tun")
	fmt.Fprintf(&b, ",link-mtu %d,tun-mtu %d,proto %s", c.linkMTU(cipher), c.TunMTU, c.protoName())
	if c.Compression == datachannel.CompLZO {
		b.WriteString(",comp-lzo")
	}
	if c.Fragment > 0 {
		b.WriteString(",mtu-dynamic")
	}
	if c.Wrap == WrapTLSAuth && c.KeyDirection >= 0 {
		fmt.Fprintf(&b, ",keydir %d", c.KeyDirection)
	}
	fmt.Fprintf(&b, ",cipher %s", occCipherField(cipher))
	if isAEAD(cipher) {
		b.WriteString(",auth [null-digest]")
	} else {
		fmt.Fprintf(&b, ",auth %s", c.Auth)
	}
	if bits := cipherKeyBits(cipher); bits > 0 {
		fmt.Fprintf(&b, ",keysize %d", bits)
	}
	if c.Wrap == WrapTLSAuth {
		b.WriteString(",tls-auth")
	}
	b.WriteString(",key-method 2,tls-client")
	return b.String()
}

// peerInfo builds the IV_* block a pulling client sends (ssl.c push_peer_info).
func (c *Config) peerInfo() string {
	var b strings.Builder
	fmt.Fprintf(&b, "IV_VER=%s\nIV_PLAT=linux\n", c.IVVer)
	fmt.Fprintf(&b, "IV_PROTO=%d\n", ivProto)
	if c.hasCipher("AES-128-GCM") && c.hasCipher("AES-256-GCM") {
		b.WriteString("IV_NCP=2\n")
	}
	fmt.Fprintf(&b, "IV_CIPHERS=%s\n", strings.Join(c.DataCiphers, ":"))
	if c.Compression != datachannel.CompressNone {
		// We decompress what the server sends but never compress ourselves.
		b.WriteString("IV_LZ4=1\nIV_LZ4v2=1\nIV_LZO=1\nIV_COMP_STUB=1\nIV_COMP_STUBv2=1\n")
	}
	b.WriteString("IV_TCPNL=1\n")
	fmt.Fprintf(&b, "IV_MTU=%d\n", c.TunMaxMTU)
	if c.IVGUIVer != "" {
		fmt.Fprintf(&b, "IV_GUI_VER=%s\n", c.IVGUIVer)
	}
	// Pending-authentication methods ovpnd presents (EventAuthPrompt); OpenVPN's GUIs send
	// it with setenv IV_SSO, which lands after IV_GUI_VER.
	b.WriteString("IV_SSO=webauth,openurl,crtext\n")
	return b.String()
}

func (c *Config) hasCipher(name string) bool {
	for _, ci := range c.DataCiphers {
		if strings.EqualFold(ci, name) {
			return true
		}
	}
	return false
}

// occOption returns the value of a "name value" field in an OCC options string.
func occOption(options, name string) string {
	for _, f := range strings.Split(options, ",") {
		k, v, _ := strings.Cut(f, " ")
		if k == name {
			return v
		}
	}
	return ""
}

// atoiBounded parses a non-negative decimal no larger than max.
func atoiBounded(s string, max int) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > max {
		return 0, false
	}
	return n, true
}
