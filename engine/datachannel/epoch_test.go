package datachannel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ovpnd/ovpnd/engine/kdf"
	"github.com/ovpnd/ovpnd/internal/israce"
)

// OpenVPN 2.7.6 tests/unit_tests/openvpn/test_crypto.c: the secret of
// crypto_test_ovpn_label_expand and crypto_test_hkdf_expand_test_ovpn.
const ovpnUnitTestSecret = "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"

func TestExpandLabelVectors(t *testing.T) {
	secret := unhex(t, ovpnUnitTestSecret)
	// crypto_test_ovpn_label_expand: 16 bytes of label "unit test".
	out := make([]byte, 16)
	if err := expandLabel(secret, "unit test", out); err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "185eaa1c7f228ab8eb29773214d92046"); !bytes.Equal(out, want) {
		t.Errorf("ExpandLabel(unit test, 16) = %x, want %x", out, want)
	}
	// crypto_test_hkdf_expand_test_ovpn: its info 001b0e "ovpn unit test" 00
	// is exactly the label encoding for 27 bytes of "unit test".
	out = make([]byte, 27)
	if err := expandLabel(secret, "unit test", out); err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "875a8eec18556380b8d933ed323c2df8e8eccf4972e683f06a83ac"); !bytes.Equal(out, want) {
		t.Errorf("ExpandLabel(unit test, 27) = %x, want %x", out, want)
	}
	for _, bad := range []struct {
		secret []byte
		label  string
	}{{secret[:31], "x"}, {secret, ""}, {secret, string(make([]byte, 251))}} {
		if err := expandLabel(bad.secret, bad.label, out); err == nil {
			t.Errorf("expandLabel(%d-byte secret, %d-byte label) succeeded", len(bad.secret), len(bad.label))
		}
	}
}

// ovpnCreateKey is test_ssl.c create_key: a 32-byte pattern XORed with the
// offset across the whole key2.
func ovpnCreateKey() *kdf.KeyBlock {
	key := []byte("abcdefgh01234567ABCDEFGHjkuchenl")
	var kb kdf.KeyBlock
	for i := range kb {
		kb[i] = key[i%len(key)] ^ byte(i)
	}
	return &kb
}

