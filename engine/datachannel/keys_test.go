package datachannel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/ovpnd/ovpnd/internal/israce"
	"sync"
	"testing"

	"github.com/ovpnd/ovpnd/engine/kdf"
)

func TestRoundTrip(t *testing.T) {
	payloads := map[string][]byte{
		"empty":       {},
		"one byte":    {0x45},
		"starts 0x50": append([]byte{0x50}, ipv4Packet(40)[1:]...),
		"ipv4 20":     ipv4Packet(20),
		"ipv4 1400":   ipv4Packet(1400),
		"odd 1377":    ipv4Packet(1377),
	}
	for _, c := range allCiphers {
		for _, peerID := range []uint32{NoPeerID, 0x123456} {
			for _, comp := range allCompressions {
				name := fmt.Sprintf("%s-%s/peer=%x/%v", c.cipher, c.digest, peerID, comp)
				t.Run(name, func(t *testing.T) {
					client, server := pair(t, KeyParams{Cipher: c.cipher, Digest: c.digest, KeyID: 3, PeerID: peerID, Compression: comp})
					for pname, payload := range payloads {
						for dir, ends := range [][2]*Keys{{client, server}, {server, client}} {
							pkt := sealCopy(t, ends[0], payload)
							checkHeader(t, pkt, peerID, 3)
							if extra := len(pkt) - len(payload); extra > ends[0].Overhead() {
								t.Errorf("%s dir %d: packet adds %d bytes, Overhead() = %d", pname, dir, extra, ends[0].Overhead())
							}
							got, err := ends[1].Open(pkt)
							if err != nil {
								t.Fatalf("%s dir %d: Open: %v", pname, dir, err)
							}
							if !bytes.Equal(got, payload) {
								t.Fatalf("%s dir %d: Open = %x, want %x", pname, dir, got, payload)
							}
						}
					}
					sent, recv := client.Counters()
					if sent != uint64(len(payloads)) || recv != uint64(len(payloads)) {
						t.Errorf("client counters = %d/%d, want %d/%d", sent, recv, len(payloads), len(payloads))
					}
				})
			}
		}
	}
}

func checkHeader(t *testing.T, pkt []byte, peerID uint32, keyID uint8) {
	t.Helper()
	if peerID == NoPeerID {
		if pkt[0] != opDataV1<<3|keyID {
			t.Fatalf("header byte %#x, want P_DATA_V1 key %d", pkt[0], keyID)
		}
		return
	}
	want := uint32(opDataV2<<3|keyID)<<24 | peerID
	if got := binary.BigEndian.Uint32(pkt); got != want {
		t.Fatalf("header %#08x, want %#08x", got, want)
	}
}

// TestDirections checks that the client sends with keys[0] and receives with
// keys[1] by decrypting a client packet by hand.
func TestDirections(t *testing.T) {
	kb := testBlock()
	client, _ := pair(t, KeyParams{Cipher: "AES-256-GCM", PeerID: NoPeerID, Block: kb})
	// A server built from a block with the slots swapped must not read it.
	var swapped kdf.KeyBlock
	copy(swapped[:128], kb[128:])
	copy(swapped[128:], kb[:128])
	_, wrongServer := pair(t, KeyParams{Cipher: "AES-256-GCM", PeerID: NoPeerID, Block: &swapped})
	// ...but a "client" built from the swapped block receives with the
	// original keys[0], i.e. what the real client sends with.
	mirror, _ := pair(t, KeyParams{Cipher: "AES-256-GCM", PeerID: NoPeerID, Block: &swapped})

	pkt := sealCopy(t, client, ipv4Packet(100))
	if _, err := wrongServer.Open(append([]byte(nil), pkt...)); !errors.Is(err, ErrAuth) {
		t.Fatalf("server with swapped directions: err = %v, want ErrAuth", err)
	}
	if _, err := mirror.Open(pkt); err != nil {
		t.Fatalf("receiver with keys[0]: %v", err)
	}
}

