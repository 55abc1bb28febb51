package session

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/kdf"
	"github.com/ovpnd/ovpnd/internal/israce"
)

// realKeyPair returns client and server datachannel keys for one cipher.
func realKeyPair(t testing.TB, cipher, digest string) (client, server *datachannel.Keys) {
	return realKeyPairEpoch(t, cipher, digest, false)
}

// realKeyPairEpoch is realKeyPair, optionally in OpenVPN 2.7's epoch data format.
func realKeyPairEpoch(t testing.TB, cipher, digest string, epoch bool) (client, server *datachannel.Keys) {
	t.Helper()
	var kb kdf.KeyBlock
	for i := range kb {
		kb[i] = byte(i*7 + 3)
	}
	mk := func(isClient bool) *datachannel.Keys {
		k, err := datachannel.NewKeys(datachannel.KeyParams{Cipher: cipher, Digest: digest, Block: &kb, Client: isClient, KeyID: 1, PeerID: 7, Epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	return mk(true), mk(false)
}

// TestDataPathRealCiphers runs the tun-to-socket loop with the real data-channel
// ciphers and opens the result with the server's keys.
func TestDataPathRealCiphers(t *testing.T) {
	for _, c := range []struct {
		cipher, digest string
		epoch          bool
	}{
		{"AES-256-GCM", "", false},
		{"CHACHA20-POLY1305", "", false},
		{"AES-256-CBC", "SHA256", false},
		{"AES-128-CBC", "SHA1", false},
		{"AES-256-GCM", "", true},
		{"CHACHA20-POLY1305", "", true},
	} {
		t.Run(fmt.Sprintf("%s%s/epoch=%v", c.cipher, c.digest, c.epoch), func(t *testing.T) {
			ck, sk := realKeyPairEpoch(t, c.cipher, c.digest, c.epoch)
			var pkts [][]byte
			for _, size := range []int{1, 20, 15, 16, 17, 100, 1399, 1400, 1450, 1500} {
				p := make([]byte, size)
				for i := range p {
					p[i] = byte(i + size)
				}
				pkts = append(pkts, p)
			}
			tn := &fakeTun{in: pkts, consume: true}
			fc := &fakeConn{record: true}
			d, _, _ := newTestPath(t, tn, fc)
			d2 := newDataPath(tn, &counters{}, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 1500}, func(string, ...any) {})
			d2.conn.Store(d.conn.Load())
			d2.setKeys(&keySet{primary: ck})
			n, err := tn.Read(d2.tx.bufs, d2.tx.sizes, d2.txOff)
			if err != nil {
				t.Fatal(err)
			}
			d2.sealAndSend(n)
			if len(fc.sent) != len(pkts) {
				t.Fatalf("sent %d of %d", len(fc.sent), len(pkts))
			}
			for i, w := range fc.sent {
				got, err := sk.Open(append([]byte(nil), w...))
				if err != nil {
					t.Fatalf("packet %d (%d bytes): %v", i, len(pkts[i]), err)
				}
				if !bytes.Equal(got, pkts[i]) {
					t.Fatalf("packet %d differs", i)
				}
			}
		})
	}
}

// TestDataPathZeroAllocsEpoch: sealing batches with real epoch-format keys allocates nothing.
func TestDataPathZeroAllocsEpoch(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	ck, _ := realKeyPairEpoch(t, "AES-256-GCM", "", true)
	tn := &fakeTun{in: testPackets(maxBatch, 1400)}
	d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 1500}, func(string, ...any) {})
	d.conn.Store(&connRef{conn: &fakeConn{}})
	d.setKeys(&keySet{primary: ck})
	n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
	if a := testing.AllocsPerRun(50, func() { d.sealAndSend(n) }); a != 0 {
		t.Errorf("sealAndSend with epoch keys: %v allocs per batch, want 0", a)
	}
}

func BenchmarkSealRealAES256GCM(b *testing.B) {
	ck, _ := realKeyPair(b, "AES-256-GCM", "")
	for _, size := range []int{1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			pkts := testPackets(maxBatch, size)
			tn := &fakeTun{in: pkts}
			fc := &fakeConn{}
			d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 1500}, func(string, ...any) {})
			d.conn.Store(&connRef{conn: fc})
			d.setKeys(&keySet{primary: ck})
			n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
			b.ReportAllocs()
			b.SetBytes(int64(size * n))
			for b.Loop() {
				d.sealAndSend(n)
			}
		})
	}
}

