package datachannel

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/ovpnd/ovpnd/engine/kdf"
)

// testBlock returns a fixed key block whose four slots all differ, so a
// direction mix-up cannot go unnoticed.
func testBlock() *kdf.KeyBlock {
	var kb kdf.KeyBlock
	for i := range kb {
		kb[i] = byte(i*7 + 3)
	}
	return &kb
}

// pair builds matching client and server keys.
func pair(t testing.TB, p KeyParams) (client, server *Keys) {
	t.Helper()
	if p.Block == nil {
		p.Block = testBlock()
	}
	p.Client = true
	c, err := NewKeys(p)
	if err != nil {
		t.Fatalf("NewKeys(client %s/%s): %v", p.Cipher, p.Digest, err)
	}
	p.Client = false
	s, err := NewKeys(p)
	if err != nil {
		t.Fatalf("NewKeys(server %s/%s): %v", p.Cipher, p.Digest, err)
	}
	return c, s
}

// sealCopy seals a copy of payload in a fresh buffer with exact
// headroom/tailroom and returns the wire packet.
func sealCopy(t testing.TB, k *Keys, payload []byte) []byte {
	t.Helper()
	buf := make([]byte, Headroom+len(payload)+Tailroom)
	copy(buf[Headroom:], payload)
	pkt, err := k.Seal(buf, Headroom, len(payload))
	if err != nil {
		t.Fatalf("Seal(%d bytes): %v", len(payload), err)
	}
	return pkt
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// ipv4Packet is a plausible 1400-byte IPv4 packet.
func ipv4Packet(n int) []byte {
	p := bytes.Repeat([]byte{0xA5, 0x5A, 0x01, 0x02}, n/4+1)[:n]
	if n > 0 {
		p[0] = 0x45
	}
	return p
}

var allCiphers = []struct{ cipher, digest string }{
	{"AES-128-GCM", ""},
	{"AES-192-GCM", ""},
	{"AES-256-GCM", ""},
	{"CHACHA20-POLY1305", ""},
	{"AES-128-CBC", "SHA1"},
	{"AES-192-CBC", "SHA256"},
	{"AES-256-CBC", "SHA256"},
	{"AES-256-CBC", "SHA384"},
	{"AES-256-CBC", "SHA512"},
	{"AES-128-CBC", "none"},
	{"none", "SHA1"},
	{"none", "none"},
}

var allCompressions = []Compression{
	CompressNone, CompLZO, CompressStub, CompressLZ4, CompressStubV2, CompressLZ4V2, CompressLZO,
}
