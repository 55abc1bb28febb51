// Package statickey parses and writes OpenVPN's pre-shared key files: the
// "OpenVPN Static key V1" file used by tls-auth and tls-crypt, and the
// tls-crypt-v2 client and server keys.
//
// The 256-byte static key is two {cipher[64], hmac[64]} pairs. Which pair a
// peer sends with depends on the mode (key-direction for tls-auth, fixed for
// tls-crypt); this package only stores the bytes.
package statickey

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeySize is the size of an OpenVPN static key (two cipher/HMAC pairs).
const KeySize = 256

// maxKeyFile bounds the PEM input so a hostile or mistaken path cannot make
// the parser chew through an arbitrarily large file.
const maxKeyFile = 64 << 10

const (
	staticHead = "-----BEGIN OpenVPN Static key V1-----"
	staticFoot = "-----END OpenVPN Static key V1-----"
)

// Key is a 256-byte OpenVPN static key. Pair i of OpenVPN's key2.keys[i] is
// {Cipher[i], HMAC[i]}; on the wire and in files the order is
// Cipher[0], HMAC[0], Cipher[1], HMAC[1].
type Key struct {
	Cipher [2][64]byte
	HMAC   [2][64]byte
}

// FromBytes builds a Key from its 256-byte serialization.
func FromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("static key: got %d bytes, want %d", len(b), KeySize)
	}
	k := new(Key)
	for i := 0; i < 2; i++ {
		copy(k.Cipher[i][:], b[i*128:i*128+64])
		copy(k.HMAC[i][:], b[i*128+64:i*128+128])
	}
	return k, nil
}

// Bytes returns the 256-byte serialization of k in OpenVPN's order.
func (k *Key) Bytes() [KeySize]byte {
	var b [KeySize]byte
	for i := 0; i < 2; i++ {
		copy(b[i*128:], k.Cipher[i][:])
		copy(b[i*128+64:], k.HMAC[i][:])
	}
	return b
}

// XOR returns k XOR other. Dynamic tls-crypt (OpenVPN 2.6+, IV_PROTO bit 9)
// mixes the exported TLS keying material with the original tls-auth or
// tls-crypt key this way so that the renegotiation key depends on both.
func (k *Key) XOR(other *Key) Key {
	var out Key
	for i := 0; i < 2; i++ {
		for j := 0; j < 64; j++ {
			out.Cipher[i][j] = k.Cipher[i][j] ^ other.Cipher[i][j]
			out.HMAC[i][j] = k.HMAC[i][j] ^ other.HMAC[i][j]
		}
	}
	return out
}

// Generate returns a new random static key read from rand.
func Generate(rand io.Reader) (*Key, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("generating static key: %w", err)
	}
	return FromBytes(b[:])
}

// ParseStaticKey parses an "OpenVPN Static key V1" file (or the contents of
// an inline <tls-auth>/<tls-crypt> block).
//
// Like OpenVPN it ignores any text before the header line (the "#" comment
// block that --genkey writes, or the inline tag) and after the footer, and
// ignores whitespace between hex digits, so CRLF files parse. It additionally
// accepts the header and footer in any letter case ("Static Key"), which some
// key generators write. Unlike OpenVPN it insists on exactly 256 bytes: a
// one-pair (128-byte) file or trailing key data is an error, not silently
// ignored.
func ParseStaticKey(pemData []byte) (*Key, error) {
	if len(pemData) > maxKeyFile {
		return nil, fmt.Errorf("parsing static key: input is %d bytes, limit %d", len(pemData), maxKeyFile)
	}
	var out [KeySize]byte
	n := 0
	const (
		stateHead = iota
		stateData
		stateDone
	)
	state := stateHead
	lines := bytes.Split(pemData, []byte("\n"))
	for i, raw := range lines {
		lineNum := i + 1
		line := strings.TrimSpace(string(raw))
		switch state {
		case stateHead:
			if strings.EqualFold(line, staticHead) {
				state = stateData
			}
		case stateData:
			if strings.HasPrefix(line, "-") {
				if !strings.EqualFold(line, staticFoot) {
					return nil, fmt.Errorf("parsing static key: line %d: expected %q, found %q", lineNum, staticFoot, truncate(line))
				}
				state = stateDone
				continue
			}
			for j := 0; j < len(line); j++ {
				c := line[j]
				if c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' {
					continue
				}
				v, ok := hexVal(c)
				if !ok {
					if c >= 0x20 && c < 0x7f {
						return nil, fmt.Errorf("parsing static key: line %d: non-hex character %q", lineNum, c)
					}
					return nil, fmt.Errorf("parsing static key: line %d: non-hex, unprintable character 0x%02x", lineNum, c)
				}
				if n >= 2*KeySize {
					return nil, fmt.Errorf("parsing static key: line %d: more than %d bytes of key data", lineNum, KeySize)
				}
				if n%2 == 0 {
					out[n/2] = v << 4
				} else {
					out[n/2] |= v
				}
				n++
			}
		case stateDone:
		}
		if state == stateDone {
			break
		}
	}
	switch {
	case state == stateHead:
		if b, _ := pem.Decode(pemData); b != nil {
			return nil, fmt.Errorf("parsing static key: this is a PEM %q, not an OpenVPN static key", b.Type)
		}
		return nil, fmt.Errorf("parsing static key: header %q not found", staticHead)
	case state == stateData:
		return nil, fmt.Errorf("parsing static key: footer %q not found (%d of %d bytes read)", staticFoot, n/2, KeySize)
	case n%2 != 0:
		return nil, fmt.Errorf("parsing static key: odd number of hex digits (%d)", n)
	case n/2 != KeySize:
		return nil, fmt.Errorf("parsing static key: found %d bytes of key data, want %d", n/2, KeySize)
	}
	return FromBytes(out[:])
}

// EncodePEM writes k in the format of "openvpn --genkey secret": a comment
// block, the header, 16 lines of 32 hex digits, and the footer.
func (k *Key) EncodePEM() []byte {
	b := k.Bytes()
	var sb strings.Builder
	sb.WriteString("#\n# 2048 bit OpenVPN static key\n#\n")
	sb.WriteString(staticHead)
	sb.WriteByte('\n')
	for i := 0; i < KeySize; i += 16 {
		sb.WriteString(hex.EncodeToString(b[i : i+16]))
		sb.WriteByte('\n')
	}
	sb.WriteString(staticFoot)
	sb.WriteByte('\n')
	return []byte(sb.String())
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

var errNoBlock = errors.New("no PEM block found")
