package wrap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
	"time"

	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wire"
)

// tls-crypt wire layout (tls_crypt.c):
//
//	op | sid(8) | packet id(4) | timestamp(4) | tag(32) | AES-256-CTR(body)
//
// tag = HMAC-SHA256(Ka, op | sid | packet id | timestamp | body) and the CTR
// IV is tag[:16], an SIV construction: the header is authenticated, the body
// authenticated and encrypted. The server sends with key pair 0 and the
// client with pair 1; each uses the first 32 bytes of the pair's halves.

const (
	tagLen         = sha256.Size
	cryptHeaderLen = 1 + 8 + packetIDLen // authenticated, not encrypted
	cryptBodyAt    = cryptHeaderLen + tagLen

	// TLSCryptOverhead is what tls-crypt adds to a plain control packet.
	TLSCryptOverhead = packetIDLen + tagLen
)

// sivKey is one direction of tls-crypt.
type sivKey struct {
	block cipher.Block
	mac   hash.Hash
}

func newSIVKey(cipherKey, macKey []byte) (sivKey, error) {
	b, err := aes.NewCipher(cipherKey[:32])
	if err != nil {
		return sivKey{}, err
	}
	return sivKey{block: b, mac: hmac.New(sha256.New, macKey[:32])}, nil
}

// ctrState holds the counter and keystream blocks in the heap-allocated
// wrapper, so calling the cipher.Block interface does not make them escape
// per call.
type ctrState struct {
	ctr [aes.BlockSize]byte
	ks  [aes.BlockSize]byte
	sum [tagLen]byte
}

// xorCTR is AES-CTR with a 128-bit big-endian counter starting at iv, as
// OpenSSL's AES-256-CTR does. dst and src may be the same slice.
// cipher.NewCTR would allocate a stream per packet.
func (c *ctrState) xorCTR(b cipher.Block, iv, dst, src []byte) {
	copy(c.ctr[:], iv)
	for len(src) > 0 {
		b.Encrypt(c.ks[:], c.ctr[:])
		n := subtle.XORBytes(dst, src, c.ks[:])
		dst, src = dst[n:], src[n:]
		for i := aes.BlockSize - 1; i >= 0; i-- {
			c.ctr[i]++
			if c.ctr[i] != 0 {
				break
			}
		}
	}
}

// seal finishes a packet laid out in buf as header | tag space | plaintext:
// it computes the tag over header and plaintext, stores it, and encrypts the
// plaintext in place.
func (c *ctrState) seal(k *sivKey, header, tag, plaintext []byte) {
	k.mac.Reset()
	k.mac.Write(header)
	k.mac.Write(plaintext)
	copy(tag, k.mac.Sum(c.sum[:0]))
	c.xorCTR(k.block, tag[:aes.BlockSize], plaintext, plaintext)
}

// open decrypts ciphertext into out (len(out) == len(ciphertext)) and
// verifies the tag in constant time.
func (c *ctrState) open(k *sivKey, header, tag, ciphertext, out []byte) error {
	c.xorCTR(k.block, tag[:aes.BlockSize], out, ciphertext)
	k.mac.Reset()
	k.mac.Write(header)
	k.mac.Write(out)
	if !hmac.Equal(k.mac.Sum(c.sum[:0]), tag) {
		return ErrAuth
	}
	return nil
}

type tlsCrypt struct {
	send, recv sivKey
	ctr        ctrState
	sender     sender
	replay     replayWindow
	plain      []byte // decryption buffer, grown to the largest packet seen
	out        packetBuf
	name       string // for errors: "tls-crypt" or "tls-crypt-v2"
}

// NewTLSCrypt returns the tls-crypt Wrapper for key (the same
// "OpenVPN Static key V1" file on both ends). client selects the direction:
// clients send with key pair 1 and receive with pair 0.
func NewTLSCrypt(key *statickey.Key, client bool) (Wrapper, error) {
	return newTLSCrypt(key, client, "tls-crypt")
}