// TestCompressedFromServer: with comp-lzo framing a server's LZO packet is decompressed,
// unless the profile says allow-compression no, when it is dropped.
func TestCompressedFromServer(t *testing.T) {
	ip := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 64, 17, 0, 0, 10, 8, 0, 1, 10, 8, 0, 2}
	// 0x66 is comp-lzo's "LZO follows" byte; the LZO1X stream is one literal run (first byte
	// 17+length) and the end marker 0x11 0x00 0x00.
	lzo := append(append([]byte{0x66, byte(17 + len(ip))}, ip...), 0x11, 0, 0)

	var kb kdf.KeyBlock
	for i := range kb {
		kb[i] = byte(i*5 + 1)
	}
	mk := func(client bool, comp datachannel.Compression) *datachannel.Keys {
		k, err := datachannel.NewKeys(datachannel.KeyParams{Cipher: "AES-256-GCM", Block: &kb, Client: client, KeyID: 1, PeerID: 7, Compression: comp})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// The "server" seals the framed payload as is, so it needs no framing of its own.
	server := mk(false, datachannel.CompressNone)
	buf := make([]byte, datachannel.Headroom+len(lzo)+datachannel.Tailroom)
	copy(buf[datachannel.Headroom:], lzo)
	pkt, err := server.Seal(buf, datachannel.Headroom, len(lzo))
	if err != nil {
		t.Fatal(err)
	}

	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse=%v", refuse), func(t *testing.T) {
			tn := &fakeTun{record: true}
			c := &fakeConn{in: [][]byte{append([]byte(nil), pkt...), {}}}
			d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 1500, RefuseCompressed: refuse}, func(string, ...any) {})
			ref := &connRef{conn: c, ctrl: make(chan *ctrlPacket, 1), errc: make(chan error, 1)}
			d.conn.Store(ref)
			d.setKeys(&keySet{primary: mk(true, datachannel.CompLZO)})
			d.RoutineSocketToTun(ref)
			if refuse {
				if len(tn.written) != 0 {
					t.Errorf("compressed packet delivered despite allow-compression no: %x", tn.written)
				}
				return
			}
			if len(tn.written) != 1 || !bytes.Equal(tn.written[0], ip) {
				t.Errorf("tun got %x, want %x", tn.written, ip)
			}
		})
	}
}

// TestDropCounters: each reason a received data packet is dropped has its own counter, and the
// next key of a rekey reports its first packet to the control loop.
func TestDropCounters(t *testing.T) {
	ck, sk := realKeyPair(t, "AES-256-GCM", "")
	seal := func(n int) []byte {
		buf := make([]byte, datachannel.Headroom+n+datachannel.Tailroom)
		p := buf[datachannel.Headroom : datachannel.Headroom+n]
		p[0] = 0x45
		pkt, err := sk.Seal(buf, datachannel.Headroom, n)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), pkt...)
	}
	good, later := seal(40), seal(40)
	forged := append([]byte(nil), later...)
	forged[len(forged)-1] ^= 1
	otherKey := append([]byte(nil), good...)
	otherKey[0] = otherKey[0]&^7 | 5 // P_DATA_V2 for key id 5, which has no keys
	tn := &fakeTun{record: true}
	c := &fakeConn{in: [][]byte{good, append([]byte(nil), good...), forged, otherKey, later, {}}}
	cnt := &counters{}
	d := newDataPath(tn, cnt, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 1500}, func(string, ...any) {})
	ref := &connRef{conn: c, ctrl: make(chan *ctrlPacket, 1), errc: make(chan error, 1)}
	d.conn.Store(ref)
	d.setKeys(&keySet{primary: &fakeKeys{id: 0}, retiring: ck, nextUsed: new(atomic.Bool)})
	d.RoutineSocketToTun(ref)
	s := cnt.snapshot()
	if len(tn.written) != 2 || s.Replayed != 1 || s.DecryptFailed != 1 || s.NoKey != 1 || s.Oversized != 0 || s.DecryptErrors != 2 || s.Dropped != 1 {
		t.Errorf("delivered %d, counters %+v; want 2 delivered, 1 replayed, 1 failed, 1 without a key", len(tn.written), s)
	}
	if !d.nextKeyUsed() {
		t.Error("a packet opened under the next key was not reported")
	}
	select {
	case <-d.keyUsed:
	default:
		t.Error("the control loop was not woken for the next key's first packet")
	}
}
