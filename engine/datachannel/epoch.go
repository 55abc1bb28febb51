package datachannel

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// OpenVPN 2.7's epoch data format (crypto_epoch.c, crypto.c, packet_id.c),
// negotiated with IV_PROTO_DATA_EPOCH and the pushed "protocol-flags aead-epoch":
//
//	P_DATA_V2 header(4) | packet id(8) | ciphertext | tag(16)
//
// The 64-bit packet id is the 16-bit epoch in its top bits and a 48-bit
// per-epoch counter below. The nonce is that id followed by four zero bytes,
// XORed with the epoch's 12-byte implicit IV; the AEAD's additional data is
// the header and the packet id, and the tag follows the ciphertext.
//
// Each direction has a chain of 32-byte epoch secrets: E_1 is the first 32
// bytes of the direction's cipher key in the TLS key block and
// E_n+1 = ExpandLabel(E_n, "datakey upd", 32). Epoch n encrypts with
// ExpandLabel(E_n, "data_key", key size) and the implicit IV
// ExpandLabel(E_n, "data_iv", 12). A sender moves to the next epoch when its
// counter or the AEAD usage limit runs out, or when the peer starts sending
// in an epoch above ours; a receiver keeps the current key, the one before
// it, and the next epochFutureKeys keys, so it follows the peer without a
// renegotiation.

const (
	epochPacketIDSize = 8
	epochIVSize       = 12
	epochSecretSize   = sha256.Size
	// epochFutureKeys is how many receive epochs ahead of the current one are
	// accepted (ssl.c init_epoch_keys, the software data channel's value).
	epochFutureKeys = 16
	// epochCounterMax is the last per-epoch packet counter
	// (packet_id.h PACKET_ID_EPOCH_MAX).
	epochCounterMax = 1<<48 - 1
	// epochRenegotiate: at this send epoch the TLS session renegotiates
	// (ssl.c should_trigger_renegotiation) long before the 16-bit space ends.
	epochRenegotiate = 0xF000
	// aeadUsageLimit is q+s <= 2^36-1 for AES-GCM (crypto.c
	// cipher_get_aead_limits); ChaCha20-Poly1305 has none.
	aeadUsageLimit = 1<<36 - 1
	aeadLimitBlock = 16
	// Decryption failures per key: above the warn limit the sender moves to a
	// new epoch to push the peer along; above the hard limit the key is not
	// used any more (crypto.h cipher_decrypt_verify_fail_warn/_exceeded).
	verifyFailWarn  = 1 << 35
	verifyFailLimit = 1 << 36
)

// expandLabel is OpenVPN's OVPN-Expand-Label (crypto_epoch.c ovpn_expand_label):
// HKDF-Expand with SHA-256 of a 32-byte secret, info being
// uint16(len(out)) ‖ uint8(5+len(label)) ‖ "ovpn " ‖ label ‖ uint8(0).
func expandLabel(secret []byte, label string, out []byte) error {
	if len(secret) != epochSecretSize || len(label) < 1 || len(label) > 250 || len(out) > 0xFFFF {
		return fmt.Errorf("epoch key expansion: bad secret, label or output length")
	}
	info := make([]byte, 0, 2+1+5+len(label)+1)
	info = binary.BigEndian.AppendUint16(info, uint16(len(out)))
	info = append(info, byte(5+len(label)))
	info = append(info, "ovpn "...)
	info = append(info, label...)
	info = append(info, 0)
	if _, err := io.ReadFull(hkdf.Expand(sha256.New, secret, info), out); err != nil {
		return fmt.Errorf("epoch key expansion %q: %w", label, err)
	}
	return nil
}

// epochSecret is E_n of one direction.
type epochSecret struct {
	epoch uint16
	key   [epochSecretSize]byte
}