// NewDynamicTLSCrypt returns the Wrapper for renegotiations (key id > 0)
// once dynamic tls-crypt is negotiated (IV_PROTO bit 9 / protocol-flags
// dyn-tls-crypt). ekm is the 256-byte TLS export with label
// "EXPORTER-OpenVPN-dynamic-tls-crypt"; original is the configured
// tls-auth or tls-crypt key (or Kc for tls-crypt-v2), or nil when neither is
// configured. OpenVPN XORs the two (tls_crypt.c).
func NewDynamicTLSCrypt(ekm []byte, original *statickey.Key, client bool) (Wrapper, error) {
	k, err := statickey.FromBytes(ekm)
	if err != nil {
		return nil, fmt.Errorf("dynamic tls-crypt: %w", err)
	}
	if original != nil {
		x := k.XOR(original)
		k = &x
	}
	return newTLSCrypt(k, client, "dynamic tls-crypt")
}

func newTLSCrypt(key *statickey.Key, client bool, name string) (*tlsCrypt, error) {
	if key == nil {
		return nil, fmt.Errorf("%s: no key", name)
	}
	sendPair, recvPair := 0, 1
	if client {
		sendPair, recvPair = 1, 0
	}
	w := &tlsCrypt{name: name}
	var err error
	if w.send, err = newSIVKey(key.Cipher[sendPair][:], key.HMAC[sendPair][:]); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if w.recv, err = newSIVKey(key.Cipher[recvPair][:], key.HMAC[recvPair][:]); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return w, nil
}

func (w *tlsCrypt) Overhead() int { return TLSCryptOverhead }

func (w *tlsCrypt) Accept() { w.replay.accept() }

func (w *tlsCrypt) Wrap(dst []byte, p *wire.ControlPacket, now time.Time) ([]byte, error) {
	if err := checkOutgoing(p); err != nil {
		return dst, fmt.Errorf("%s: %w", w.name, err)
	}
	id, ts, err := w.sender.next(now)
	if err != nil {
		return dst, fmt.Errorf("%s: %w", w.name, err)
	}
	start := len(dst)
	dst = append(dst, wire.Header(p.Opcode, p.KeyID))
	dst = append(dst, p.SessionID[:]...)
	dst = appendPacketID(dst, id, ts)
	dst = append(dst, make([]byte, tagLen)...)
	dst = p.AppendBody(dst)
	pkt := dst[start:]
	w.ctr.seal(&w.send, pkt[:cryptHeaderLen], pkt[cryptHeaderLen:cryptBodyAt], pkt[cryptBodyAt:])
	return dst, nil
}

func (w *tlsCrypt) Unwrap(pkt []byte, now time.Time) (wire.ControlPacket, error) {
	w.replay.drop()
	op, keyID, err := controlHeader(pkt)
	if err != nil {
		return wire.ControlPacket{}, fmt.Errorf("%s: %w", w.name, err)
	}
	if len(pkt) < cryptBodyAt+1 {
		return wire.ControlPacket{}, fmt.Errorf("%s: %d-byte packet too short", w.name, len(pkt))
	}
	ct := pkt[cryptBodyAt:]
	if cap(w.plain) < len(ct) {
		w.plain = make([]byte, len(ct), max(len(ct), 2048))
	}
	body := w.plain[:len(ct)]
	if err := w.ctr.open(&w.recv, pkt[:cryptHeaderLen], pkt[cryptHeaderLen:cryptBodyAt], ct, body); err != nil {
		clear(body)
		return wire.ControlPacket{}, fmt.Errorf("%s: %v: %w", w.name, op, err)
	}
	id, ts := readPacketID(pkt[1+8 : cryptHeaderLen])
	secs := now.Unix()
	if err := w.replay.check(id, ts, secs); err != nil {
		return wire.ControlPacket{}, fmt.Errorf("%s: %w", w.name, err)
	}
	p := w.out.reset()
	if err := p.DecodeBody(op, keyID, wire.SessionID(pkt[1:9]), body); err != nil {
		return wire.ControlPacket{}, fmt.Errorf("%s: %w", w.name, err)
	}
	w.replay.hold(id, ts, secs)
	return *p, nil
}
