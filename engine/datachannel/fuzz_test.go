package datachannel

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzOpen feeds arbitrary packets to receivers of every kind. With
// cipher none and no digest the fuzzer controls the whole plaintext, which
// drives the replay window and all compression unframing paths.
func FuzzOpen(f *testing.F) {
	configs := []KeyParams{
		{Cipher: "AES-256-GCM", PeerID: 5, Compression: CompressLZ4V2},
		{Cipher: "CHACHA20-POLY1305", PeerID: NoPeerID, Compression: CompLZO},
		{Cipher: "AES-128-CBC", Digest: "SHA1", PeerID: 5, Compression: CompressLZ4},
		{Cipher: "none", Digest: "none", PeerID: NoPeerID, Compression: CompLZO},
		{Cipher: "none", Digest: "none", PeerID: 5, Compression: CompressLZ4},
		{Cipher: "none", Digest: "none", PeerID: 5, Compression: CompressLZ4V2},
	}
	for _, p := range configs {
		client, _ := pair(f, p)
		f.Add(sealCopy(f, client, ipv4Packet(60)))
		f.Add(sealCopy(f, client, nil))
	}
	f.Add([]byte{0x30, 0, 0, 0, 1, 0x66, 0x1b, 'h', 'e', 'l', 'l', 'o', ',', ' ', 'l', 'z', 'o', 0x11, 0, 0})
	f.Add([]byte{0x48, 0, 0, 5, 0, 0, 0, 1, 0x50, 0x01, 0x10, 'x'})
	f.Add([]byte{})

	servers := make([]*Keys, len(configs))
	for i, p := range configs {
		_, servers[i] = pair(f, p)
	}
	scratch := make([]byte, 2048)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for i, p := range configs {
			server := servers[i]
			// Fresh receive state per input keeps runs reproducible.
			server.replay = newReplayWindow(DefaultReplayWindow)
			for _, withScratch := range []bool{false, true} {
				in := append([]byte(nil), pkt...)
				var got []byte
				var err error
				if withScratch {
					got, err = server.OpenTo(in, scratch)
				} else {
					got, err = server.Open(in)
				}
				if err != nil {
					continue
				}
				if len(got) > len(pkt) && !withScratch {
					t.Fatalf("%s: payload longer than packet without decompression", p.Cipher)
				}
				if len(got) > len(scratch) && len(got) > len(pkt) {
					t.Fatalf("%s: payload of %d bytes exceeds its buffers", p.Cipher, len(got))
				}
			}
		}
	})
}

// FuzzRoundTrip seals arbitrary payloads under every framing and requires
// them back unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20}, uint8(0))
	f.Add([]byte{0x50}, uint8(5))
	f.Add([]byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, payload []byte, sel uint8) {
		if len(payload) > MaxPayload {
			return
		}
		comp := allCompressions[int(sel)%len(allCompressions)]
		c := allCiphers[int(sel/8)%len(allCiphers)]
		client, server := pair(t, KeyParams{Cipher: c.cipher, Digest: c.digest, PeerID: 3, Compression: comp})
		got, err := server.Open(sealCopy(t, client, payload))
		if err != nil {
			t.Fatalf("%s/%v: %v", c.cipher, comp, err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("%s/%v: got %x want %x", c.cipher, comp, got, payload)
		}
	})
}

func FuzzParseOCC(f *testing.F) {
	f.Add(AppendOCCExit(nil))
	f.Add(append(OCCMagic[:], OCCReply, 'V', '4', 0))
	f.Add(PingPayload[:])
	f.Fuzz(func(t *testing.T, p []byte) {
		op, body, ok := ParseOCC(p)
		if !ok {
			return
		}
		if len(p) != len(OCCMagic)+1+len(body) || p[len(OCCMagic)] != op {
			t.Fatalf("inconsistent parse: op %d body %d of %d", op, len(body), len(p))
		}
	})
}

func FuzzDecompressLZO(f *testing.F) {
	for _, v := range lzoVectors {
		f.Add(unhex(f, v.compressed))
	}
	f.Add([]byte{0x11, 0, 0})
	f.Add([]byte{0x00, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, src []byte) {
		scratch := make([]byte, 1500)
		out, err := decompressLZO(src, scratch)
		if err != nil {
			if !errors.Is(err, ErrDecompress) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if len(out) > len(scratch) {
			t.Fatalf("output %d beyond scratch", len(out))
		}
	})
}

func FuzzDecompressLZ4(f *testing.F) {
	f.Add(lz4Block(f, bytes.Repeat([]byte("abcd"), 100)))
	f.Add(lz4Block(f, ipv4Packet(1400)))
	f.Add([]byte{0xf0, 0xff, 0xff, 0x00})
	f.Fuzz(func(t *testing.T, src []byte) {
		scratch := make([]byte, 1500)
		out, err := decompressLZ4(src, scratch)
		if err != nil {
			if !errors.Is(err, ErrDecompress) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if len(out) > len(scratch) || len(out) == 0 {
			t.Fatalf("output of %d bytes", len(out))
		}
	})
}

// FuzzUnframe drives the framing parser directly for every mode.
func FuzzUnframe(f *testing.F) {
	f.Add([]byte{0xFA, 1, 2}, uint8(1))
	f.Add([]byte{0xFB, 2, 1}, uint8(2))
	f.Add([]byte{0x50, 0x00, 0x50}, uint8(4))
	f.Add([]byte{0x50, 0x01, 0x10, 'a'}, uint8(5))
	f.Fuzz(func(t *testing.T, p []byte, sel uint8) {
		comp := allCompressions[int(sel)%len(allCompressions)]
		in := append([]byte(nil), p...)
		out, err := comp.unframe(in, make([]byte, 512))
		if err == nil && len(out) > len(p) && len(out) > 512 {
			t.Fatalf("%v: output %d bytes", comp, len(out))
		}
	})
}

// FuzzOpenEpoch feeds arbitrary packets to the epoch format's receiver, which
// parses the 64-bit packet id, picks a key by epoch and may move its
// receive (and send) epochs forward. Seeds are real packets from epochs 1
// and 3 and near misses.
func FuzzOpenEpoch(f *testing.F) {
	p := KeyParams{Cipher: "AES-256-GCM", PeerID: 5, Compression: CompressStubV2, Epoch: true}
	client, _ := pair(f, p)
	f.Add(sealCopy(f, client, ipv4Packet(60)))
	f.Add(sealCopy(f, client, []byte{0x50, 1, 2}))
	if err := client.epoch.iterateSendTo(3); err != nil {
		f.Fatal(err)
	}
	p3 := sealCopy(f, client, ipv4Packet(20))
	f.Add(p3)
	f.Add(p3[:4+8+16])
	f.Add([]byte{0x48, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0x42})
	f.Add([]byte{0x48, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		p.Client = false
		p.Block = testBlock()
		server, err := NewKeys(p)
		if err != nil {
			t.Fatal(err)
		}
		in := bytes.Clone(pkt)
		got, err := server.Open(in)
		e := server.epoch
		if e.cur.key.epoch < 1 || e.send.Load().key.epoch < e.cur.key.epoch {
			t.Fatalf("receive epoch %d, send epoch %d", e.cur.key.epoch, e.send.Load().key.epoch)
		}
		if err != nil {
			if e.cur.key.epoch != 1 {
				t.Fatalf("a rejected packet moved the receive epoch to %d", e.cur.key.epoch)
			}
			return
		}
		if len(got) > len(pkt) {
			t.Fatalf("payload of %d bytes from a %d-byte packet", len(got), len(pkt))
		}
	})
}
