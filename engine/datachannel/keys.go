// Package datachannel implements OpenVPN's data channel for one negotiated
// key: AEAD (AES-GCM, ChaCha20-Poly1305) and legacy CBC+HMAC packet
// protection, the packet-id replay window, compression framing with LZO/LZ4
// decompression, and the ping/OCC payloads.
//
// Pipeline (the session's fast path, one call per packet, in place):
//
//	Seal: IP packet at buf[off:off+n]
//	      → compression framing (prefix byte / swap / v2 escape)
//	      → packet id from an atomic counter
//	      → encrypt in place, header and crypto fields written into the headroom
//	      → wire packet buf[start:end]
//	Open: wire packet → header and key id check → replay pre-check
//	      → authenticate and decrypt in place → replay commit
//	      → strip framing (decompress into scratch if the peer compressed)
//
// Wire layouts (OpenVPN crypto.c; hdr is 1 byte for P_DATA_V1, 4 for V2):
//
//	AEAD:      hdr | packet_id(4) | tag(16) | ciphertext
//	AEAD epoch: hdr | epoch(2) ‖ counter(6) | ciphertext | tag(16)   (2.7, epoch.go)
//	CBC:       hdr | HMAC | IV(16) | E(packet_id(4) ‖ payload, PKCS#7)
//	none+HMAC: hdr | HMAC | packet_id(4) | payload
//
// Seal is safe for concurrent use; Open is not (it owns the replay window).
// Neither allocates for uncompressed packets.
package datachannel

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ovpnd/ovpnd/engine/kdf"
)

// NoPeerID in KeyParams.PeerID means the server assigned no peer id: send
// P_DATA_V1 (same value as wire.NoPeerID).
const NoPeerID = 0xFFFFFF

// Data opcodes (ssl_pkt.h).
const (
	opDataV1 = 6
	opDataV2 = 9
)

const (
	tagSize       = 16 // AEAD tag (OPENVPN_AEAD_TAG_LENGTH)
	packetIDSize  = 4  // short-form packet id
	implicitIVLen = 8  // AEAD nonce = packet_id(4) ‖ implicit IV(8)
	nonceSize     = packetIDSize + implicitIVLen
	cbcBlockSize  = aes.BlockSize
	maxMACSize    = sha512.Size
	maxHeaderSize = 4

	// Packet ids at or above this make OpenVPN renegotiate
	// (ssl.c: packet_id.send.id > PACKET_ID_WRAP_TRIGGER).
	packetIDWrapTrigger = 0xFF000000
)

// Buffer contract for Seal, the maximum over all ciphers and framings:
// Headroom bytes before the payload (header, HMAC-SHA512, IV, packet id,
// two bytes of v2 escape) and Tailroom after it (a CBC padding block or the
// AEAD tag that Seal writes there before moving it to the front, plus one
// byte of swap framing). Overhead reports what one Keys actually adds.
const (
	Headroom = maxHeaderSize + maxMACSize + cbcBlockSize + packetIDSize + 2
	Tailroom = cbcBlockSize + 1
	// MaxPayload is the largest payload Seal accepts.
	MaxPayload = 65535
	// PacketIDSize is the packet id every data packet carries; CBC encrypts
	// it with the payload (FrameOverhead counts it in Payload then).
	PacketIDSize = packetIDSize
)

type cipherKind int

const (
	kindAEAD cipherKind = iota
	kindCBC
	kindNone // cipher none: packet id and payload in clear, HMAC optional
)

// KeyParams describes one data-channel key as negotiated by the engine.
type KeyParams struct {
	// Cipher is the OpenVPN cipher name: AES-128-GCM, AES-192-GCM,
	// AES-256-GCM, CHACHA20-POLY1305, AES-128-CBC, AES-192-CBC,
	// AES-256-CBC or "none" (case-insensitive). BF-CBC is refused.
	Cipher string
	// Digest is the --auth digest for CBC and none: SHA1, SHA256, SHA384,
	// SHA512 or "none". AEAD ciphers ignore it.
	Digest string
	// Block is the 256-byte key block from TLS-EKM or kdf.ExpandPRF.
	Block *kdf.KeyBlock
	// Client selects the directions: a client sends with keys[0] and
	// receives with keys[1], a server the reverse.
	Client bool
	// KeyID is the TLS key id (0..7) written into and checked on packets.
	KeyID uint8
	// PeerID is the pushed peer-id; NoPeerID sends P_DATA_V1.
	PeerID uint32
	// Compression is the negotiated compression framing.
	Compression Compression
	// ReplayWindow is the replay window in packets; 0 means
	// DefaultReplayWindow, at most MaxReplayWindow.
	ReplayWindow int
	// Epoch selects OpenVPN 2.7's epoch data format (pushed
	// "protocol-flags aead-epoch"): AEAD ciphers and a peer id only.
	Epoch bool
	// Rand supplies CBC IVs; nil means crypto/rand.Reader. It must be safe
	// for concurrent use when Seal is called concurrently.
	Rand io.Reader
}