// next returns E_n+1.
func (s *epochSecret) next() (epochSecret, error) {
	n := epochSecret{epoch: s.epoch + 1}
	if err := expandLabel(s.key[:], "datakey upd", n.key[:]); err != nil {
		return epochSecret{}, err
	}
	return n, nil
}

// epochKey is the data key and implicit IV of one epoch and direction.
type epochKey struct {
	epoch uint16
	aead  cipher.AEAD
	iv    [epochIVSize]byte
}

// epochKeySize is the cipher key length OpenVPN derives for each AEAD.
func epochKeySize(name string) int {
	switch name {
	case "AES-128-GCM":
		return 16
	case "AES-192-GCM":
		return 24
	default: // AES-256-GCM, CHACHA20-POLY1305
		return 32
	}
}

func newEpochKey(name string, s *epochSecret) (*epochKey, error) {
	var key [32]byte
	defer clear(key[:])
	k := &epochKey{epoch: s.epoch}
	kb := key[:epochKeySize(name)]
	if err := expandLabel(s.key[:], "data_key", kb); err != nil {
		return nil, err
	}
	if err := expandLabel(s.key[:], "data_iv", k.iv[:]); err != nil {
		return nil, err
	}
	var err error
	if name == "CHACHA20-POLY1305" {
		k.aead, err = chacha20poly1305.New(kb)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(kb); err == nil {
			k.aead, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("epoch %d %s key: %w", s.epoch, name, err)
	}
	return k, nil
}

// epochSend is the sending key of one epoch; Keys.epochSend swaps it atomically.
type epochSend struct {
	key    *epochKey
	ctr    atomic.Uint64 // last per-epoch counter used
	blocks atomic.Uint64 // AEAD usage: 16-byte blocks sealed under this key
}

// epochRecv is a receive key in use (current or retiring) with its replay state.
type epochRecv struct {
	key    *epochKey
	replay replayWindow
	blocks uint64 // AEAD usage: 16-byte blocks opened under this key
	failed uint64 // packets that failed authentication under this key
}

// epochState is the epoch part of a Keys.
type epochState struct {
	cipher string
	limit  uint64 // AEAD usage limit, 0 = none

	send   atomic.Pointer[epochSend]
	sendMu sync.Mutex  // serialises moving to a newer send epoch
	sendE  epochSecret // E_n of the current send key; guarded by sendMu

	// Receive side, owned by the goroutine calling Open.
	cur, old *epochRecv
	future   [epochFutureKeys]*epochKey // epochs cur+1 … cur+epochFutureKeys
	recvE    epochSecret                // the highest receive secret derived so far
	window   int
}

func newEpochState(name string, sendKey, recvKey []byte, window int) (*epochState, error) {
	if len(sendKey) < epochSecretSize || len(recvKey) < epochSecretSize {
		return nil, fmt.Errorf("epoch keys: key block too short")
	}
	e := &epochState{cipher: name, window: window}
	if name != "CHACHA20-POLY1305" {
		e.limit = aeadUsageLimit
	}
	e.sendE.epoch = 1
	copy(e.sendE.key[:], sendKey)
	e.recvE.epoch = 1
	copy(e.recvE.key[:], recvKey)

	sk, err := newEpochKey(name, &e.sendE)
	if err != nil {
		return nil, err
	}
	st := &epochSend{key: sk}
	e.send.Store(st)
	rk, err := newEpochKey(name, &e.recvE)
	if err != nil {
		return nil, err
	}
	e.cur = &epochRecv{key: rk, replay: newReplayWindow(window)}
	if err := e.fillFuture(); err != nil {
		return nil, err
	}
	return e, nil
}

// fillFuture derives the receive keys after the current one up to
// cur+epochFutureKeys (crypto_epoch.c epoch_generate_future_receive_keys),
// keeping the ones already derived.
func (e *epochState) fillFuture() error {
	curEpoch := int(e.cur.key.epoch)
	var next [epochFutureKeys]*epochKey
	for _, k := range e.future {
		if k != nil && int(k.epoch) > curEpoch && int(k.epoch) <= curEpoch+epochFutureKeys {
			next[int(k.epoch)-curEpoch-1] = k
		}
	}
	// recvE may lag behind the current key when the future window was
	// empty; catch it up first so secrets are never derived twice.
	for int(e.recvE.epoch) < curEpoch {
		n, err := e.recvE.next()
		if err != nil {
			return err
		}
		e.recvE = n
	}
	for int(e.recvE.epoch) < curEpoch+epochFutureKeys && e.recvE.epoch < 0xFFFF {
		n, err := e.recvE.next()
		if err != nil {
			return err
		}
		e.recvE = n
		k, err := newEpochKey(e.cipher, &e.recvE)
		if err != nil {
			return err
		}
		next[int(k.epoch)-curEpoch-1] = k
	}
	e.future = next
	return nil
}

// lookup returns the receive key for epoch and whether it is a future one
// (crypto_epoch.c epoch_lookup_decrypt_key).
func (e *epochState) lookup(epoch uint16) (*epochKey, *epochRecv) {
	switch {
	case epoch == e.cur.key.epoch:
		return e.cur.key, e.cur
	case e.old != nil && epoch == e.old.key.epoch:
		return e.old.key, e.old
	case epoch > e.cur.key.epoch && int(epoch) <= int(e.cur.key.epoch)+epochFutureKeys:
		// Near the end of the 16-bit space OpenVPN stops accepting new
		// epochs rather than deriving keys past it.
		if int(epoch) > 0xFFFF-epochFutureKeys-1 {
			return nil, nil
		}
		return e.future[int(epoch)-int(e.cur.key.epoch)-1], nil
	}
	return nil, nil
}

// promote makes the future key of epoch the current receive key once a
// packet under it authenticated (crypto_epoch.c epoch_replace_update_recv_key):
// the current key retires, the send key catches up if it is behind, and the
// future window moves on.
func (e *epochState) promote(k *epochKey) (*epochRecv, error) {
	if err := e.iterateSendTo(k.epoch); err != nil {
		return nil, err
	}
	r := e.old
	if r == nil {
		r = &epochRecv{replay: newReplayWindow(e.window)}
	} else {
		r.replay.reset()
		r.blocks, r.failed = 0, 0
	}
	r.key = k
	e.old, e.cur = e.cur, r
	return r, e.fillFuture()
}

// iterateSendTo moves the send key to at least epoch (no-op if it is there).
func (e *epochState) iterateSendTo(epoch uint16) error {
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	if e.sendE.epoch >= epoch {
		return nil
	}
	for e.sendE.epoch < epoch {
		n, err := e.sendE.next()
		if err != nil {
			return err
		}
		e.sendE = n
	}
	return e.installSend()
}

// iterateSend moves past the send key st if it is still the current one
// (crypto_epoch.c epoch_iterate_send_key); concurrent callers that saw the
// same exhausted key move it only once.
func (e *epochState) iterateSend(st *epochSend) error {
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	if e.send.Load() != st || e.sendE.epoch == 0xFFFF {
		return nil
	}
	n, err := e.sendE.next()
	if err != nil {
		return err
	}
	e.sendE = n
	return e.installSend()
}

// installSend derives the key of sendE and publishes it; sendMu is held.
func (e *epochState) installSend() error {
	k, err := newEpochKey(e.cipher, &e.sendE)
	if err != nil {
		return err
	}
	e.send.Store(&epochSend{key: k})
	return nil
}

// sendExhausted reports whether the send key wants replacing before the next
// packet (crypto_epoch.c epoch_check_send_iterate, the sender's checks).
func (e *epochState) sendExhausted(st *epochSend) bool {
	id := st.ctr.Load()
	return id >= epochCounterMax || (e.limit > 0 && st.blocks.Load()+id > e.limit)
}

// seal encrypts buf[start:end] in the epoch format; the tag lands in the
// tailroom behind the ciphertext, where OpenVPN puts it.
func (k *Keys) sealEpoch(buf []byte, start, end int) ([]byte, error) {
	e := k.epoch
	var st *epochSend
	var ctr uint64
	for {
		st = e.send.Load()
		if e.sendExhausted(st) && st.key.epoch < 0xFFFF {
			if err := e.iterateSend(st); err != nil {
				return nil, fmt.Errorf("sealing packet: %w", err)
			}
			continue
		}
		if ctr = st.ctr.Add(1); ctr <= epochCounterMax {
			break
		}
		if st.key.epoch == 0xFFFF {
			// Every id of the last epoch is used; the engine renegotiates
			// long before, at epoch 0xF000.
			return nil, errExhausted
		}
		// Concurrent senders overshot the counter: the next epoch.
	}
	idPos := start - epochPacketIDSize
	hdrPos := idPos - k.hdrLen
	copy(buf[hdrPos:], k.hdr[:k.hdrLen])
	binary.BigEndian.PutUint64(buf[idPos:], uint64(st.key.epoch)<<48|ctr)

	nonce := buf[hdrPos-epochIVSize : hdrPos]
	copy(nonce, buf[idPos:start])
	clear(nonce[epochPacketIDSize:])
	for i := range nonce {
		nonce[i] ^= st.key.iv[i]
	}
	st.key.aead.Seal(buf[start:start], nonce, buf[start:end], buf[hdrPos:start])
	// OpenVPN counts the header, packet id and ciphertext in 16-byte blocks.
	st.blocks.Add(uint64(end-hdrPos+aeadLimitBlock-1) / aeadLimitBlock)
	return buf[hdrPos : end+tagSize], nil
}

// openEpoch authenticates and decrypts hdr | id | ct | tag in place.
func (k *Keys) openEpoch(pkt []byte, hdrLen int) ([]byte, error) {
	e := k.epoch
	base := hdrLen + epochPacketIDSize
	// crypto.c openvpn_decrypt_aead: at least one byte of payload.
	if len(pkt) < base+tagSize+1 {
		return nil, errShortAEAD
	}
	full := binary.BigEndian.Uint64(pkt[hdrLen:base])
	epoch, id := uint16(full>>48), full&epochCounterMax
	if epoch == 0 {
		return nil, errBadEpoch
	}
	key, r := e.lookup(epoch)
	if key == nil {
		return nil, errUnknownEpoch
	}
	if r != nil {
		if r.failed > verifyFailLimit {
			return nil, errFailLimit
		}
		if !r.replay.check(id) {
			return nil, errReplay
		}
	}
	nonce := k.openNonce[:epochIVSize]
	copy(nonce, pkt[hdrLen:base])
	clear(nonce[epochPacketIDSize:])
	for i := range nonce {
		nonce[i] ^= key.iv[i]
	}
	pt, err := key.aead.Open(pkt[base:base], nonce, pkt[base:], pkt[:base])
	if err != nil {
		if r != nil {
			r.failed++
		}
		return nil, errAEADTag
	}
	if r == nil {
		// An authentic packet from a newer epoch: the peer moved on.
		if r, err = e.promote(key); err != nil {
			return nil, errEpochDerive
		}
	}
	if !r.replay.accept(id) {
		return nil, errReplay
	}
	r.blocks += uint64(base+len(pt)+aeadLimitBlock-1) / aeadLimitBlock
	if r == e.cur && e.cur.key.epoch == e.send.Load().key.epoch &&
		((e.limit > 0 && r.blocks+r.replay.top > e.limit) || r.failed > verifyFailWarn) {
		// The receive key is worn out: move our send key on to ask the
		// peer to follow (crypto_epoch.c epoch_check_send_iterate).
		if err := e.iterateSend(e.send.Load()); err != nil {
			return nil, errEpochDerive
		}
	}
	return pt, nil
}
