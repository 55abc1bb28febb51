package statickey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// PEM block types of the tls-crypt-v2 key files (tls_crypt.c).
const (
	TLSCryptV2ClientPEMType = "OpenVPN tls-crypt-v2 client key"
	TLSCryptV2ServerPEMType = "OpenVPN tls-crypt-v2 server key"
)

// Sizes fixed by doc/tls-crypt-v2.txt and tls_crypt.h.
const (
	// TLSCryptV2ServerKeySize is the server key: one cipher[64] and hmac[64] pair.
	TLSCryptV2ServerKeySize = 128
	// MaxWKcLen is the largest wrapped client key OpenVPN accepts.
	MaxWKcLen = 1024
	// wkcTagLen is the SIV tag (HMAC-SHA256) at the start of WKc.
	wkcTagLen = 32
	// MinWKcLen is a WKc with empty metadata: tag, Kc and the length field.
	MinWKcLen = wkcTagLen + KeySize + 2
	// MaxMetadataLen is the most metadata that fits in MaxWKcLen.
	MaxMetadataLen = MaxWKcLen - MinWKcLen
)

// Metadata type bytes (first byte of the metadata inside WKc).
const (
	MetadataTypeUser      = 0x00
	MetadataTypeTimestamp = 0x01
)

// TLSCryptV2ClientKey is a tls-crypt-v2 client key file: the client's own
// tls-crypt key Kc and the server-wrapped copy WKc that the client sends,
// opaque to it, in its first packet.
type TLSCryptV2ClientKey struct {
	Key Key
	WKc []byte
}

// TLSCryptV2ServerKey is the server's key for wrapping client keys. Only the
// first 32 bytes of each half are used (AES-256-CTR and HMAC-SHA256).
type TLSCryptV2ServerKey struct {
	Cipher [64]byte
	HMAC   [64]byte
}

// staticKeyPEMType is the PEM type of tls-auth and tls-crypt keys, named when one is given where
// a tls-crypt-v2 key belongs.
const staticKeyPEMType = "OpenVPN Static key V1"

// decodePEM finds the first PEM block of the wanted type, skipping other
// blocks, because an inline <tls-crypt-v2> section may sit next to others.
func decodePEM(data []byte, typ string) ([]byte, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("input is %d bytes, limit %d", len(data), maxKeyFile)
	}
	rest := data
	var other []string
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.EqualFold(b.Type, typ) {
			if len(b.Headers) != 0 {
				return nil, fmt.Errorf("unexpected PEM headers in %q block", typ)
			}
			return b.Bytes, nil
		}
		other = append(other, b.Type)
	}
	if len(other) > 0 {
		// Name what the file is, since the usual mistake is a key of the wrong kind.
		if strings.EqualFold(other[0], staticKeyPEMType) {
			return nil, fmt.Errorf("this is an %q (a tls-auth or tls-crypt key), not an %q; use it with tls-crypt, or ask for a tls-crypt-v2 client key", other[0], typ)
		}
		return nil, fmt.Errorf("this is a PEM %q, not %q", other[0], typ)
	}
	return nil, fmt.Errorf("%w of type %q", errNoBlock, typ)
}

// ParseTLSCryptV2Client parses an "OpenVPN tls-crypt-v2 client key" PEM. It
// checks that WKc's trailing length field matches WKc's real length and
// that the length is within OpenVPN's limits; WKc itself is opaque to the
// client and cannot be verified without the server key.
func ParseTLSCryptV2Client(pemData []byte) (*TLSCryptV2ClientKey, error) {
	raw, err := decodePEM(pemData, TLSCryptV2ClientPEMType)
	if err != nil {
		return nil, fmt.Errorf("parsing tls-crypt-v2 client key: %w", err)
	}
	if len(raw) < KeySize+MinWKcLen {
		return nil, fmt.Errorf("parsing tls-crypt-v2 client key: %d bytes, need at least %d", len(raw), KeySize+MinWKcLen)
	}
	wkc := raw[KeySize:]
	if err := checkWKcLen(wkc); err != nil {
		return nil, fmt.Errorf("parsing tls-crypt-v2 client key: %w", err)
	}
	k, _ := FromBytes(raw[:KeySize])
	return &TLSCryptV2ClientKey{Key: *k, WKc: append([]byte(nil), wkc...)}, nil
}