// TestEpochKnownVector is test_ssl.c test_data_channel_known_vectors_epoch:
// AES-256-GCM, E_1 from key2.keys[0].cipher, the send key iterated to epoch
// 4, a 4-byte header 07 00 00 17 as additional data.
func TestEpochKnownVector(t *testing.T) {
	kb := ovpnCreateKey()
	k, err := NewKeys(KeyParams{Cipher: "AES-256-GCM", Block: kb, Client: true, PeerID: 23, Epoch: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := k.epoch.iterateSend(k.epoch.send.Load()); err != nil {
			t.Fatal(err)
		}
	}
	k.hdr = [4]byte{7, 0, 0, 23}
	plaintext := []byte("The quick little fox jumps over the bureaucratic hurdles")
	pkt := sealCopy(t, k, plaintext)

	if len(pkt) != 4+8+len(plaintext)+16 {
		t.Fatalf("packet length %d", len(pkt))
	}
	if want := []byte{7, 0, 0, 23, 0, 4, 0, 0, 0, 0, 0, 1}; !bytes.Equal(pkt[:12], want) {
		t.Errorf("header and packet id = %x, want %x", pkt[:12], want)
	}
	if want := unhex(t, "0ffff5913d39d75b18573b5748589a7d"); !bytes.Equal(pkt[len(pkt)-16:], want) {
		t.Errorf("tag = %x, want %x", pkt[len(pkt)-16:], want)
	}
	if want := unhex(t, "36aab4d49ce6"); !bytes.Equal(pkt[4+14:4+20], want) {
		t.Errorf("ciphertext bytes 14..20 after the header = %x, want %x", pkt[4+14:4+20], want)
	}

	// The peer receiving with the same E_1 finds epoch 4 among its future keys,
	// moves to it, and its own send key follows.
	srv, err := NewKeys(KeyParams{Cipher: "AES-256-GCM", Block: kb, Client: false, PeerID: 23, Epoch: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := srv.openEpoch(pkt, 4)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Errorf("opened %q", got)
	}
	if e := srv.epoch; e.cur.key.epoch != 4 || e.old.key.epoch != 1 || e.send.Load().key.epoch != 4 {
		t.Errorf("after epoch 4: receive %d, retiring %d, send %d; want 4, 1, 4", e.cur.key.epoch, e.old.key.epoch, e.send.Load().key.epoch)
	}
}

func newTestEpochState(t *testing.T) *epochState {
	t.Helper()
	// crypto_test_epoch_setup: E_1 send starts 0x23, receive 0x27.
	send, recv := make([]byte, 32), make([]byte, 32)
	send[0], recv[0] = 0x23, 0x27
	e, err := newEpochState("AES-128-GCM", send, recv, DefaultReplayWindow)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func promoteTo(t *testing.T, e *epochState, epoch uint16) {
	t.Helper()
	k, r := e.lookup(epoch)
	if k == nil || r != nil {
		t.Fatalf("epoch %d is not a future key", epoch)
	}
	if _, err := e.promote(k); err != nil {
		t.Fatal(err)
	}
}

// TestEpochKeyRotation follows test_crypto.c crypto_test_epoch_key_generation
// and crypto_test_epoch_key_rotation.
func TestEpochKeyRotation(t *testing.T) {
	e := newTestEpochState(t)
	if e.future[0].epoch != 2 || e.future[15].epoch != 17 || e.recvE.epoch != 17 || e.sendE.epoch != 1 {
		t.Fatalf("initial future keys %d..%d, receive secret %d, send %d", e.future[0].epoch, e.future[15].epoch, e.recvE.epoch, e.sendE.epoch)
	}
	promoteTo(t, e, 9)
	check := func(cur, old, send uint16) {
		t.Helper()
		if e.cur.key.epoch != cur || e.old.key.epoch != old || e.send.Load().key.epoch != send || e.sendE.epoch != send {
			t.Fatalf("receive %d retiring %d send %d/%d; want %d %d %d", e.cur.key.epoch, e.old.key.epoch, e.send.Load().key.epoch, e.sendE.epoch, cur, old, send)
		}
		for i, k := range e.future {
			if k == nil || k.epoch != cur+1+uint16(i) {
				t.Fatalf("future key %d is not epoch %d", i, cur+1+uint16(i))
			}
		}
	}
	check(9, 1, 9)
	for range 4 {
		if err := e.iterateSend(e.send.Load()); err != nil {
			t.Fatal(err)
		}
	}
	check(9, 1, 13)
	promoteTo(t, e, 10)
	check(10, 9, 13)
	promoteTo(t, e, 12)
	check(12, 10, 13)
	if err := e.iterateSend(e.send.Load()); err != nil {
		t.Fatal(err)
	}
	check(12, 10, 14)

	// A stale handle (another Seal already moved on) does not iterate again.
	st := e.send.Load()
	_ = e.iterateSend(st)
	_ = e.iterateSend(st)
	check(12, 10, 15)

	// Keys derived along different paths agree: the receive chain of one
	// side is the send chain of the other.
	other, err := newEpochState("AES-128-GCM", append([]byte{0x27}, make([]byte, 31)...), make([]byte, 32), DefaultReplayWindow)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.iterateSendTo(12); err != nil {
		t.Fatal(err)
	}
	if other.send.Load().key.iv != e.cur.key.iv {
		t.Error("epoch 12 implicit IV differs between the send and the receive chain")
	}
}

// TestEpochLookup follows crypto_test_epoch_key_receive_lookup with 16
// future keys.
func TestEpochLookup(t *testing.T) {
	e := newTestEpochState(t)
	want := func(epoch uint16, ok bool) {
		t.Helper()
		k, _ := e.lookup(epoch)
		if (k != nil) != ok || (k != nil && k.epoch != epoch) {
			t.Errorf("lookup(%d) = %v, want found=%v", epoch, k, ok)
		}
	}
	for _, ep := range []uint16{0, 18, 2000, 0xefff, 0xffff} {
		want(ep, false)
	}
	for _, ep := range []uint16{1, 2, 13, 17} {
		want(ep, true)
	}
	promoteTo(t, e, 7)
	want(1, true)
	for ep := uint16(2); ep <= 6; ep++ {
		want(ep, false)
	}
	want(7, true)
	want(23, true)
	want(24, false)
	promoteTo(t, e, 8)
	want(1, false)
	want(7, true)
	want(24, true)
	want(25, false)
	if _, r := e.lookup(7); r != e.old {
		t.Error("epoch 7 is not the retiring key")
	}
}

// TestEpochEndOfSpace follows crypto_test_epoch_key_overflow: near epoch
// 0xFFFF new epochs stop being accepted rather than deriving past the end.
func TestEpochEndOfSpace(t *testing.T) {
	e := newTestEpochState(t)
	// Jump the receive chain close to the end without 65k derivations.
	e.recvE.epoch = 0xFFFF - 30
	e.cur.key.epoch = 0xFFFF - 30
	e.future = [epochFutureKeys]*epochKey{}
	if err := e.fillFuture(); err != nil {
		t.Fatal(err)
	}
	if k, _ := e.lookup(0xFFFF - epochFutureKeys - 1); k == nil {
		t.Error("last acceptable epoch refused")
	}
	if k, _ := e.lookup(0xFFFF - epochFutureKeys); k != nil {
		t.Error("epoch whose future window passes 0xFFFF accepted")
	}
	promoteTo(t, e, 0xFFFF-epochFutureKeys-1)
	if k, _ := e.lookup(0xFFFF - epochFutureKeys); k != nil {
		t.Error("epoch past the limit accepted after moving")
	}
	if e.future[epochFutureKeys-1] == nil || e.future[epochFutureKeys-1].epoch != 0xFFFF-1 {
		t.Errorf("future window not filled up to the end of the space")
	}
}

func epochPair(t testing.TB, cipher string) (client, server *Keys) {
	return pair(t, KeyParams{Cipher: cipher, PeerID: 7, KeyID: 2, Epoch: true})
}

func TestEpochRoundTripAndRotation(t *testing.T) {
	for _, cipher := range []string{"AES-128-GCM", "AES-192-GCM", "AES-256-GCM", "CHACHA20-POLY1305"} {
		t.Run(cipher, func(t *testing.T) {
			client, server := epochPair(t, cipher)
			if got := client.Overhead(); got != 4+8+16 {
				t.Errorf("Overhead = %d", got)
			}
			if f := client.FrameOverhead(); f.Header != 4+8+16 {
				t.Errorf("FrameOverhead = %+v", f)
			}
			roundTrip := func(from, to *Keys, n int) []byte {
				t.Helper()
				pkt := sealCopy(t, from, ipv4Packet(n))
				checkHeader(t, pkt, 7, 2)
				keep := bytes.Clone(pkt)
				got, err := to.Open(pkt)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if !bytes.Equal(got, ipv4Packet(n)) {
					t.Fatal("payload mismatch")
				}
				return keep
			}
			first := roundTrip(client, server, 100)
			roundTrip(server, client, 1400)
			if binary.BigEndian.Uint64(first[4:]) != 1<<48|1 {
				t.Errorf("first packet id %x", first[4:12])
			}

			// The client's send key wears out: the server follows it and
			// moves its own send key; the client follows that in turn.
			old := roundTrip(client, server, 60)
			client.epoch.send.Load().ctr.Store(epochCounterMax)
			next := roundTrip(client, server, 60)
			if ep := binary.BigEndian.Uint16(next[4:]); ep != 2 {
				t.Fatalf("after the counter ran out the epoch is %d", ep)
			}
			if server.epoch.cur.key.epoch != 2 || server.epoch.send.Load().key.epoch != 2 {
				t.Fatalf("server receive/send epoch %d/%d", server.epoch.cur.key.epoch, server.epoch.send.Load().key.epoch)
			}
			roundTrip(server, client, 60)
			if client.epoch.cur.key.epoch != 2 {
				t.Fatalf("client receive epoch %d", client.epoch.cur.key.epoch)
			}
			// Replays are caught in the retiring and the current epoch.
			if _, err := server.Open(bytes.Clone(old)); !errors.Is(err, ErrReplay) {
				t.Errorf("replayed epoch-1 packet: %v", err)
			}
			if _, err := server.Open(bytes.Clone(next)); !errors.Is(err, ErrReplay) {
				t.Errorf("replayed epoch-2 packet: %v", err)
			}
			// Late packets of the retiring epoch still open.
			late := sealCopy(t, client, ipv4Packet(60))
			for range 3 {
				_ = client.epoch.iterateSend(client.epoch.send.Load())
			}
			roundTrip(client, server, 60) // epoch 5: 2 retires, 1 is gone
			if _, err := server.Open(late); err != nil {
				t.Errorf("late epoch-2 packet after the move to 5: %v", err)
			}
			if _, err := server.Open(bytes.Clone(first)); !errors.Is(err, ErrKeyID) {
				t.Errorf("epoch-1 packet after two moves: %v", err)
			}
		})
	}
}

// TestEpochUsageLimit follows test_ssl.c check_aead_limits: AES-GCM moves
// to a new epoch past q+s = 2^36-1, ChaCha20-Poly1305 only when the counter
// runs out; a worn receive key makes the sender move on too.
func TestEpochUsageLimit(t *testing.T) {
	for _, c := range []struct {
		cipher  string
		limited bool
	}{{"AES-256-GCM", true}, {"CHACHA20-POLY1305", false}} {
		client, _ := epochPair(t, c.cipher)
		client.epoch.send.Load().blocks.Store(1 << 40)
		pkt := sealCopy(t, client, ipv4Packet(1000))
		wantEpoch := uint16(1)
		if c.limited {
			wantEpoch = 2
		}
		if ep := binary.BigEndian.Uint16(pkt[4:]); ep != wantEpoch {
			t.Errorf("%s: epoch after the usage limit %d, want %d", c.cipher, ep, wantEpoch)
		}
		client.epoch.send.Load().ctr.Store(epochCounterMax)
		pkt = sealCopy(t, client, ipv4Packet(1000))
		if ep := binary.BigEndian.Uint16(pkt[4:]); ep != wantEpoch+1 {
			t.Errorf("%s: epoch after the counter ran out %d, want %d", c.cipher, ep, wantEpoch+1)
		}

		// Receive side: the server's current receive key is worn out.
		_, server2 := epochPair(t, c.cipher)
		c2, _ := epochPair(t, c.cipher)
		server2.epoch.cur.blocks = 1 << 40
		if _, err := server2.Open(sealCopy(t, c2, ipv4Packet(100))); err != nil {
			t.Fatal(err)
		}
		if got := server2.epoch.send.Load().key.epoch; (got == 2) != c.limited {
			t.Errorf("%s: server send epoch %d after its receive key wore out", c.cipher, got)
		}
	}
}

func TestEpochSendExhausted(t *testing.T) {
	client, _ := epochPair(t, "AES-128-GCM")
	client.nextID.Store(0xFFFFFFF0) // the classic counter plays no part
	if client.SendExhausted() {
		t.Error("exhausted at epoch 1")
	}
	if err := client.epoch.iterateSendTo(epochRenegotiate); err != nil {
		t.Fatal(err)
	}
	if !client.SendExhausted() {
		t.Error("not exhausted at epoch 0xF000")
	}
}

func TestEpochRefused(t *testing.T) {
	for _, p := range []KeyParams{
		{Cipher: "AES-256-CBC", Digest: "SHA256", PeerID: 1, Epoch: true},
		{Cipher: "none", Digest: "none", PeerID: 1, Epoch: true},
		{Cipher: "AES-256-GCM", PeerID: NoPeerID, Epoch: true},
	} {
		p.Block = testBlock()
		if _, err := NewKeys(p); err == nil {
			t.Errorf("NewKeys(%s, peer id %#x, epoch) succeeded", p.Cipher, p.PeerID)
		}
	}
}

func TestEpochHostile(t *testing.T) {
	client, server := epochPair(t, "AES-256-GCM")
	good := sealCopy(t, client, ipv4Packet(100))
	mutate := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, c := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"epoch 0", mutate(func(p []byte) []byte { p[4], p[5] = 0, 0; return p }), ErrReplay},
		{"epoch far ahead", mutate(func(p []byte) []byte { p[4], p[5] = 0x10, 0; return p }), ErrKeyID},
		{"future epoch forged", mutate(func(p []byte) []byte { p[5] = 3; return p }), ErrAuth},
		{"tag flipped", mutate(func(p []byte) []byte { p[len(p)-1] ^= 1; return p }), ErrAuth},
		{"header flipped", mutate(func(p []byte) []byte { p[3] ^= 1; return p }), ErrAuth},
		{"no payload", good[:4+8+16], ErrShort},
		{"counter 0", mutate(func(p []byte) []byte { clear(p[6:12]); return p }), ErrReplay},
	} {
		_, err := server.Open(bytes.Clone(c.pkt))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if server.epoch.cur.key.epoch != 1 {
		t.Fatalf("forged packets moved the receive epoch to %d", server.epoch.cur.key.epoch)
	}
	if _, err := server.Open(good); err != nil {
		t.Fatalf("good packet after the hostile ones: %v", err)
	}
}

func TestEpochZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	for _, cipher := range []string{"AES-256-GCM", "CHACHA20-POLY1305"} {
		t.Run(cipher, func(t *testing.T) {
			client, server := epochPair(t, cipher)
			buf := make([]byte, Headroom+1400+Tailroom)
			payload := ipv4Packet(1400)
			allocs := testing.AllocsPerRun(200, func() {
				copy(buf[Headroom:], payload)
				pkt, err := client.Seal(buf, Headroom, 1400)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := server.Open(pkt); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Seal+Open: %v allocs per packet", allocs)
			}
		})
	}
}

func TestEpochConcurrentSeal(t *testing.T) {
	client, _ := epochPair(t, "AES-128-GCM")
	const workers, per = 4, 200
	out := make(chan []byte, workers*per)
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range per {
				if w == 0 && i == per/2 {
					// Rotation racing with the other senders.
					client.epoch.send.Load().ctr.Store(epochCounterMax)
				}
				buf := make([]byte, Headroom+64+Tailroom)
				pkt, err := client.Seal(buf, Headroom, 64)
				if err != nil {
					t.Error(err)
					return
				}
				out <- pkt
			}
		}()
	}
	for range workers {
		<-done
	}
	close(out)
	seen := map[uint64]bool{}
	for pkt := range out {
		id := binary.BigEndian.Uint64(pkt[4:])
		if seen[id] {
			t.Fatalf("packet id %x used twice", id)
		}
		seen[id] = true
	}
	if !seen[2<<48|1] {
		t.Error("no packet in epoch 2 after the counter ran out")
	}
}