// Keys protects data packets with one negotiated key. Create it with
// NewKeys; it is immutable apart from its counters and the receive state.
type Keys struct {
	kind       cipherKind
	cipherName string
	keyID      uint8
	comp       Compression
	hdr        [maxHeaderSize]byte
	hdrLen     int
	overhead   int

	// AEAD state; cipher.AEAD is stateless and safe for concurrent use.
	sendAEAD cipher.AEAD
	recvAEAD cipher.AEAD
	sendIV   [implicitIVLen]byte
	recvIV   [implicitIVLen]byte

	// epoch is the epoch data format's key state; nil for the classic format.
	epoch *epochState

	// CBC and none: HMAC and CBC modes carry state, so Seal takes a private
	// copy from sendPool while Open uses recv directly.
	macLen   int
	rand     io.Reader
	sendPool sync.Pool // *cbcState
	recv     *cbcState

	nextID   atomic.Uint64 // last packet id sent
	sent     atomic.Uint64
	received atomic.Uint64

	// Receive state, owned by the goroutine calling Open.
	replay    replayWindow
	openNonce [nonceSize]byte
	tag       [tagSize]byte
	macSum    [maxMACSize]byte
}

// cbcState is the per-goroutine state of CBC/none packet protection.
type cbcState struct {
	mode ivMode    // nil for cipher none
	mac  hash.Hash // nil for digest none
}

// ivMode is a CBC BlockMode whose IV can be reset without allocating; the
// standard library's CBC modes provide SetIV (crypto/tls relies on it too).
type ivMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// NewKeys builds the packet protection for one key. All cipher objects are
// created here so the per-packet paths never allocate.
func NewKeys(p KeyParams) (*Keys, error) {
	if p.Block == nil {
		return nil, fmt.Errorf("creating data keys: no key block")
	}
	if p.KeyID > 7 {
		return nil, fmt.Errorf("creating data keys: key id %d out of range 0..7", p.KeyID)
	}
	if p.PeerID > NoPeerID {
		return nil, fmt.Errorf("creating data keys: peer id %#x exceeds 24 bits", p.PeerID)
	}
	if p.Compression < 0 || p.Compression >= compressionCount {
		return nil, fmt.Errorf("creating data keys: compression %v: %w", p.Compression, ErrUnsupported)
	}
	window := p.ReplayWindow
	if window == 0 {
		window = DefaultReplayWindow
	}
	if window < 0 || window > MaxReplayWindow {
		return nil, fmt.Errorf("creating data keys: replay window %d out of range 1..%d", p.ReplayWindow, MaxReplayWindow)
	}

	k := &Keys{
		keyID:  p.KeyID,
		comp:   p.Compression,
		replay: newReplayWindow(window),
		rand:   p.Rand,
	}
	if k.rand == nil {
		k.rand = rand.Reader
	}
	if p.PeerID == NoPeerID {
		k.hdr[0] = opDataV1<<3 | p.KeyID
		k.hdrLen = 1
	} else {
		binary.BigEndian.PutUint32(k.hdr[:], uint32(opDataV2<<3|p.KeyID)<<24|p.PeerID)
		k.hdrLen = 4
	}

	sendDir, recvDir := 0, 1
	if !p.Client {
		sendDir, recvDir = 1, 0
	}

	name := strings.ToUpper(p.Cipher)
	var err error
	switch name {
	case "AES-128-GCM", "AES-192-GCM", "AES-256-GCM", "CHACHA20-POLY1305":
		if p.Epoch {
			err = k.initEpoch(name, p, sendDir, recvDir, window)
		} else {
			err = k.initAEAD(name, p.Block, sendDir, recvDir)
		}
	case "AES-128-CBC", "AES-192-CBC", "AES-256-CBC", "NONE":
		if p.Epoch {
			err = fmt.Errorf("epoch data format needs an AEAD cipher, not %s: %w", name, ErrUnsupported)
			break
		}
		err = k.initCBC(name, p.Digest, p.Block, sendDir, recvDir)
	case "BF-CBC":
		err = fmt.Errorf("cipher BF-CBC is refused (64-bit block, SWEET32): %w", ErrUnsupported)
	default:
		err = fmt.Errorf("cipher %q: %w", p.Cipher, ErrUnsupported)
	}
	if err != nil {
		return nil, fmt.Errorf("creating data keys: %w", err)
	}
	k.overhead += k.hdrLen + k.comp.framePrefix() + k.comp.frameSuffix()
	k.cipherName = name
	return k, nil
}