func checkWKcLen(wkc []byte) error {
	if len(wkc) < MinWKcLen {
		return fmt.Errorf("wrapped client key is %d bytes, minimum %d", len(wkc), MinWKcLen)
	}
	if len(wkc) > MaxWKcLen {
		return fmt.Errorf("wrapped client key is %d bytes, maximum %d", len(wkc), MaxWKcLen)
	}
	if l := int(binary.BigEndian.Uint16(wkc[len(wkc)-2:])); l != len(wkc) {
		return fmt.Errorf("wrapped client key length field says %d, key is %d bytes", l, len(wkc))
	}
	return nil
}

// EncodePEM writes the client key file as OpenVPN does (Kc ‖ WKc, base64).
func (k *TLSCryptV2ClientKey) EncodePEM() []byte {
	kb := k.Key.Bytes()
	raw := make([]byte, 0, KeySize+len(k.WKc))
	raw = append(raw, kb[:]...)
	raw = append(raw, k.WKc...)
	return pem.EncodeToMemory(&pem.Block{Type: TLSCryptV2ClientPEMType, Bytes: raw})
}

// ParseTLSCryptV2Server parses an "OpenVPN tls-crypt-v2 server key" PEM.
func ParseTLSCryptV2Server(pemData []byte) (*TLSCryptV2ServerKey, error) {
	raw, err := decodePEM(pemData, TLSCryptV2ServerPEMType)
	if err != nil {
		return nil, fmt.Errorf("parsing tls-crypt-v2 server key: %w", err)
	}
	if len(raw) != TLSCryptV2ServerKeySize {
		return nil, fmt.Errorf("parsing tls-crypt-v2 server key: %d bytes, want %d", len(raw), TLSCryptV2ServerKeySize)
	}
	k := new(TLSCryptV2ServerKey)
	copy(k.Cipher[:], raw[:64])
	copy(k.HMAC[:], raw[64:])
	return k, nil
}

// GenerateTLSCryptV2Server returns a new random server key read from rand.
func GenerateTLSCryptV2Server(rand io.Reader) (*TLSCryptV2ServerKey, error) {
	k := new(TLSCryptV2ServerKey)
	if _, err := io.ReadFull(rand, k.Cipher[:]); err != nil {
		return nil, fmt.Errorf("generating tls-crypt-v2 server key: %w", err)
	}
	if _, err := io.ReadFull(rand, k.HMAC[:]); err != nil {
		return nil, fmt.Errorf("generating tls-crypt-v2 server key: %w", err)
	}
	return k, nil
}

// EncodePEM writes the server key file as OpenVPN does.
func (k *TLSCryptV2ServerKey) EncodePEM() []byte {
	raw := make([]byte, 0, TLSCryptV2ServerKeySize)
	raw = append(raw, k.Cipher[:]...)
	raw = append(raw, k.HMAC[:]...)
	return pem.EncodeToMemory(&pem.Block{Type: TLSCryptV2ServerPEMType, Bytes: raw})
}

// ErrWKcAuth means a wrapped client key did not authenticate under the
// server key: it was tampered with or wrapped by a different server key.
var ErrWKcAuth = errors.New("wrapped client key authentication failed")

