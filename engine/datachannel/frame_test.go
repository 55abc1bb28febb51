package datachannel

import (
	"testing"

	"github.com/ovpnd/ovpnd/engine/kdf"
)

// TestFrameOverheadMatchesSeal checks the reported overhead against what Seal
// really produces, and against OpenVPN's figures for the common cases.
func TestFrameOverheadMatchesSeal(t *testing.T) {
	var kb kdf.KeyBlock
	for i := range kb {
		kb[i] = byte(i)
	}
	for _, tc := range []struct {
		name           string
		cipher, digest string
		peerID         uint32
		comp           Compression
		want           FrameOverhead
	}{
		{"gcm v2", "AES-256-GCM", "", 1, CompressNone, FrameOverhead{Header: 24}},
		{"gcm v1", "AES-128-GCM", "", NoPeerID, CompressNone, FrameOverhead{Header: 21}},
		{"chacha lzo", "CHACHA20-POLY1305", "", 3, CompLZO, FrameOverhead{Header: 24, Payload: 1}},
		{"gcm stub-v2", "AES-256-GCM", "", 3, CompressStubV2, FrameOverhead{Header: 24}},
		{"gcm stub", "AES-256-GCM", "", 3, CompressStub, FrameOverhead{Header: 24, Payload: 1}},
		{"cbc sha1 v1", "AES-256-CBC", "SHA1", NoPeerID, CompressNone, FrameOverhead{Header: 37, Payload: 4, Block: 16}},
		{"cbc sha256 v2", "AES-128-CBC", "SHA256", 0, CompressNone, FrameOverhead{Header: 52, Payload: 4, Block: 16}},
		{"none sha1", "none", "SHA1", NoPeerID, CompressNone, FrameOverhead{Header: 25}},
		{"none none", "none", "none", NoPeerID, CompressNone, FrameOverhead{Header: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeys(KeyParams{Cipher: tc.cipher, Digest: tc.digest, Block: &kb, Client: true, PeerID: tc.peerID, Compression: tc.comp})
			if err != nil {
				t.Fatal(err)
			}
			f := k.FrameOverhead()
			if f != tc.want {
				t.Fatalf("FrameOverhead = %+v, want %+v", f, tc.want)
			}
			for _, n := range []int{20, 100, 1399, 1400, 1401} {
				buf := make([]byte, Headroom+n+Tailroom)
				buf[Headroom] = 0x45 // an IPv4 first byte: no v2 escape
				pkt, err := k.Seal(buf, Headroom, n)
				if err != nil {
					t.Fatal(err)
				}
				want := f.Header + f.Payload + n
				if f.Block > 0 {
					want = f.Header + ((f.Payload+n)/f.Block+1)*f.Block
				}
				if len(pkt) != want {
					t.Errorf("payload %d: sealed %d bytes, overhead predicts %d", n, len(pkt), want)
				}
			}
		})
	}
}