// IsAEAD reports whether the OpenVPN cipher name is one of the AEAD ciphers
// NewKeys implements (the only ones the epoch data format allows).
func IsAEAD(cipher string) bool {
	switch strings.ToUpper(cipher) {
	case "AES-128-GCM", "AES-192-GCM", "AES-256-GCM", "CHACHA20-POLY1305":
		return true
	}
	return false
}

// Cipher is the data-channel cipher's canonical name, such as "AES-256-GCM".
func (k *Keys) Cipher() string { return k.cipherName }

func (k *Keys) initAEAD(name string, kb *kdf.KeyBlock, sendDir, recvDir int) error {
	k.kind = kindAEAD
	k.overhead = packetIDSize + tagSize
	newAEAD := func(key []byte) (cipher.AEAD, error) {
		switch name {
		case "CHACHA20-POLY1305":
			return chacha20poly1305.New(key[:chacha20poly1305.KeySize])
		case "AES-128-GCM":
			key = key[:16]
		case "AES-192-GCM":
			key = key[:24]
		default:
			key = key[:32]
		}
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	var err error
	if k.sendAEAD, err = newAEAD(kb.Cipher(sendDir)); err != nil {
		return fmt.Errorf("initializing %s send key: %w", name, err)
	}
	if k.recvAEAD, err = newAEAD(kb.Cipher(recvDir)); err != nil {
		return fmt.Errorf("initializing %s receive key: %w", name, err)
	}
	if k.sendAEAD.NonceSize() != nonceSize || k.sendAEAD.Overhead() != tagSize {
		return fmt.Errorf("%s: unexpected nonce/tag size: %w", name, ErrUnsupported)
	}
	// The implicit IV is the start of the direction's HMAC slot
	// (crypto.c key_ctx_update_implicit_iv).
	copy(k.sendIV[:], kb.HMAC(sendDir))
	copy(k.recvIV[:], kb.HMAC(recvDir))
	return nil
}

// initEpoch sets up the epoch data format: E_1 of each direction is the
// first 32 bytes of its cipher key slot (ssl.c init_epoch_keys).
func (k *Keys) initEpoch(name string, p KeyParams, sendDir, recvDir, window int) error {
	if p.PeerID == NoPeerID {
		// init.c: the epoch format requires P_DATA_V2.
		return fmt.Errorf("epoch data format requires a peer id (P_DATA_V2)")
	}
	e, err := newEpochState(name, p.Block.Cipher(sendDir)[:epochSecretSize], p.Block.Cipher(recvDir)[:epochSecretSize], window)
	if err != nil {
		return err
	}
	k.kind = kindAEAD
	k.epoch = e
	k.overhead = epochPacketIDSize + tagSize
	return nil
}

func (k *Keys) initCBC(name, digest string, kb *kdf.KeyBlock, sendDir, recvDir int) error {
	var newHash func() hash.Hash
	switch strings.ToUpper(digest) {
	case "SHA1":
		newHash = sha1.New
	case "SHA256":
		newHash = sha256.New
	case "SHA384":
		newHash = sha512.New384
	case "SHA512":
		newHash = sha512.New
	case "NONE", "[NULL-DIGEST]":
	default:
		return fmt.Errorf("digest %q: %w", digest, ErrUnsupported)
	}

	var sendBlock, recvBlock cipher.Block
	if name == "NONE" {
		k.kind = kindNone
	} else {
		k.kind = kindCBC
		keyLen := 32
		switch name {
		case "AES-128-CBC":
			keyLen = 16
		case "AES-192-CBC":
			keyLen = 24
		}
		var err error
		if sendBlock, err = aes.NewCipher(kb.Cipher(sendDir)[:keyLen]); err != nil {
			return fmt.Errorf("initializing %s send key: %w", name, err)
		}
		if recvBlock, err = aes.NewCipher(kb.Cipher(recvDir)[:keyLen]); err != nil {
			return fmt.Errorf("initializing %s receive key: %w", name, err)
		}
	}

	newState := func(b cipher.Block, macKey []byte, decrypt bool) (*cbcState, error) {
		st := &cbcState{}
		if b != nil {
			var zeroIV [cbcBlockSize]byte
			var m cipher.BlockMode
			if decrypt {
				m = cipher.NewCBCDecrypter(b, zeroIV[:])
			} else {
				m = cipher.NewCBCEncrypter(b, zeroIV[:])
			}
			im, ok := m.(ivMode)
			if !ok {
				return nil, fmt.Errorf("CBC mode without SetIV: %w", ErrUnsupported)
			}
			st.mode = im
		}
		if newHash != nil {
			st.mac = hmac.New(newHash, macKey)
		}
		return st, nil
	}

	if newHash != nil {
		k.macLen = newHash().Size()
	}
	// Copies: the pool builds new send states long after NewKeys returned, and the caller may
	// wipe its key block by then.
	sendMACKey := bytes.Clone(kb.HMAC(sendDir)[:k.macLen])
	recvMACKey := bytes.Clone(kb.HMAC(recvDir)[:k.macLen])

	var err error
	if k.recv, err = newState(recvBlock, recvMACKey, true); err != nil {
		return err
	}
	first, err := newState(sendBlock, sendMACKey, false)
	if err != nil {
		return err
	}
	k.sendPool.New = func() any {
		// Cannot fail: the same construction succeeded above.
		st, _ := newState(sendBlock, sendMACKey, false)
		return st
	}
	k.sendPool.Put(first)

	if k.kind == kindCBC {
		k.overhead = k.macLen + cbcBlockSize + packetIDSize + cbcBlockSize
	} else {
		k.overhead = k.macLen + packetIDSize
	}
	return nil
}

// KeyID returns the key id this Keys writes and accepts.
func (k *Keys) KeyID() uint8 { return k.keyID }

// Overhead returns the most bytes Seal adds to a payload with these keys
// (header, crypto fields, worst-case padding, compression framing).
func (k *Keys) Overhead() int { return k.overhead }

// SendExhausted reports that the next packet id is at or above 0xFF000000,
// where OpenVPN renegotiates; the engine should start a rekey.
func (k *Keys) SendExhausted() bool {
	if k.epoch != nil {
		// Epoch keys renew themselves; only the 16-bit epoch space runs out.
		return k.epoch.send.Load().key.epoch >= epochRenegotiate
	}
	return k.nextID.Load()+1 >= packetIDWrapTrigger
}

// Counters returns the number of packets sealed and the number of packets
// that authenticated and passed the replay check in Open (including pings
// and payloads whose compression framing was then rejected).
func (k *Keys) Counters() (sent, received uint64) {
	return k.sent.Load(), k.received.Load()
}

// Seal protects the payload buf[off:off+n] in place and returns the wire
// packet, a subslice of buf that starts before off. It requires
// off >= Headroom and len(buf) >= off+n+Tailroom; the headroom may be used
// as scratch space. Safe for concurrent use; allocation-free.
func (k *Keys) Seal(buf []byte, off, n int) ([]byte, error) {
	if off < Headroom || n < 0 || n > MaxPayload || len(buf)-off-n < Tailroom {
		return nil, errSealBuffer
	}
	start, end := k.comp.frame(buf, off, off+n)
	return k.seal(buf, start, end)
}

// Frame applies the compression framing to the payload buf[off:off+n] in place
// and returns its new bounds, for a caller that puts its own inner header (the
// fragment header) between framing and encryption, as OpenVPN does with
// --fragment. It needs FramePrefix bytes before off and one byte after the
// payload; Seal = Frame + SealFramed.
func (k *Keys) Frame(buf []byte, off, n int) (start, end int) {
	return k.comp.frame(buf, off, off+n)
}

// FramePrefix is how many bytes Frame may add in front of a payload.
const FramePrefix = 2

// SealFramed is Seal for a payload that Frame already framed: it requires
// off >= Headroom-FramePrefix and len(buf) >= off+n+Tailroom-1.
func (k *Keys) SealFramed(buf []byte, off, n int) ([]byte, error) {
	if off < Headroom-FramePrefix || n < 0 || n > MaxPayload+FramePrefix+1 || len(buf)-off-n < Tailroom-1 {
		return nil, errSealBuffer
	}
	return k.seal(buf, off, off+n)
}

func (k *Keys) seal(buf []byte, start, end int) ([]byte, error) {
	if k.epoch != nil {
		pkt, err := k.sealEpoch(buf, start, end)
		if err != nil {
			return nil, err
		}
		k.sent.Add(1)
		return pkt, nil
	}
	id := k.nextID.Add(1)
	if id > 0xFFFFFFFF {
		// Never reuse a nonce; the engine should have rekeyed at 0xFF000000.
		return nil, errExhausted
	}
	var pkt []byte
	var err error
	switch k.kind {
	case kindAEAD:
		pkt = k.sealAEAD(buf, start, end, uint32(id))
	default:
		pkt, err = k.sealCBC(buf, start, end, uint32(id))
	}
	if err != nil {
		return nil, err
	}
	k.sent.Add(1)
	return pkt, nil
}

// sealAEAD encrypts buf[start:end]. Go's AEADs append the tag after the
// ciphertext, while OpenVPN puts it before, so the tag is written into the
// tailroom and then moved in front of the ciphertext.
func (k *Keys) sealAEAD(buf []byte, start, end int, id uint32) []byte {
	tagPos := start - tagSize
	idPos := tagPos - packetIDSize
	hdrPos := idPos - k.hdrLen
	copy(buf[hdrPos:], k.hdr[:k.hdrLen])
	binary.BigEndian.PutUint32(buf[idPos:], id)

	// The nonce lives in the unused headroom in front of the packet: a
	// stack array passed to an interface method would escape to the heap.
	nonce := buf[hdrPos-nonceSize : hdrPos]
	copy(nonce, buf[idPos:idPos+packetIDSize])
	copy(nonce[packetIDSize:], k.sendIV[:])

	aad := buf[hdrPos:tagPos] // V2: header ‖ packet id
	if k.hdrLen == 1 {
		aad = buf[idPos:tagPos] // V1: packet id only
	}
	k.sendAEAD.Seal(buf[start:start], nonce, buf[start:end], aad)
	copy(buf[tagPos:start], buf[end:end+tagSize])
	return buf[hdrPos:end]
}

// sealCBC handles CBC+HMAC and cipher none.
func (k *Keys) sealCBC(buf []byte, start, end int, id uint32) ([]byte, error) {
	idPos := start - packetIDSize
	binary.BigEndian.PutUint32(buf[idPos:], id)

	authStart := idPos // what the HMAC covers
	macPos := idPos - k.macLen
	if k.kind == kindCBC {
		pad := cbcBlockSize - (end-idPos)%cbcBlockSize
		for i := end; i < end+pad; i++ {
			buf[i] = byte(pad)
		}
		end += pad
		ivPos := idPos - cbcBlockSize
		if _, err := io.ReadFull(k.rand, buf[ivPos:idPos]); err != nil {
			return nil, fmt.Errorf("sealing packet: reading CBC IV: %w", err)
		}
		authStart = ivPos
		macPos = ivPos - k.macLen
	}
	hdrPos := macPos - k.hdrLen
	copy(buf[hdrPos:], k.hdr[:k.hdrLen])

	st := k.sendPool.Get().(*cbcState)
	if st.mode != nil {
		st.mode.SetIV(buf[authStart:idPos])
		st.mode.CryptBlocks(buf[idPos:end], buf[idPos:end])
	}
	if st.mac != nil {
		st.mac.Reset()
		st.mac.Write(buf[authStart:end])
		// Sum appends into the HMAC field: buf[macPos:macPos] has the room.
		st.mac.Sum(buf[macPos:macPos])
	}
	k.sendPool.Put(st)
	return buf[hdrPos:end], nil
}

// Open authenticates and decrypts a data packet in place and returns the
// payload inside pkt with compression framing removed. A compressed payload
// yields ErrCompressed (and is consumed: its packet id is recorded); peers
// that may compress need OpenTo. pkt's contents are undefined after an
// error. Not safe for concurrent use; allocation-free.
func (k *Keys) Open(pkt []byte) ([]byte, error) {
	return k.OpenTo(pkt, nil)
}

// OpenTo is Open, but decompresses an LZO/LZ4 payload into scratch (at most
// min(len(scratch), 65535) bytes) and returns a subslice of scratch for it.
// Uncompressed payloads are still returned inside pkt.
func (k *Keys) OpenTo(pkt, scratch []byte) ([]byte, error) {
	payload, err := k.OpenFramed(pkt)
	if err != nil {
		return nil, err
	}
	return k.comp.unframe(payload, scratch)
}

// OpenFramed authenticates and decrypts a data packet in place like Open but
// leaves the compression framing (and any inner header in front of it) in
// the returned payload; Unframe removes the framing later.
func (k *Keys) OpenFramed(pkt []byte) ([]byte, error) {
	if len(pkt) < 1 {
		return nil, errShortHeader
	}
	var hdrLen int
	switch pkt[0] >> 3 {
	case opDataV1:
		hdrLen = 1
	case opDataV2:
		hdrLen = 4
	default:
		return nil, errBadOpcode
	}
	if pkt[0]&7 != k.keyID {
		return nil, errBadKeyID
	}
	if len(pkt) < hdrLen {
		return nil, errShortHeader
	}

	var payload []byte
	var err error
	switch {
	case k.epoch != nil:
		payload, err = k.openEpoch(pkt, hdrLen)
	case k.kind == kindAEAD:
		payload, err = k.openAEAD(pkt, hdrLen)
	default:
		payload, err = k.openCBC(pkt, hdrLen)
	}
	if err != nil {
		return nil, err
	}
	k.received.Add(1)
	return payload, nil
}

// Unframe removes the compression framing from a payload OpenFramed returned
// (after the caller took its inner header off), decompressing into scratch as
// OpenTo does. Allocation-free.
func (k *Keys) Unframe(payload, scratch []byte) ([]byte, error) {
	return k.comp.unframe(payload, scratch)
}

func (k *Keys) openAEAD(pkt []byte, hdrLen int) ([]byte, error) {
	base := hdrLen + packetIDSize // where the tag starts and the plaintext will
	if len(pkt) < base+tagSize {
		return nil, errShortAEAD
	}
	idBytes := pkt[hdrLen:base]
	id := uint64(binary.BigEndian.Uint32(idBytes))
	if !k.replay.check(id) {
		return nil, errReplay
	}
	copy(k.openNonce[:], idBytes)
	copy(k.openNonce[packetIDSize:], k.recvIV[:])

	aad := pkt[:base]
	if hdrLen == 1 {
		aad = pkt[1:base]
	}

	// Rearrange tag|ct into ct|tag for Go's AEAD interface: shift the
	// ciphertext down over the tag and put the tag behind it. One memmove is
	// far cheaper than the decryption and keeps pkt's bounds.
	m := len(pkt) - base - tagSize
	copy(k.tag[:], pkt[base:base+tagSize])
	copy(pkt[base:], pkt[base+tagSize:])
	copy(pkt[base+m:], k.tag[:])

	pt, err := k.recvAEAD.Open(pkt[base:base], k.openNonce[:], pkt[base:], aad)
	if err != nil {
		return nil, errAEADTag
	}
	if !k.replay.accept(id) {
		return nil, errReplay
	}
	return pt, nil
}

// openCBC handles CBC+HMAC and cipher none: verify the HMAC first
// (encrypt-then-MAC, so padding is only examined on authentic packets).
func (k *Keys) openCBC(pkt []byte, hdrLen int) ([]byte, error) {
	authStart := hdrLen + k.macLen
	minLen := authStart + packetIDSize
	if k.kind == kindCBC {
		minLen = authStart + 2*cbcBlockSize
	}
	if len(pkt) < minLen {
		if k.kind == kindCBC {
			return nil, errShortCBC
		}
		return nil, errShortPlain
	}
	st := k.recv
	if st.mac != nil {
		st.mac.Reset()
		st.mac.Write(pkt[authStart:])
		sum := st.mac.Sum(k.macSum[:0])
		if !hmac.Equal(sum, pkt[hdrLen:authStart]) {
			return nil, errHMAC
		}
	}
	plain := pkt[authStart:]
	if k.kind == kindCBC {
		ct := pkt[authStart+cbcBlockSize:]
		if len(ct)%cbcBlockSize != 0 {
			return nil, errCBCLength
		}
		st.mode.SetIV(pkt[authStart : authStart+cbcBlockSize])
		st.mode.CryptBlocks(ct, ct)
		pad := int(ct[len(ct)-1])
		if pad == 0 || pad > cbcBlockSize {
			return nil, errPadding
		}
		for _, b := range ct[len(ct)-pad:] {
			if int(b) != pad {
				return nil, errPadding
			}
		}
		plain = ct[:len(ct)-pad]
		if len(plain) < packetIDSize {
			return nil, errShortCBC
		}
	}
	id := uint64(binary.BigEndian.Uint32(plain))
	if !k.replay.accept(id) {
		return nil, errReplay
	}
	return plain[packetIDSize:], nil
}