// UnwrapClientKey authenticates and decrypts a WKc, returning the client key
// Kc and the metadata (a fresh copy).
//
// WKc = T ‖ AES-256-CTR(Ke, IV=T[:16], Kc ‖ metadata) ‖ len, with
// T = HMAC-SHA256(Ka, len ‖ Kc ‖ metadata) and len = u16 BE length of WKc.
func (k *TLSCryptV2ServerKey) UnwrapClientKey(wkc []byte) (Key, []byte, error) {
	if err := checkWKcLen(wkc); err != nil {
		return Key{}, nil, fmt.Errorf("unwrapping tls-crypt-v2 client key: %w", err)
	}
	tag := wkc[:wkcTagLen]
	ct := wkc[wkcTagLen : len(wkc)-2]
	pt := make([]byte, len(ct))
	block, err := aes.NewCipher(k.Cipher[:32])
	if err != nil {
		return Key{}, nil, fmt.Errorf("unwrapping tls-crypt-v2 client key: %w", err)
	}
	cipher.NewCTR(block, tag[:aes.BlockSize]).XORKeyStream(pt, ct)

	mac := hmac.New(sha256.New, k.HMAC[:32])
	mac.Write(wkc[len(wkc)-2:])
	mac.Write(pt)
	if subtle.ConstantTimeCompare(mac.Sum(nil), tag) != 1 {
		clear(pt)
		return Key{}, nil, fmt.Errorf("unwrapping tls-crypt-v2 client key: %w", ErrWKcAuth)
	}
	ck, _ := FromBytes(pt[:KeySize])
	md := append([]byte(nil), pt[KeySize:]...)
	clear(pt)
	return *ck, md, nil
}

// WrapClientKey wraps a client key and metadata for a client key file, as
// "openvpn --genkey tls-crypt-v2-client" does. The construction is a
// deterministic SIV, so rand is not read; it is accepted so callers need not
// change if a randomized format appears, and may be nil.
func (k *TLSCryptV2ServerKey) WrapClientKey(ck Key, metadata []byte, rand io.Reader) ([]byte, error) {
	_ = rand
	if len(metadata) > MaxMetadataLen {
		return nil, fmt.Errorf("wrapping tls-crypt-v2 client key: metadata is %d bytes, maximum %d", len(metadata), MaxMetadataLen)
	}
	total := MinWKcLen + len(metadata)
	var netLen [2]byte
	binary.BigEndian.PutUint16(netLen[:], uint16(total))
	kb := ck.Bytes()

	mac := hmac.New(sha256.New, k.HMAC[:32])
	mac.Write(netLen[:])
	mac.Write(kb[:])
	mac.Write(metadata)
	wkc := make([]byte, 0, total)
	wkc = mac.Sum(wkc)

	block, err := aes.NewCipher(k.Cipher[:32])
	if err != nil {
		return nil, fmt.Errorf("wrapping tls-crypt-v2 client key: %w", err)
	}
	pt := make([]byte, 0, KeySize+len(metadata))
	pt = append(pt, kb[:]...)
	pt = append(pt, metadata...)
	ct := make([]byte, len(pt))
	cipher.NewCTR(block, wkc[:aes.BlockSize]).XORKeyStream(ct, pt)
	clear(pt)
	clear(kb[:])
	wkc = append(wkc, ct...)
	wkc = append(wkc, netLen[:]...)
	return wkc, nil
}

// NewTLSCryptV2Client generates a client key with a random Kc, wrapped with
// the server key together with metadata (see TimestampMetadata and
// UserMetadata).
func (k *TLSCryptV2ServerKey) NewTLSCryptV2Client(metadata []byte, rand io.Reader) (*TLSCryptV2ClientKey, error) {
	ck, err := Generate(rand)
	if err != nil {
		return nil, fmt.Errorf("generating tls-crypt-v2 client key: %w", err)
	}
	wkc, err := k.WrapClientKey(*ck, metadata, rand)
	if err != nil {
		return nil, err
	}
	return &TLSCryptV2ClientKey{Key: *ck, WKc: wkc}, nil
}

// TimestampMetadata returns metadata of type "timestamp" (the default that
// OpenVPN writes when no metadata is given): 0x01 and a u64 BE unix time.
func TimestampMetadata(t time.Time) []byte {
	md := make([]byte, 9)
	md[0] = MetadataTypeTimestamp
	binary.BigEndian.PutUint64(md[1:], uint64(t.Unix()))
	return md
}

// UserMetadata returns metadata of type "user": 0x00 followed by data.
func UserMetadata(data []byte) ([]byte, error) {
	if len(data)+1 > MaxMetadataLen {
		return nil, fmt.Errorf("user metadata is %d bytes, maximum %d", len(data), MaxMetadataLen-1)
	}
	return append([]byte{MetadataTypeUser}, data...), nil
}
