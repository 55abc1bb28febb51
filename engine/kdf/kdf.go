// Package kdf derives OpenVPN data-channel keys.
//
// Two derivations exist. Peers that negotiate TLS key export (IV_PROTO bit 3
// and a pushed `key-derivation tls-ekm`) take 256 bytes from the TLS exporter
// with [LabelDataKeys]; the session does that with crypto/tls and only needs
// the label from here. Older peers use OpenVPN's own expansion based on the
// TLS 1.0 PRF, which [ExpandPRF] implements (OpenVPN ssl.c,
// generate_key_expansion_openvpn_prf). Either way the result is a [KeyBlock].
package kdf

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"hash"
)

// Labels for TLS keying-material export (RFC 5705), as OpenVPN uses them.
const (
	// LabelDataKeys exports the 256-byte data-channel key block.
	LabelDataKeys = "EXPORTER-OpenVPN-datakeys"
	// LabelP2PPeerID exports the 3-byte peer id in P2P (non-pull) mode.
	LabelP2PPeerID = "EXPORTER-OpenVPN-p2p-peerid"
	// LabelDynamicTLSCrypt exports the 256-byte dynamic tls-crypt key that
	// wraps renegotiations (ssl_backend.h EXPORT_DYNAMIC_TLS_CRYPT_LABEL).
	LabelDynamicTLSCrypt = "EXPORTER-OpenVPN-dynamic-tls-crypt"
)

// Labels of OpenVPN's PRF-based expansion. The "OpenVPN" prefix is
// OpenVPN's KEY_EXPANSION_ID.
const (
	labelMaster    = "OpenVPN master secret"
	labelExpansion = "OpenVPN key expansion"
)

// Sizes of the key-method 2 inputs to [ExpandPRF].
const (
	PreMasterSize = 48
	RandomSize    = 32
	SessionIDSize = 8
	masterSize    = 48
)

// KeyBlock is OpenVPN's `struct key2` payload: two directions of
// {cipher[64], hmac[64]}. Direction 0 carries client-to-server traffic and
// direction 1 server-to-client. A cipher uses the first key-length bytes of
// its slot, an HMAC the first digest-length bytes, and AEAD ciphers take the
// first 8 bytes of the HMAC slot as their implicit IV.
type KeyBlock [256]byte

// Cipher returns the 64-byte cipher key slot of direction i (0 or 1). Any
// other i yields nil, so a caller bug shows up as a key-length error rather
// than a panic.
func (b *KeyBlock) Cipher(i int) []byte {
	if i != 0 && i != 1 {
		return nil
	}
	return b[i*128 : i*128+64 : i*128+64]
}

// HMAC returns the 64-byte HMAC key slot of direction i (0 or 1), or nil
// for any other i.
func (b *KeyBlock) HMAC(i int) []byte {
	if i != 0 && i != 1 {
		return nil
	}
	return b[i*128+64 : i*128+128 : i*128+128]
}

// PRF fills out with the TLS 1.0 PRF (RFC 2246 section 5) of secret over
// label‖seed: P_MD5 keyed with the first half of secret XOR P_SHA1 keyed
// with the second half, the halves overlapping by one byte when the secret
// length is odd. This is what OpenVPN's ssl_tls1_PRF computes (OpenVPN
// passes its whole seed as the label; the result is the same).
func PRF(out, secret, label, seed []byte) {
	half := len(secret) / 2
	s1 := secret[:half+len(secret)%2]
	s2 := secret[half:]

	fullSeed := make([]byte, 0, len(label)+len(seed))
	fullSeed = append(fullSeed, label...)
	fullSeed = append(fullSeed, seed...)

	clear(out)
	pHashXOR(out, md5.New, s1, fullSeed)
	pHashXOR(out, sha1.New, s2, fullSeed)
}

// pHashXOR XORs P_hash(secret, seed) (RFC 2246 section 5) into out.
func pHashXOR(out []byte, h func() hash.Hash, secret, seed []byte) {
	mac := hmac.New(h, secret)
	mac.Write(seed)
	a := mac.Sum(nil) // A(1)
	var block []byte
	for done := 0; done < len(out); {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		block = mac.Sum(block[:0])
		for i := 0; i < len(block) && done < len(out); i++ {
			out[done] ^= block[i]
			done++
		}
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
}

// ExpandPRF derives the data-channel key block the way OpenVPN does when TLS
// key export was not negotiated:
//
//	master = PRF(preMaster, "OpenVPN master secret", clientRandom1‖serverRandom1)   (48 bytes)
//	block  = PRF(master, "OpenVPN key expansion",
//	             clientRandom2‖serverRandom2‖clientSID‖serverSID)                    (256 bytes)
//
// The pre-master secret and random1/random2 values come from the two
// key-method 2 records (the pre-master only from the client's), the session
// ids from the control channel. The inputs are normally 48 and 32 bytes
// ([PreMasterSize], [RandomSize]); other lengths are hashed as given, which
// cannot match a real peer, so callers check lengths when parsing the record.
func ExpandPRF(preMaster []byte, clientRandom1, serverRandom1, clientRandom2, serverRandom2 []byte, clientSID, serverSID [8]byte) KeyBlock {
	var master [masterSize]byte
	seed := make([]byte, 0, len(clientRandom2)+len(serverRandom2)+2*SessionIDSize)
	seed = append(seed, clientRandom1...)
	seed = append(seed, serverRandom1...)
	PRF(master[:], preMaster, []byte(labelMaster), seed)

	seed = seed[:0]
	seed = append(seed, clientRandom2...)
	seed = append(seed, serverRandom2...)
	seed = append(seed, clientSID[:]...)
	seed = append(seed, serverSID[:]...)
	var kb KeyBlock
	PRF(kb[:], master[:], []byte(labelExpansion), seed)
	clear(master[:])
	return kb
}
