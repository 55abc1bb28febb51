package datachannel

import (
	"errors"
	"fmt"
)

// Sentinel errors. Per-packet failures are returned wrapped in one of the
// prebuilt context errors below, so rejecting a packet never allocates and a
// flood of junk costs no garbage; callers test them with errors.Is.
var (
	// ErrShort: the packet is too short for its header and crypto fields.
	ErrShort = errors.New("packet too short")
	// ErrOpcode: byte 0 does not carry P_DATA_V1 or P_DATA_V2.
	ErrOpcode = errors.New("not a data packet")
	// ErrKeyID: the packet's key id belongs to another key.
	ErrKeyID = errors.New("key id mismatch")
	// ErrAuth: the AEAD tag or HMAC does not verify, or CBC padding is
	// malformed after a valid HMAC.
	ErrAuth = errors.New("authentication failed")
	// ErrReplay: the packet id was seen before, is too old for the replay
	// window, or is 0.
	ErrReplay = errors.New("replayed or out-of-window packet id")
	// ErrFraming: the compression framing byte is not one this mode accepts.
	ErrFraming = errors.New("bad compression framing")
	// ErrCompressed: the payload is LZO/LZ4-compressed and Open was given no
	// scratch buffer; use OpenTo.
	ErrCompressed = errors.New("payload is compressed")
	// ErrDecompress: decompression failed or would exceed the scratch buffer.
	ErrDecompress = errors.New("decompression failed")
	// ErrExhausted: the 32-bit packet-id space of this key is used up; the
	// engine must have renegotiated long before (see SendExhausted).
	ErrExhausted = errors.New("packet ids exhausted")
	// ErrBuffer: Seal's buffer violates the Headroom/Tailroom contract or the
	// payload is larger than MaxPayload.
	ErrBuffer = errors.New("buffer too small")
	// ErrUnsupported: NewKeys was asked for a cipher, digest or framing this
	// package does not implement.
	ErrUnsupported = errors.New("unsupported")
)

var (
	errShortHeader  = fmt.Errorf("reading data header: %w", ErrShort)
	errShortAEAD    = fmt.Errorf("reading AEAD packet: %w", ErrShort)
	errShortCBC     = fmt.Errorf("reading CBC packet: %w", ErrShort)
	errShortPlain   = fmt.Errorf("reading unencrypted packet: %w", ErrShort)
	errBadOpcode    = fmt.Errorf("reading data header: %w", ErrOpcode)
	errBadKeyID     = fmt.Errorf("reading data header: %w", ErrKeyID)
	errAEADTag      = fmt.Errorf("opening AEAD packet: %w", ErrAuth)
	errHMAC         = fmt.Errorf("checking packet HMAC: %w", ErrAuth)
	errPadding      = fmt.Errorf("removing CBC padding: %w", ErrAuth)
	errCBCLength    = fmt.Errorf("reading CBC packet: ciphertext not a whole number of blocks: %w", ErrShort)
	errReplay       = fmt.Errorf("checking packet id: %w", ErrReplay)
	errBadFraming   = fmt.Errorf("removing compression framing: %w", ErrFraming)
	errNeedScratch  = fmt.Errorf("removing compression framing: %w", ErrCompressed)
	errLZO          = fmt.Errorf("decompressing LZO payload: %w", ErrDecompress)
	errLZ4          = fmt.Errorf("decompressing LZ4 payload: %w", ErrDecompress)
	errExhausted    = fmt.Errorf("sealing packet: %w", ErrExhausted)
	errSealBuffer   = fmt.Errorf("sealing packet: %w", ErrBuffer)
	errBadEpoch     = fmt.Errorf("reading epoch packet id: epoch 0: %w", ErrReplay)
	errUnknownEpoch = fmt.Errorf("reading epoch packet id: epoch outside the receive window: %w", ErrKeyID)
	errFailLimit    = fmt.Errorf("opening AEAD packet: too many failed decryptions under this key: %w", ErrAuth)
	errEpochDerive  = fmt.Errorf("opening AEAD packet: deriving the next epoch key: %w", ErrUnsupported)
)