// TestKnownVectorAESGCM reproduces OpenVPN's
// tests/unit_tests/openvpn/test_ssl.c test_data_channel_known_vectors
// (non-epoch): AES-256-GCM, key2 from create_key(), both directions using
// keys[0] (KEY_DIRECTION_BIDIRECTIONAL), header bytes 07 00 00 17.
func TestKnownVectorAESGCM(t *testing.T) {
	key := []byte("abcdefgh01234567ABCDEFGHjkuchenl")
	var kb kdf.KeyBlock
	for i := range kb {
		kb[i] = key[i%len(key)] ^ byte(i)
	}
	// The client sends with keys[0]; the server receives with keys[0].
	client, server := pair(t, KeyParams{Cipher: "AES-256-GCM", PeerID: 23, Block: &kb})
	client.hdr = [4]byte{7, 0, 0, 23} // the test's opcode byte is not a real one

	plaintext := []byte("The quick little fox jumps over the bureaucratic hurdles")
	pkt := sealCopy(t, client, plaintext)

	if !bytes.Equal(pkt[:4], []byte{7, 0, 0, 23}) {
		t.Fatalf("header = %x", pkt[:4])
	}
	body := pkt[4:]
	if want := []byte{0, 0, 0, 1}; !bytes.Equal(body[:4], want) {
		t.Errorf("packet id = %x, want %x", body[:4], want)
	}
	wantTag := []byte{0x1f, 0xdd, 0x90, 0x8f, 0x0e, 0x9d, 0xc2, 0x5e, 0x79, 0xd8, 0x32, 0x02, 0x0d, 0x58, 0xe7, 0x3f}
	if !bytes.Equal(body[4:20], wantTag) {
		t.Errorf("tag = %x, want %x", body[4:20], wantTag)
	}
	wantAt30 := []byte{0xa8, 0x2e, 0x6b, 0x17, 0x06, 0xd9}
	if !bytes.Equal(body[30:36], wantAt30) {
		t.Errorf("bytes at 30 = %x, want %x", body[30:36], wantAt30)
	}

	got, err := server.openAEAD(pkt, 4)
	if err != nil {
		t.Fatalf("openAEAD: %v", err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Fatalf("decrypted %q", got)
	}
}

func TestTamper(t *testing.T) {
	for _, c := range allCiphers {
		for _, peerID := range []uint32{NoPeerID, 7} {
			t.Run(fmt.Sprintf("%s-%s/peer=%x", c.cipher, c.digest, peerID), func(t *testing.T) {
				client, server := pair(t, KeyParams{Cipher: c.cipher, Digest: c.digest, PeerID: peerID})
				if server.kind != kindAEAD && server.macLen == 0 {
					t.Skip("no authentication configured")
				}
				orig := sealCopy(t, client, ipv4Packet(300))
				hdrLen := 1
				if peerID != NoPeerID {
					hdrLen = 4
				}
				// Every byte after the header is authenticated; for AEAD
				// V2 the peer-id bytes are too (AAD).
				first := hdrLen
				if server.kind == kindAEAD && hdrLen == 4 {
					first = 1
				}
				for i := first; i < len(orig); i++ {
					pkt := append([]byte(nil), orig...)
					pkt[i] ^= 0x80
					if _, err := server.Open(pkt); !errors.Is(err, ErrAuth) {
						t.Fatalf("flipping byte %d of %d: err = %v, want ErrAuth", i, len(orig), err)
					}
				}
				// Byte 0: opcode and key id are checked explicitly.
				pkt := append([]byte(nil), orig...)
				pkt[0] ^= 0x01
				if _, err := server.Open(pkt); !errors.Is(err, ErrKeyID) {
					t.Errorf("key id flip: err = %v, want ErrKeyID", err)
				}
				pkt = append([]byte(nil), orig...)
				pkt[0] = 4<<3 | pkt[0]&7 // P_CONTROL_V1
				if _, err := server.Open(pkt); !errors.Is(err, ErrOpcode) {
					t.Errorf("control opcode: err = %v, want ErrOpcode", err)
				}
				// Every truncation fails cleanly.
				for n := 0; n < len(orig); n++ {
					pkt := append([]byte(nil), orig[:n]...)
					if _, err := server.Open(pkt); err == nil {
						t.Fatalf("truncated to %d bytes: accepted", n)
					}
				}
				// The untouched packet still opens: failures consumed nothing.
				if _, err := server.Open(append([]byte(nil), orig...)); err != nil {
					t.Fatalf("original after tampering: %v", err)
				}
			})
		}
	}
}

func TestReplayThroughKeys(t *testing.T) {
	for _, c := range []struct{ cipher, digest string }{{"AES-128-GCM", ""}, {"AES-256-CBC", "SHA256"}, {"none", "SHA1"}} {
		t.Run(c.cipher, func(t *testing.T) {
			client, server := pair(t, KeyParams{Cipher: c.cipher, Digest: c.digest, PeerID: 1})
			var pkts [][]byte
			for i := 0; i < 5; i++ {
				pkts = append(pkts, sealCopy(t, client, ipv4Packet(60)))
			}
			steps := []struct {
				idx int
				ok  bool
			}{{2, true}, {0, true}, {1, true}, {1, false}, {4, true}, {3, true}, {4, false}, {0, false}}
			for _, s := range steps {
				_, err := server.Open(append([]byte(nil), pkts[s.idx]...))
				if s.ok && err != nil {
					t.Fatalf("packet %d: %v", s.idx+1, err)
				}
				if !s.ok && !errors.Is(err, ErrReplay) {
					t.Fatalf("packet %d again: err = %v, want ErrReplay", s.idx+1, err)
				}
			}
		})
	}
}

func TestReplayWindowTooOld(t *testing.T) {
	client, server := pair(t, KeyParams{Cipher: "CHACHA20-POLY1305", PeerID: NoPeerID, ReplayWindow: 64})
	first := sealCopy(t, client, ipv4Packet(40))
	var last []byte
	for i := 0; i < 64; i++ {
		last = sealCopy(t, client, ipv4Packet(40))
	}
	if _, err := server.Open(last); err != nil { // id 65
		t.Fatal(err)
	}
	if _, err := server.Open(first); !errors.Is(err, ErrReplay) { // id 1: 64 behind
		t.Fatalf("id 64 below top: err = %v, want ErrReplay", err)
	}
}

func TestSendExhausted(t *testing.T) {
	client, server := pair(t, KeyParams{Cipher: "AES-128-GCM", PeerID: NoPeerID})
	client.nextID.Store(packetIDWrapTrigger - 2)
	if client.SendExhausted() {
		t.Fatal("exhausted one id early")
	}
	client.nextID.Store(packetIDWrapTrigger - 1)
	if !client.SendExhausted() {
		t.Fatal("next id 0xFF000000 not reported")
	}
	pkt := sealCopy(t, client, ipv4Packet(40))
	if id := binary.BigEndian.Uint32(pkt[1:]); id != packetIDWrapTrigger {
		t.Fatalf("packet id %#x", id)
	}
	if _, err := server.Open(pkt); err != nil {
		t.Fatal(err)
	}
	client.nextID.Store(0xFFFFFFFF)
	buf := make([]byte, Headroom+40+Tailroom)
	if _, err := client.Seal(buf, Headroom, 40); !errors.Is(err, ErrExhausted) {
		t.Fatalf("after id 0xFFFFFFFF: err = %v, want ErrExhausted", err)
	}
}

func TestSealBufferContract(t *testing.T) {
	client, _ := pair(t, KeyParams{Cipher: "AES-256-CBC", Digest: "SHA512", PeerID: 9, Compression: CompressLZ4V2})
	tests := []struct {
		name      string
		len, off  int
		n         int
		wantError bool
	}{
		{"exact", Headroom + 100 + Tailroom, Headroom, 100, false},
		{"headroom short", Headroom + 100 + Tailroom, Headroom - 1, 100, true},
		{"tailroom short", Headroom + 100 + Tailroom - 1, Headroom, 100, true},
		{"negative n", Headroom + Tailroom, Headroom, -1, true},
		{"too large", Headroom + MaxPayload + 1 + Tailroom, Headroom, MaxPayload + 1, true},
		{"max", Headroom + MaxPayload + Tailroom, Headroom, MaxPayload, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, tt.len)
			if tt.n > 0 {
				buf[tt.off] = 0x50 // worst case for v2 framing
			}
			_, err := client.Seal(buf, tt.off, tt.n)
			if tt.wantError != (err != nil) {
				t.Fatalf("err = %v, want error %v", err, tt.wantError)
			}
			if err != nil && !errors.Is(err, ErrBuffer) {
				t.Fatalf("err = %v, want ErrBuffer", err)
			}
		})
	}
}

