package datachannel

import (
	"errors"
	"fmt"

	lzo "github.com/anchore/go-lzo"
	"github.com/pierrec/lz4/v4"
)

// Compression selects the compression framing of data payloads. ovpnd never
// compresses: it sends every payload with the "uncompressed" marker of the
// configured framing and decompresses what the peer chose to compress, when
// the framing allows it. Byte values and rules follow OpenVPN's comp.h,
// lzo.c, comp-lz4.c and compstub.c.
type Compression int

const (
	// CompressNone: no framing at all (no comp-lzo/compress option).
	CompressNone Compression = iota
	// CompLZO: `comp-lzo` in any mode, including `comp-lzo no`. A one-byte
	// prefix: we send 0xFA (uncompressed) and accept 0xFA and 0x66 (LZO1X).
	CompLZO
	// CompressStub: `compress` or `compress stub`. The "swap" framing: 0xFB
	// replaces the first payload byte, which moves to the end. Only 0xFB is
	// accepted, as in OpenVPN.
	CompressStub
	// CompressLZ4: `compress lz4`. Swap framing; the peer may send 0x69
	// (LZ4 block, also swapped) as well as 0xFB.
	CompressLZ4
	// CompressStubV2: `compress stub-v2`. No byte is added unless the
	// payload starts with 0x50, which is escaped as 0x50 0x00. A compressed
	// payload from the peer is rejected, as in OpenVPN's stubv2_decompress.
	CompressStubV2
	// CompressLZ4V2: `compress lz4-v2`. V2 framing; 0x50 0x01 introduces an
	// LZ4 block from the peer.
	CompressLZ4V2
	// CompressLZO: `compress lzo`. On the wire identical to CompLZO
	// (COMP_ALG_LZO without swap).
	CompressLZO

	compressionCount // number of valid values; keep last
)

var compressionNames = [...]string{
	CompressNone:   "none",
	CompLZO:        "comp-lzo",
	CompressStub:   "stub",
	CompressLZ4:    "lz4",
	CompressStubV2: "stub-v2",
	CompressLZ4V2:  "lz4-v2",
	CompressLZO:    "lzo",
}

// String names the framing as the config option would.
func (c Compression) String() string {
	if c < 0 || c >= compressionCount {
		return fmt.Sprintf("Compression(%d)", int(c))
	}
	return compressionNames[c]
}

// Framing bytes (OpenVPN comp.h).
const (
	lzoCompressByte     = 0x66 // LZO_COMPRESS_BYTE
	lz4CompressByte     = 0x69 // LZ4_COMPRESS_BYTE
	noCompressByte      = 0xFA // NO_COMPRESS_BYTE
	noCompressByteSwap  = 0xFB // NO_COMPRESS_BYTE_SWAP
	v2IndicatorByte     = 0x50 // COMP_ALGV2_INDICATOR_BYTE
	v2UncompressedByte  = 0x00 // COMP_ALGV2_UNCOMPRESSED_BYTE
	v2LZ4Byte           = 0x01 // COMP_ALGV2_LZ4_BYTE
	maxDecompressedSize = 65535
)

// framePrefix is the number of bytes framing may add in front of the payload.
func (c Compression) framePrefix() int {
	switch c {
	case CompLZO, CompressLZO:
		return 1
	case CompressStubV2, CompressLZ4V2:
		return 2
	}
	return 0
}

// frameSuffix is the number of bytes framing may add after the payload.
func (c Compression) frameSuffix() int {
	if c == CompressStub || c == CompressLZ4 {
		return 1
	}
	return 0
}

// frame applies the send-side framing to the payload buf[start:end] in place
// and returns the framed bounds. The caller guarantees framePrefix bytes
// before start and frameSuffix bytes after end.
func (c Compression) frame(buf []byte, start, end int) (int, int) {
	switch c {
	case CompLZO, CompressLZO:
		start--
		buf[start] = noCompressByte
	case CompressStub, CompressLZ4:
		// OpenVPN skips the swap for an empty payload (stub_compress).
		if end > start {
			buf[end] = buf[start]
			buf[start] = noCompressByteSwap
			end++
		}
	case CompressStubV2, CompressLZ4V2:
		// An IPv4/IPv6 packet never starts with 0x50, so this only fires for
		// odd payloads. OpenVPN's compv2_escape_data_ifneeded writes the
		// constant COMP_ALGV2_UNCOMPRESSED (10) here, which its own receiver
		// rejects; we send the 0x00 its receiver accepts.
		if end > start && buf[start] == v2IndicatorByte {
			start -= 2
			buf[start] = v2IndicatorByte
			buf[start+1] = v2UncompressedByte
		}
	}
	return start, end
}

// unframe strips the receive-side framing from p in place and, for a
// compressed payload, decompresses into scratch (nil: ErrCompressed).
func (c Compression) unframe(p, scratch []byte) ([]byte, error) {
	if len(p) == 0 {
		// OpenVPN's decompressors ignore empty buffers.
		return p, nil
	}
	switch c {
	case CompLZO, CompressLZO:
		switch p[0] {
		case noCompressByte:
			return p[1:], nil
		case lzoCompressByte:
			return decompressLZO(p[1:], scratch)
		}
		return nil, errBadFraming
	case CompressStub, CompressLZ4:
		head := p[0]
		last := len(p) - 1
		p[0] = p[last]
		p = p[:last]
		switch {
		case head == noCompressByteSwap:
			return p, nil
		case head == lz4CompressByte && c == CompressLZ4:
			return decompressLZ4(p, scratch)
		}
		return nil, errBadFraming
	case CompressStubV2, CompressLZ4V2:
		if p[0] != v2IndicatorByte {
			return p, nil
		}
		if len(p) < 2 {
			return nil, errBadFraming
		}
		switch {
		case p[1] == v2UncompressedByte:
			return p[2:], nil
		case p[1] == v2LZ4Byte && c == CompressLZ4V2:
			return decompressLZ4(p[2:], scratch)
		}
		return nil, errBadFraming
	}
	return p, nil
}

// scratchLimit bounds the decompression output: OpenVPN never produces a
// payload above 64 KiB and the scratch buffer may be smaller.
func scratchLimit(scratch []byte) []byte {
	if len(scratch) > maxDecompressedSize {
		return scratch[:maxDecompressedSize]
	}
	return scratch
}

// decompressLZO decodes an LZO1X-1 block (OpenVPN lzo.c uses
// lzo1x_decompress_safe). A library panic on hostile input is turned into an
// error: the decoder is third-party code fed by the network.
func decompressLZO(src, scratch []byte) (out []byte, err error) {
	if scratch == nil {
		return nil, errNeedScratch
	}
	dst := scratchLimit(scratch)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, errLZO
		}
	}()
	n, derr := lzo.Decompress(src, dst)
	if derr != nil {
		if errors.Is(derr, lzo.ErrOutputOverrun) {
			return nil, fmt.Errorf("decompressing LZO payload into %d bytes: %w", len(dst), ErrDecompress)
		}
		return nil, errLZO
	}
	return dst[:n], nil
}

// decompressLZ4 decodes an LZ4 block (OpenVPN comp-lz4.c uses
// LZ4_decompress_safe, and treats an empty result as an error).
func decompressLZ4(src, scratch []byte) (out []byte, err error) {
	if scratch == nil {
		return nil, errNeedScratch
	}
	dst := scratchLimit(scratch)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, errLZ4
		}
	}()
	n, derr := lz4.UncompressBlock(src, dst)
	if derr != nil || n <= 0 {
		return nil, errLZ4
	}
	return dst[:n], nil
}
