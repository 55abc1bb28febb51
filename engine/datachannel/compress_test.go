package datachannel

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// LZO1X-1 vectors produced by the reference implementation: liblzo2 2.10
// (Debian 12 liblzo2-2), lzo1x_1_compress called through Python ctypes, the
// same function OpenVPN's lzo.c uses, and checked with lzo1x_decompress_safe.
var lzoVectors = []struct {
	name       string
	plain      func() []byte
	compressed string
}{
	{
		name: "http text x6",
		plain: func() []byte {
			return bytes.Repeat([]byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\n"), 6)
		},
		compressed: "0020474554202f696e6465782e68746d6c20485454502f312e310d0a486f73743a206578616d706c652e636f6d0d0a474554202f20abb0000d743a206578616d706c652e636f6d0d0a110000",
	},
	{
		name: "ipv4 icmp echo",
		plain: func() []byte {
			p := []byte{0x45, 0x00, 0x00, 0x5c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0xb5, 0xbc, 0x0a, 0x08, 0x00, 0x02,
				0x0a, 0x08, 0x00, 0x01, 0x08, 0x00, 0xf7, 0xff, 0x00, 0x01, 0x00, 0x01}
			for i := 0; i < 4; i++ {
				for b := byte(0x10); b < 0x20; b++ {
					p = append(p, b)
				}
			}
			return p
		},
		compressed: "001a4500005c1c4640004001b5bc0a0800020a0800010800f7ff00010001101112131415161718191a1b1c1d1e1f3a3c0000021c1d1e1f101112131415161718191a1b1c1d1e1f110000",
	},
	{
		// Built by hand from the LZO1X format (Linux
		// Documentation/staging/lzo.rst): a first byte 17+n copies n (4..238)
		// literals, and 0x11 0x00 0x00 is the end-of-stream M4 instruction.
		name:       "literal-only stream",
		plain:      func() []byte { return []byte("hello, lzo") },
		compressed: "1b" + "68656c6c6f2c206c7a6f" + "110000",
	},
}

func TestDecompressLZOVectors(t *testing.T) {
	for _, v := range lzoVectors {
		t.Run(v.name, func(t *testing.T) {
			want := v.plain()
			got, err := decompressLZO(unhex(t, v.compressed), make([]byte, 2000))
			if err != nil {
				t.Fatalf("decompressLZO: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %q\nwant %q", got, want)
			}
			if _, err := decompressLZO(unhex(t, v.compressed), make([]byte, len(want)-1)); !errors.Is(err, ErrDecompress) {
				t.Errorf("one byte short scratch: err = %v, want ErrDecompress", err)
			}
		})
	}
}

func lz4Block(t testing.TB, plain []byte) []byte {
	t.Helper()
	dst := make([]byte, lz4.CompressBlockBound(len(plain)))
	var c lz4.Compressor
	n, err := c.CompressBlock(plain, dst)
	if err != nil || n == 0 {
		t.Fatalf("lz4 CompressBlock: n=%d err=%v", n, err)
	}
	return dst[:n]
}

// TestOpenCompressed has a peer send already-compressed payloads (it seals
// with no framing of its own, so the bytes reach the receiver verbatim) and
// checks each framing's receive rules.
func TestOpenCompressed(t *testing.T) {
	plain := bytes.Repeat([]byte("compressible payload "), 40)
	lzo := unhex(t, lzoVectors[0].compressed)
	lzoPlain := lzoVectors[0].plain()
	lz4b := lz4Block(t, plain)
	swapped := func(head byte, body []byte) []byte {
		// swap framing: the marker replaces body[0], which moves to the end
		out := append([]byte{head}, body[1:]...)
		return append(out, body[0])
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := []struct {
		name    string
		comp    Compression
		wire    []byte // payload as the peer frames it
		want    []byte
		wantErr error
	}{
		{"comp-lzo uncompressed", CompLZO, cat([]byte{0xFA}, plain), plain, nil},
		{"comp-lzo lzo", CompLZO, cat([]byte{0x66}, lzo), lzoPlain, nil},
		{"compress lzo lzo", CompressLZO, cat([]byte{0x66}, lzo), lzoPlain, nil},
		{"comp-lzo bad byte", CompLZO, cat([]byte{0x69}, lz4b), nil, ErrFraming},
		{"comp-lzo corrupt", CompLZO, cat([]byte{0x66}, lzo[:len(lzo)-3]), nil, ErrDecompress},
		{"stub swap", CompressStub, swapped(0xFB, plain), plain, nil},
		{"stub rejects lz4", CompressStub, swapped(0x69, lz4b), nil, ErrFraming},
		{"stub rejects plain fa", CompressStub, cat([]byte{0xFA}, plain), nil, ErrFraming},
		{"lz4 swap uncompressed", CompressLZ4, swapped(0xFB, plain), plain, nil},
		{"lz4 swap compressed", CompressLZ4, swapped(0x69, lz4b), plain, nil},
		{"lz4 corrupt", CompressLZ4, swapped(0x69, lz4b[:len(lz4b)/2]), nil, ErrDecompress},
		{"stub-v2 plain", CompressStubV2, plain, plain, nil},
		{"stub-v2 escaped", CompressStubV2, cat([]byte{0x50, 0x00, 0x50}, plain), cat([]byte{0x50}, plain), nil},
		{"stub-v2 rejects lz4", CompressStubV2, cat([]byte{0x50, 0x01}, lz4b), nil, ErrFraming},
		{"stub-v2 lone indicator", CompressStubV2, []byte{0x50}, nil, ErrFraming},
		{"lz4-v2 plain", CompressLZ4V2, plain, plain, nil},
		{"lz4-v2 compressed", CompressLZ4V2, cat([]byte{0x50, 0x01}, lz4b), plain, nil},
		{"lz4-v2 unknown alg", CompressLZ4V2, cat([]byte{0x50, 0x02}, lzo), nil, ErrFraming},
		{"none passes 0x66", CompressNone, cat([]byte{0x66}, lzo), cat([]byte{0x66}, lzo), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer, _ := pair(t, KeyParams{Cipher: "AES-256-GCM", PeerID: 1, Compression: CompressNone})
			_, us := pair(t, KeyParams{Cipher: "AES-256-GCM", PeerID: 1, Compression: tt.comp})
			pkt := sealCopy(t, peer, tt.wire)
			scratch := make([]byte, 4096)
			got, err := us.OpenTo(pkt, scratch)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenTo: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestOpenCompressedWithoutScratch(t *testing.T) {
	peer, _ := pair(t, KeyParams{Cipher: "CHACHA20-POLY1305", PeerID: NoPeerID})
	_, us := pair(t, KeyParams{Cipher: "CHACHA20-POLY1305", PeerID: NoPeerID, Compression: CompLZO})
	pkt := sealCopy(t, peer, append([]byte{0x66}, unhex(t, lzoVectors[1].compressed)...))
	if _, err := us.Open(pkt); !errors.Is(err, ErrCompressed) {
		t.Fatalf("err = %v, want ErrCompressed", err)
	}
}

func TestDecompressBounded(t *testing.T) {
	plain := make([]byte, 60000)
	block := lz4Block(t, plain)
	if _, err := decompressLZ4(block, make([]byte, 1000)); !errors.Is(err, ErrDecompress) {
		t.Fatalf("small scratch: err = %v, want ErrDecompress", err)
	}
	got, err := decompressLZ4(block, make([]byte, 70000))
	if err != nil || len(got) != len(plain) {
		t.Fatalf("len %d err %v", len(got), err)
	}
	// More than 65535 bytes is never produced even with a larger scratch.
	big := lz4Block(t, make([]byte, 70000))
	if _, err := decompressLZ4(big, make([]byte, 80000)); !errors.Is(err, ErrDecompress) {
		t.Fatalf("70000-byte output: err = %v, want ErrDecompress", err)
	}
}

// TestFramingOnWire checks the bytes Seal puts around the payload, by
// opening with a receiver that has no framing configured.
func TestFramingOnWire(t *testing.T) {
	ip := ipv4Packet(30)
	esc := append([]byte{0x50}, ip[1:]...)
	tests := []struct {
		name    string
		comp    Compression
		payload []byte
		want    []byte
	}{
		{"comp-lzo", CompLZO, ip, append([]byte{0xFA}, ip...)},
		{"compress lzo", CompressLZO, ip, append([]byte{0xFA}, ip...)},
		{"stub", CompressStub, ip, append(append([]byte{0xFB}, ip[1:]...), ip[0])},
		{"lz4", CompressLZ4, ip, append(append([]byte{0xFB}, ip[1:]...), ip[0])},
		{"stub empty", CompressStub, []byte{}, []byte{}},
		{"stub-v2", CompressStubV2, ip, ip},
		{"lz4-v2 escape", CompressLZ4V2, esc, append([]byte{0x50, 0x00}, esc...)},
		{"none", CompressNone, esc, esc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			us, _ := pair(t, KeyParams{Cipher: "AES-128-GCM", PeerID: NoPeerID, Compression: tt.comp})
			_, raw := pair(t, KeyParams{Cipher: "AES-128-GCM", PeerID: NoPeerID, Compression: CompressNone})
			got, err := raw.Open(sealCopy(t, us, tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("wire payload %x, want %x", got, tt.want)
			}
		})
	}
}

func TestCompressionString(t *testing.T) {
	if CompressLZ4V2.String() != "lz4-v2" || Compression(99).String() != "Compression(99)" {
		t.Fatalf("String: %q %q", CompressLZ4V2, Compression(99))
	}
}