func TestNewKeysErrors(t *testing.T) {
	kb := testBlock()
	tests := []struct {
		name string
		p    KeyParams
		is   error
	}{
		{"no block", KeyParams{Cipher: "AES-256-GCM"}, nil},
		{"blowfish", KeyParams{Cipher: "BF-CBC", Digest: "SHA1", Block: kb}, ErrUnsupported},
		{"unknown cipher", KeyParams{Cipher: "AES-256-CTR", Block: kb}, ErrUnsupported},
		{"unknown digest", KeyParams{Cipher: "AES-256-CBC", Digest: "MD5", Block: kb}, ErrUnsupported},
		{"key id", KeyParams{Cipher: "AES-256-GCM", Block: kb, KeyID: 8}, nil},
		{"peer id", KeyParams{Cipher: "AES-256-GCM", Block: kb, PeerID: 1 << 24}, nil},
		{"window", KeyParams{Cipher: "AES-256-GCM", Block: kb, ReplayWindow: MaxReplayWindow + 1}, nil},
		{"negative window", KeyParams{Cipher: "AES-256-GCM", Block: kb, ReplayWindow: -1}, nil},
		{"compression", KeyParams{Cipher: "AES-256-GCM", Block: kb, Compression: compressionCount}, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeys(tt.p)
			if err == nil {
				t.Fatalf("NewKeys accepted %+v", tt.p)
			}
			if k != nil {
				t.Error("non-nil Keys with error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
	// Names are case-insensitive, as in OpenVPN.
	if _, err := NewKeys(KeyParams{Cipher: "aes-256-gcm", Block: kb}); err != nil {
		t.Errorf("lower-case cipher name: %v", err)
	}
}

func TestKeyIDAndOverhead(t *testing.T) {
	tests := []struct {
		cipher, digest string
		peerID         uint32
		comp           Compression
		want           int
	}{
		{"AES-256-GCM", "", 1, CompressNone, 24},
		{"AES-256-GCM", "", NoPeerID, CompressNone, 21},
		{"CHACHA20-POLY1305", "", 1, CompressLZ4V2, 26},
		{"AES-256-GCM", "", 1, CompressStub, 25},
		{"AES-256-CBC", "SHA1", NoPeerID, CompLZO, 1 + 20 + 16 + 4 + 16 + 1},
		{"none", "SHA256", 1, CompressNone, 4 + 32 + 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%x/%v", tt.cipher, tt.peerID, tt.comp), func(t *testing.T) {
			k, err := NewKeys(KeyParams{Cipher: tt.cipher, Digest: tt.digest, Block: testBlock(), PeerID: tt.peerID, KeyID: 5, Compression: tt.comp})
			if err != nil {
				t.Fatal(err)
			}
			if got := k.Overhead(); got != tt.want {
				t.Errorf("Overhead() = %d, want %d", got, tt.want)
			}
			if k.KeyID() != 5 {
				t.Errorf("KeyID() = %d", k.KeyID())
			}
		})
	}
}

// TestConcurrentSeal seals from several goroutines and checks that every
// packet id is used once and every packet opens.
func TestConcurrentSeal(t *testing.T) {
	for _, c := range []struct{ cipher, digest string }{{"AES-256-GCM", ""}, {"AES-128-CBC", "SHA256"}} {
		t.Run(c.cipher, func(t *testing.T) {
			client, server := pair(t, KeyParams{Cipher: c.cipher, Digest: c.digest, PeerID: 2, ReplayWindow: 4096})
			const workers, each = 4, 200
			out := make([][][]byte, workers)
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						buf := make([]byte, Headroom+200+Tailroom)
						copy(buf[Headroom:], ipv4Packet(200))
						pkt, err := client.Seal(buf, Headroom, 200)
						if err != nil {
							t.Error(err)
							return
						}
						out[w] = append(out[w], pkt)
					}
				}()
			}
			wg.Wait()
			for w := range out {
				for _, pkt := range out[w] {
					if _, err := server.Open(pkt); err != nil {
						t.Fatalf("worker %d packet: %v", w, err)
					}
				}
			}
		})
	}
}

func TestZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	for _, c := range []struct{ cipher, digest string }{
		{"AES-256-GCM", ""}, {"AES-128-GCM", ""}, {"CHACHA20-POLY1305", ""}, {"AES-256-CBC", "SHA256"}, {"none", "SHA1"},
	} {
		for _, comp := range []Compression{CompressNone, CompressStub, CompressLZ4V2} {
			t.Run(fmt.Sprintf("%s/%v", c.cipher, comp), func(t *testing.T) {
				client, server := pair(t, KeyParams{Cipher: c.cipher, Digest: c.digest, PeerID: 1, Compression: comp, Rand: zeroAllocRand{}})
				buf := make([]byte, Headroom+1400+Tailroom)
				payload := ipv4Packet(1400)
				var pkt []byte
				allocs := testing.AllocsPerRun(100, func() {
					copy(buf[Headroom:], payload)
					var err error
					if pkt, err = client.Seal(buf, Headroom, 1400); err != nil {
						t.Fatal(err)
					}
				})
				if allocs != 0 {
					t.Errorf("Seal: %v allocs per packet", allocs)
				}
				allocs = testing.AllocsPerRun(100, func() {
					copy(buf[Headroom:], payload)
					pkt, _ := client.Seal(buf, Headroom, 1400)
					if _, err := server.Open(pkt); err != nil {
						t.Fatal(err)
					}
				})
				if allocs != 0 {
					t.Errorf("Seal+Open: %v allocs per packet", allocs)
				}
				_ = pkt
			})
		}
	}
}

