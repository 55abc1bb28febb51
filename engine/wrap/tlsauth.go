package wrap

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wire"
)

// tls-auth wire layout (ssl_pkt.c, swap_hmac):
//
//	op | sid(8) | HMAC(digest size) | packet id(4) | timestamp(4) | body
//
// The HMAC covers packet id | timestamp | op | sid | body, i.e. the packet
// with the HMAC removed and the packet id moved to the front.

type digest struct {
	name string
	new  func() hash.Hash
	size int
}

var digests = []digest{
	{"MD5", md5.New, md5.Size},
	{"SHA1", sha1.New, sha1.Size},
	{"SHA224", sha256.New224, sha256.Size224},
	{"SHA256", sha256.New, sha256.Size},
	{"SHA384", sha512.New384, sha512.Size384},
	{"SHA512", sha512.New, sha512.Size},
	{"SHA512-224", sha512.New512_224, sha512.Size224},
	{"SHA512-256", sha512.New512_256, sha512.Size256},
	{"SHA3-224", func() hash.Hash { return sha3.New224() }, 28},
	{"SHA3-256", func() hash.Hash { return sha3.New256() }, 32},
	{"SHA3-384", func() hash.Hash { return sha3.New384() }, 48},
	{"SHA3-512", func() hash.Hash { return sha3.New512() }, 64},
}

// digestAliases maps other spellings OpenSSL accepts for --auth to the
// canonical names above.
var digestAliases = map[string]string{
	"SHA-1":    "SHA1",
	"SHA2-224": "SHA224", "SHA-224": "SHA224",
	"SHA2-256": "SHA256", "SHA-256": "SHA256",
	"SHA2-384": "SHA384", "SHA-384": "SHA384",
	"SHA2-512": "SHA512", "SHA-512": "SHA512",
	"SHA2-512/224": "SHA512-224", "SHA512/224": "SHA512-224",
	"SHA2-512/256": "SHA512-256", "SHA512/256": "SHA512-256",
}

// LookupDigest resolves an --auth digest name (case-insensitive, OpenSSL
// spellings) and returns its canonical name and output size.
func LookupDigest(name string) (canonical string, size int, err error) {
	d, err := lookupDigest(name)
	if err != nil {
		return "", 0, err
	}
	return d.name, d.size, nil
}

func lookupDigest(name string) (digest, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if a, ok := digestAliases[n]; ok {
		n = a
	}
	for _, d := range digests {
		if d.name == n {
			return d, nil
		}
	}
	if n == "NONE" || n == "[NULL-DIGEST]" {
		return digest{}, fmt.Errorf("digest %q: tls-auth needs an HMAC digest", name)
	}
	return digest{}, fmt.Errorf("unsupported digest %q", name)
}

type tlsAuth struct {
	size   int
	send   hash.Hash
	recv   hash.Hash
	sum    [64]byte
	sender sender
	replay replayWindow
	out    packetBuf
}

// NewTLSAuth returns the tls-auth Wrapper. direction is OpenVPN's
// key-direction: 0 sends with key pair 0 and receives with pair 1, 1 the
// reverse (the usual client setting), and -1 (no key-direction) uses pair 0
// both ways. digest is the --auth name (default "SHA1"); the HMAC key is
// the first digest-size bytes of the pair's HMAC half.
func NewTLSAuth(key *statickey.Key, direction int, digest string) (Wrapper, error) {
	if key == nil {
		return nil, fmt.Errorf("tls-auth: no key")
	}
	d, err := lookupDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("tls-auth: %w", err)
	}
	var sendPair, recvPair int
	switch direction {
	case -1:
		sendPair, recvPair = 0, 0
	case 0:
		sendPair, recvPair = 0, 1
	case 1:
		sendPair, recvPair = 1, 0
	default:
		return nil, fmt.Errorf("tls-auth: key direction %d, want -1, 0 or 1", direction)
	}
	return &tlsAuth{
		size: d.size,
		send: hmac.New(d.new, key.HMAC[sendPair][:d.size]),
		recv: hmac.New(d.new, key.HMAC[recvPair][:d.size]),
	}, nil
}

func (w *tlsAuth) Overhead() int { return w.size + packetIDLen }

func (w *tlsAuth) Accept() { w.replay.accept() }

func (w *tlsAuth) Wrap(dst []byte, p *wire.ControlPacket, now time.Time) ([]byte, error) {
	if err := checkOutgoing(p); err != nil {
		return dst, fmt.Errorf("tls-auth: %w", err)
	}
	id, ts, err := w.sender.next(now)
	if err != nil {
		return dst, fmt.Errorf("tls-auth: %w", err)
	}
	start := len(dst)
	dst = append(dst, wire.Header(p.Opcode, p.KeyID))
	dst = append(dst, p.SessionID[:]...)
	macAt := len(dst)
	dst = append(dst, make([]byte, w.size)...)
	pidAt := len(dst)
	dst = appendPacketID(dst, id, ts)
	dst = p.AppendBody(dst)

	w.send.Reset()
	w.send.Write(dst[pidAt : pidAt+packetIDLen])
	w.send.Write(dst[start:macAt])
	w.send.Write(dst[pidAt+packetIDLen:])
	copy(dst[macAt:pidAt], w.send.Sum(w.sum[:0]))
	return dst, nil
}

func (w *tlsAuth) Unwrap(pkt []byte, now time.Time) (wire.ControlPacket, error) {
	w.replay.drop()
	op, keyID, err := controlHeader(pkt)
	if err != nil {
		return wire.ControlPacket{}, fmt.Errorf("tls-auth: %w", err)
	}
	const sidEnd = 1 + 8
	macEnd := sidEnd + w.size
	bodyAt := macEnd + packetIDLen
	if len(pkt) < bodyAt+1 {
		return wire.ControlPacket{}, fmt.Errorf("tls-auth: %d-byte packet too short for a %d-byte HMAC", len(pkt), w.size)
	}
	w.recv.Reset()
	w.recv.Write(pkt[macEnd:bodyAt])
	w.recv.Write(pkt[:sidEnd])
	w.recv.Write(pkt[bodyAt:])
	if !hmac.Equal(w.recv.Sum(w.sum[:0]), pkt[sidEnd:macEnd]) {
		return wire.ControlPacket{}, fmt.Errorf("tls-auth: %v: %w", op, ErrAuth)
	}
	id, ts := readPacketID(pkt[macEnd:bodyAt])
	secs := now.Unix()
	if err := w.replay.check(id, ts, secs); err != nil {
		return wire.ControlPacket{}, fmt.Errorf("tls-auth: %w", err)
	}
	p := w.out.reset()
	if err := p.DecodeBody(op, keyID, wire.SessionID(pkt[1:sidEnd]), pkt[bodyAt:]); err != nil {
		return wire.ControlPacket{}, fmt.Errorf("tls-auth: %w", err)
	}
	w.replay.hold(id, ts, secs)
	return *p, nil
}