// zeroAllocRand is a deterministic IV source for allocation tests, so the
// result does not depend on crypto/rand internals.
type zeroAllocRand struct{}

func (zeroAllocRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i * 31)
	}
	return len(p), nil
}

// TestCryptoRandNoAlloc checks the default IV source too.
func TestCryptoRandNoAlloc(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	client, _ := pair(t, KeyParams{Cipher: "AES-256-CBC", Digest: "SHA1", PeerID: NoPeerID})
	buf := make([]byte, Headroom+1400+Tailroom)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := client.Seal(buf, Headroom, 1400); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Seal with crypto/rand: %v allocs per packet", allocs)
	}
}

type failingRand struct{}

func (failingRand) Read([]byte) (int, error) { return 0, errors.New("entropy gone") }

func TestSealRandError(t *testing.T) {
	client, _ := pair(t, KeyParams{Cipher: "AES-256-CBC", Digest: "SHA1", PeerID: NoPeerID, Rand: failingRand{}})
	buf := make([]byte, Headroom+10+Tailroom)
	if _, err := client.Seal(buf, Headroom, 10); err == nil {
		t.Fatal("Seal succeeded without an IV")
	}
}

// TestCBCIVRandom: two seals of the same payload must differ (fresh IV).
func TestCBCIVRandom(t *testing.T) {
	client, _ := pair(t, KeyParams{Cipher: "AES-128-CBC", Digest: "SHA1", PeerID: NoPeerID})
	a := sealCopy(t, client, ipv4Packet(64))
	b := sealCopy(t, client, ipv4Packet(64))
	iv := func(p []byte) []byte { return p[1+20 : 1+20+16] }
	if bytes.Equal(iv(a), iv(b)) {
		t.Fatal("two packets share an IV")
	}
}

// TestMixedHeaders: a receiver accepts both P_DATA_V1 and P_DATA_V2 whatever
// it sends itself; servers may answer a V2 client with either.
func TestMixedHeaders(t *testing.T) {
	kb := testBlock()
	for _, c := range []struct{ cipher, digest string }{{"AES-256-GCM", ""}, {"AES-256-CBC", "SHA1"}} {
		t.Run(c.cipher, func(t *testing.T) {
			clientV2, err := NewKeys(KeyParams{Cipher: c.cipher, Digest: c.digest, Block: kb, Client: true, PeerID: 77})
			if err != nil {
				t.Fatal(err)
			}
			serverV1, err := NewKeys(KeyParams{Cipher: c.cipher, Digest: c.digest, Block: kb, PeerID: NoPeerID})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := clientV2.Open(sealCopy(t, serverV1, ipv4Packet(50))); err != nil {
				t.Fatalf("V2 sender opening V1 packet: %v", err)
			}
			if _, err := serverV1.Open(sealCopy(t, clientV2, ipv4Packet(50))); err != nil {
				t.Fatalf("V1 sender opening V2 packet: %v", err)
			}
		})
	}
}
