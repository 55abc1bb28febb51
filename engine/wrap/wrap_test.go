package wrap

import (
	"bytes"
	"crypto/rand"
	"errors"
	"github.com/ovpnd/ovpnd/internal/israce"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wire"
)

func pktKey(t testing.TB) *statickey.Key {
	t.Helper()
	k, err := statickey.ParseStaticKey([]byte(testPktStaticKey))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// must keeps multi-value calls on one line; a panic fails the test with the
// error and a stack trace pointing at the call.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var t0 = time.Unix(1700000000, 0)

func TestTLSAuthGolden(t *testing.T) {
	key := pktKey(t)
	tests := []struct {
		name string
		pkt  []byte
		now  time.Time
		want wire.ControlPacket
		id   uint32
	}{
		{"client_reset_v2_tls_auth", vecResetV2TLSAuth, time.Unix(0x61d3bf6c, 0), wire.ControlPacket{
			Opcode:    wire.OpHardResetClientV2,
			SessionID: wire.SessionID{0xde, 0x69, 0x4c, 0x5c, 0x7b, 0xfb, 0xa2, 0x74},
		}, 1},
		{"client_ack_tls_auth_randomid", vecControlTLSAuth, time.Unix(0x61d3ff53, 0), wire.ControlPacket{
			Opcode:    wire.OpControlV1,
			SessionID: wire.SessionID{0x14, 0x01, 0x4e, 0xbc, 0x80, 0xc6, 0x14, 0x2b},
			MessageID: 1,
			// op, sid, SHA1 HMAC, packet id, ack count 0, message id.
			Payload: vecControlTLSAuth[1+8+20+8+1+4:],
		}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// OpenVPN's test validates the client's packet as a server with
			// key-direction 0.
			server := must(NewTLSAuth(key, 0, "SHA1"))
			got, err := server.Unwrap(tc.pkt, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
			if !bytes.HasPrefix(got.Payload, []byte{0x16, 0x03, 0x01}) && len(got.Payload) > 0 {
				t.Error("payload is not a TLS handshake record")
			}
			// The client (key-direction 1) reproduces OpenVPN's bytes.
			client := must(NewTLSAuth(key, 1, "sha1")).(*tlsAuth)
			client.sender = sender{started: true, id: tc.id - 1, time: uint32(tc.now.Unix())}
			enc, err := client.Wrap(nil, &tc.want, tc.now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, tc.pkt) {
				t.Errorf("Wrap\n got %x\nwant %x", enc, tc.pkt)
			}
			// The wrong direction is the wrong key.
			wrong := must(NewTLSAuth(key, 1, "SHA1"))
			if _, err := wrong.Unwrap(tc.pkt, tc.now); !errors.Is(err, ErrAuth) {
				t.Errorf("inverse direction: %v, want ErrAuth", err)
			}
		})
	}
}

func TestTLSCryptGolden(t *testing.T) {
	key := pktKey(t)
	now := time.Unix(0x61d3f8e1, 0)
	server := must(NewTLSCrypt(key, false))
	got, err := server.Unwrap(vecResetV2TLSCrypt, now)
	if err != nil {
		t.Fatal(err)
	}
	want := wire.ControlPacket{
		Opcode:    wire.OpHardResetClientV2,
		SessionID: wire.SessionID{0xf4, 0x19, 0xcb, 0x12, 0xd1, 0xf9, 0xe4, 0x8f},
	}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	client := must(NewTLSCrypt(key, true))
	enc, err := client.Wrap([]byte{0xaa}, &want, now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc[1:], vecResetV2TLSCrypt) || enc[0] != 0xaa {
		t.Errorf("Wrap\n got %x\nwant aa%x", enc, vecResetV2TLSCrypt)
	}
	// A client must not accept its own direction.
	if _, err := must(NewTLSCrypt(key, true)).Unwrap(vecResetV2TLSCrypt, now); !errors.Is(err, ErrAuth) {
		t.Errorf("client unwrapping client packet: %v, want ErrAuth", err)
	}
	// tls-auth and plain packets are not tls-crypt packets (test_pkt.c).
	for _, p := range [][]byte{vecResetV2TLSAuth, vecControlTLSAuth} {
		if _, err := must(NewTLSCrypt(key, false)).Unwrap(p, now); err == nil {
			t.Error("tls-crypt accepted a tls-auth packet")
		}
	}
}

func TestDynamicTLSCryptGolden(t *testing.T) {
	ekm := bytes.Repeat([]byte{0xba}, statickey.KeySize)
	seal := func(w Wrapper) []byte {
		tc := w.(*tlsCrypt)
		buf := make([]byte, packetIDLen+tagLen, packetIDLen+tagLen+10)
		id, ts, err := tc.sender.next(time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		appendPacketID(buf[:0], id, ts)
		buf = append(buf, "1234567890"...)
		tc.ctr.seal(&tc.send, buf[:packetIDLen], buf[packetIDLen:packetIDLen+tagLen], buf[packetIDLen+tagLen:])
		return buf
	}
	var zero statickey.Key
	tests := []struct {
		name     string
		original *statickey.Key
		same     bool
	}{
		{"no-original", nil, true},
		{"zero-original", &zero, true},
		{"0x42-original", must(statickey.FromBytes(bytes.Repeat([]byte{0x42}, 256))), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := seal(must(NewDynamicTLSCrypt(ekm, tc.original, true)))
			if tc.same != bytes.Equal(got, vecDynamicTLSCrypt) {
				t.Errorf("got %x\nOpenVPN %x\nwant equal=%v", got, vecDynamicTLSCrypt, tc.same)
			}
			if !bytes.Equal(got[:8], vecDynamicTLSCrypt[:8]) {
				t.Error("packet id differs")
			}
		})
	}
	if _, err := NewDynamicTLSCrypt(ekm[:255], nil, true); err == nil {
		t.Error("short EKM accepted")
	}
}

// pair returns a client and server Wrapper that talk to each other.
type pairFunc func(t testing.TB) (client, server Wrapper)

func wrapperPairs() []struct {
	name string
	pair pairFunc
} {
	return []struct {
		name string
		pair pairFunc
	}{
		{"none", func(t testing.TB) (Wrapper, Wrapper) { return NewNone(), NewNone() }},
		{"tls-auth-sha1", func(t testing.TB) (Wrapper, Wrapper) {
			return must(NewTLSAuth(pktKey(t), 1, "SHA1")), must(NewTLSAuth(pktKey(t), 0, "SHA1"))
		}},
		{"tls-auth-nodir-sha512", func(t testing.TB) (Wrapper, Wrapper) {
			return must(NewTLSAuth(pktKey(t), -1, "SHA512")), must(NewTLSAuth(pktKey(t), -1, "sha512"))
		}},
		{"tls-crypt", func(t testing.TB) (Wrapper, Wrapper) {
			return must(NewTLSCrypt(pktKey(t), true)), must(NewTLSCrypt(pktKey(t), false))
		}},
		{"tls-crypt-v2", func(t testing.TB) (Wrapper, Wrapper) {
			ck := must(statickey.ParseTLSCryptV2Client([]byte(testV2ClientKey)))
			sk := must(statickey.ParseTLSCryptV2Server([]byte(testV2ServerKey)))
			return must(NewTLSCryptV2Client(ck)), must(NewTLSCryptV2Server(sk))
		}},
	}
}

func testPackets() []wire.ControlPacket {
	sid := wire.SessionID{1, 2, 3, 4, 5, 6, 7, 8}
	rsid := wire.SessionID{8, 7, 6, 5, 4, 3, 2, 1}
	return []wire.ControlPacket{
		{Opcode: wire.OpHardResetClientV3, SessionID: sid},
		{Opcode: wire.OpControlWKCV1, SessionID: sid, Acks: []uint32{0}, RemoteSessionID: rsid, MessageID: 1, Payload: []byte{0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5}},
		{Opcode: wire.OpAckV1, SessionID: sid, Acks: []uint32{1, 2, 3, 4, 5, 6, 7, 8}, RemoteSessionID: rsid},
		{Opcode: wire.OpControlV1, KeyID: 0, SessionID: sid, MessageID: 2, Payload: bytes.Repeat([]byte{0x17}, 1250)},
		{Opcode: wire.OpSoftResetV1, KeyID: 1, SessionID: sid, Acks: []uint32{9}, RemoteSessionID: rsid, MessageID: 3},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, wp := range wrapperPairs() {
		t.Run(wp.name, func(t *testing.T) {
			client, server := wp.pair(t)
			now := t0
			for i, p := range testPackets() {
				now = now.Add(time.Second)
				enc, err := client.Wrap(nil, &p, now)
				if err != nil {
					t.Fatal(err)
				}
				plainLen := len(p.AppendPlain(nil))
				extra := len(enc) - plainLen
				wantExtra := client.Overhead()
				if v2, ok := client.(*tlsCryptV2Client); ok && !carriesWKc(p.Opcode) {
					wantExtra -= len(v2.wkc)
				}
				if extra != wantExtra {
					t.Errorf("packet %d: wrapping added %d bytes, Overhead says %d", i, extra, wantExtra)
				}
				got, err := server.Unwrap(enc, now)
				if err != nil {
					t.Fatalf("packet %d (%v): %v", i, p.Opcode, err)
				}
				if d := cmp.Diff(p, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("packet %d (-want +got)\n%s", i, d)
				}
				// And back from the server, for opcodes a server may send.
				if carriesWKc(p.Opcode) {
					continue
				}
				enc, err = server.Wrap(enc[:0], &p, now)
				if err != nil {
					t.Fatal(err)
				}
				got, err = client.Unwrap(enc, now)
				if err != nil {
					t.Fatalf("server packet %d (%v): %v", i, p.Opcode, err)
				}
				if d := cmp.Diff(p, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("server packet %d (-want +got)\n%s", i, d)
				}
			}
		})
	}
}

func TestWrapRejectsMalformed(t *testing.T) {
	bad := []struct {
		name string
		p    wire.ControlPacket
	}{
		{"data-opcode", wire.ControlPacket{Opcode: wire.OpDataV2}},
		{"unknown-opcode", wire.ControlPacket{Opcode: 1}},
		{"key-id", wire.ControlPacket{Opcode: wire.OpControlV1, KeyID: 8}},
		{"nine-acks", wire.ControlPacket{Opcode: wire.OpControlV1, Acks: make([]uint32, 9)}},
		{"empty-ack", wire.ControlPacket{Opcode: wire.OpAckV1}},
		{"ack-payload", wire.ControlPacket{Opcode: wire.OpAckV1, Acks: []uint32{1}, Payload: []byte{1}}},
	}
	for _, wp := range wrapperPairs() {
		client, _ := wp.pair(t)
		for _, b := range bad {
			t.Run(wp.name+"/"+b.name, func(t *testing.T) {
				dst := []byte("keep")
				out, err := client.Wrap(dst, &b.p, t0)
				if err == nil {
					t.Fatal("Wrap succeeded")
				}
				if string(out) != "keep" {
					t.Errorf("dst changed to %q", out)
				}
			})
		}
	}
}

// TestTamper changes every byte of wrapped packets (flipping its low and high
// bit, and setting it to 0x23 as OpenVPN's test does), truncates and extends
// them, and requires each copy to be rejected.
func TestTamper(t *testing.T) {
	for _, wp := range wrapperPairs() {
		if wp.name == "none" {
			continue
		}
		t.Run(wp.name, func(t *testing.T) {
			client, _ := wp.pair(t)
			for _, p := range testPackets()[:2] {
				enc, err := client.Wrap(nil, &p, t0)
				if err != nil {
					t.Fatal(err)
				}
				for i := range enc {
					for _, mut := range []func(byte) byte{
						func(b byte) byte { return b ^ 0x01 },
						func(b byte) byte { return b ^ 0x80 },
						func(b byte) byte { return 0x23 },
					} {
						c := bytes.Clone(enc)
						c[i] = mut(c[i])
						if c[i] == enc[i] {
							continue
						}
						_, server := wp.pair(t)
						if _, err := server.Unwrap(c, t0); err == nil {
							t.Fatalf("%v: changing byte %d of %d was not detected", p.Opcode, i, len(enc))
						}
					}
				}
				// Truncations and extensions too.
				for n := 0; n < len(enc); n++ {
					_, server := wp.pair(t)
					if _, err := server.Unwrap(enc[:n], t0); err == nil {
						t.Fatalf("%v: truncation to %d bytes accepted", p.Opcode, n)
					}
				}
				_, server := wp.pair(t)
				if _, err := server.Unwrap(append(bytes.Clone(enc), 0), t0); err == nil {
					t.Fatalf("%v: appended byte accepted", p.Opcode)
				}
			}
		})
	}
}

func TestTLSCryptGoldenTamper(t *testing.T) {
	key := pktKey(t)
	for i := range vecResetV2TLSCrypt {
		c := bytes.Clone(vecResetV2TLSCrypt)
		c[i] = 0x23
		if _, err := must(NewTLSCrypt(key, false)).Unwrap(c, t0); err == nil {
			t.Errorf("byte %d set to 0x23 accepted", i)
		}
	}
	for i := range vecResetV2TLSAuth {
		c := bytes.Clone(vecResetV2TLSAuth)
		c[i] ^= 0x10
		if _, err := must(NewTLSAuth(key, 0, "SHA1")).Unwrap(c, t0); err == nil {
			t.Errorf("tls-auth: flipped byte %d accepted", i)
		}
	}
}

func TestReplay(t *testing.T) {
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}, MessageID: 1, Payload: []byte("x")}
	for _, wp := range wrapperPairs() {
		if wp.name == "none" {
			continue
		}
		t.Run(wp.name, func(t *testing.T) {
			client, server := wp.pair(t)
			// tls-crypt-v2 servers learn the key from the first packet.
			first := p
			first.Opcode = wire.OpHardResetClientV3
			if _, ok := client.(*tlsCryptV2Client); !ok {
				first.Opcode = wire.OpHardResetClientV2
			}
			enc := must(client.Wrap(nil, &first, t0))
			must(acceptUnwrap(server, enc, t0))
			if _, err := acceptUnwrap(server, enc, t0); !errors.Is(err, ErrReplay) {
				t.Fatalf("first packet replayed: %v, want ErrReplay", err)
			}
			var pkts [][]byte
			for i := 0; i < ReplayWindow+2; i++ {
				pkts = append(pkts, must(client.Wrap(nil, &p, t0)))
			}
			// Newest first, then older ones out of order: all fine within
			// the window, then each is a replay.
			n := len(pkts) - 1
			must(acceptUnwrap(server, pkts[n], t0))
			for i := n - 1; i >= n-ReplayWindow+1; i-- {
				if _, err := acceptUnwrap(server, pkts[i], t0.Add(time.Second)); err != nil {
					t.Fatalf("out-of-order packet %d: %v", i, err)
				}
			}
			for _, i := range []int{n, n - 1, n - ReplayWindow + 1} {
				if _, err := acceptUnwrap(server, pkts[i], t0); !errors.Is(err, ErrReplay) {
					t.Errorf("replayed packet %d: %v, want ErrReplay", i, err)
				}
			}
			// One below the window is too old, never seen or not.
			if _, err := acceptUnwrap(server, pkts[n-ReplayWindow], t0); !errors.Is(err, ErrReplay) {
				t.Errorf("packet outside the window: %v, want ErrReplay", err)
			}
			if _, err := acceptUnwrap(server, pkts[0], t0); !errors.Is(err, ErrReplay) {
				t.Errorf("packet far outside the window: %v, want ErrReplay", err)
			}
		})
	}
}

func TestReplayTimeBacktrack(t *testing.T) {
	key := pktKey(t)
	client := must(NewTLSCrypt(key, true))
	server := must(NewTLSCrypt(key, false))
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}}
	a := must(client.Wrap(nil, &p, t0))
	b := must(client.Wrap(nil, &p, t0))
	c := must(client.Wrap(nil, &p, t0))
	must(acceptUnwrap(server, c, t0))
	// b trails c by ReplayTime seconds: still fine.
	must(acceptUnwrap(server, b, t0.Add(ReplayTime*time.Second)))
	// a trails c (and b) by more: rejected, though never seen.
	if _, err := acceptUnwrap(server, a, t0.Add((ReplayTime+1)*time.Second)); !errors.Is(err, ErrReplay) {
		t.Errorf("late packet: %v, want ErrReplay", err)
	}
}

func TestReplaySenderTimestamp(t *testing.T) {
	key := pktKey(t)
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}}
	server := must(NewTLSAuth(key, 0, "SHA256"))
	oldClient := must(NewTLSAuth(key, 1, "SHA256"))
	newClient := must(NewTLSAuth(key, 1, "SHA256"))
	old := make([][]byte, 3)
	for i := range old {
		old[i] = must(oldClient.Wrap(nil, &p, t0))
	}
	fresh := must(newClient.Wrap(nil, &p, t0.Add(time.Minute)))
	must(acceptUnwrap(server, old[1], t0))
	// A later session timestamp starts a new series, even at id 1.
	must(acceptUnwrap(server, fresh, t0))
	// Now the earlier series is over.
	if _, err := acceptUnwrap(server, old[2], t0); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "timestamp") {
		t.Errorf("older timestamp: %v, want ErrReplay", err)
	}
}

func TestReplayWindowUnit(t *testing.T) {
	type step struct {
		id, ts uint32
		now    int64
		ok     bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"zero-id", []step{{0, 1, 0, false}}},
		{"in-order", []step{{1, 1, 0, true}, {2, 1, 0, true}, {3, 1, 0, true}, {3, 1, 0, false}}},
		{"gap-then-fill", []step{{1, 1, 0, true}, {5, 1, 0, true}, {3, 1, 0, true}, {2, 1, 0, true}, {4, 1, 0, true}, {4, 1, 0, false}}},
		{"jump-beyond-window", []step{{1, 1, 0, true}, {1000, 1, 0, true}, {937, 1, 0, true}, {936, 1, 0, false}, {1, 1, 0, false}}},
		{"wrap-near-max", []step{{0xfffffffe, 1, 0, true}, {0xffffffff, 1, 0, true}, {0xfffffffe, 1, 0, false}}},
		{"new-series", []step{{50, 1, 0, true}, {1, 2, 0, true}, {50, 1, 0, false}, {50, 2, 0, true}}},
		{"backtrack-limit", []step{{1, 1, 100, true}, {3, 1, 100, true}, {2, 1, 116, false}, {4, 1, 116, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r replayWindow
			for i, s := range tc.steps {
				err := r.check(s.id, s.ts, s.now)
				if (err == nil) != s.ok {
					t.Fatalf("step %d (id %d ts %d): err=%v, want ok=%v", i, s.id, s.ts, err, s.ok)
				}
				if err == nil {
					r.commit(s.id, s.ts, s.now)
				} else if !errors.Is(err, ErrReplay) {
					t.Errorf("error %v is not ErrReplay", err)
				}
			}
		})
	}
}

func TestSenderWrap(t *testing.T) {
	s := sender{started: true, id: 0xfffffffe, time: 100}
	if id, ts, err := s.next(time.Unix(100, 0)); err != nil || id != 0xffffffff || ts != 100 {
		t.Fatalf("got %d %d %v", id, ts, err)
	}
	if _, _, err := s.next(time.Unix(100, 0)); err == nil {
		t.Fatal("ids wrapped within the same second")
	}
	if id, ts, err := s.next(time.Unix(101, 0)); err != nil || id != 1 || ts != 101 {
		t.Fatalf("after wrap got %d %d %v", id, ts, err)
	}
}

func TestTLSCryptV2EarlyNegotiation(t *testing.T) {
	ck := must(statickey.ParseTLSCryptV2Client([]byte(testV2ClientKey)))
	sk := must(statickey.ParseTLSCryptV2Server([]byte(testV2ServerKey)))
	client := must(NewTLSCryptV2Client(ck))
	server := must(NewTLSCryptV2Server(sk))
	csid := wire.SessionID{0xc, 1, 2, 3, 4, 5, 6, 7}
	ssid := wire.SessionID{0x5, 1, 2, 3, 4, 5, 6, 7}

	reset := wire.ControlPacket{Opcode: wire.OpHardResetClientV3, SessionID: csid}
	enc := must(client.Wrap(nil, &reset, t0))
	if enc[0] != 0x50 {
		t.Errorf("first byte %#x, want 0x50", enc[0])
	}
	if id, _ := readPacketID(enc[9:]); id != EarlyNegStart+1 {
		t.Errorf("first replay id %#x, want %#x", id, EarlyNegStart+1)
	}
	if !bytes.HasSuffix(enc, ck.WKc) || len(enc) != 9+TLSCryptOverhead+5+len(ck.WKc) {
		t.Errorf("reset does not end with WKc (len %d)", len(enc))
	}
	if server.Metadata() != nil {
		t.Error("metadata before the client key")
	}
	if _, err := server.Wrap(nil, &reset, t0); err == nil {
		t.Error("server wrapped before knowing Kc")
	}
	got := must(server.Unwrap(enc, t0))
	if got.Opcode != wire.OpHardResetClientV3 || got.SessionID != csid {
		t.Errorf("server got %+v", got)
	}
	if md := server.Metadata(); !bytes.Equal(md, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("metadata %x", md)
	}

	// The server answers statelessly and asks for WKc again.
	sreset := wire.ControlPacket{Opcode: wire.OpHardResetServerV2, SessionID: ssid, Acks: []uint32{0}, RemoteSessionID: csid,
		Payload: AppendEarlyNegTLVs(nil, true)}
	enc = must(server.Wrap(nil, &sreset, t0))
	got = must(client.Unwrap(enc, t0))
	resend, err := ParseEarlyNegTLVs(got.Payload)
	if err != nil || !resend {
		t.Fatalf("TLVs: resend=%v err=%v", resend, err)
	}

	// P_CONTROL_WKC_V1 carries WKc again; a fresh stateless server can
	// accept it on its own.
	wkcPkt := wire.ControlPacket{Opcode: wire.OpControlWKCV1, SessionID: csid, Acks: []uint32{0}, RemoteSessionID: ssid, MessageID: 1, Payload: []byte{0x16, 3, 1}}
	enc = must(client.Wrap(nil, &wkcPkt, t0))
	if id, _ := readPacketID(enc[9:]); id != EarlyNegStart+2 {
		t.Errorf("second replay id %#x", id)
	}
	fresh := must(NewTLSCryptV2Server(sk))
	if d := cmp.Diff(wkcPkt, must(fresh.Unwrap(bytes.Clone(enc), t0)), cmpopts.EquateEmpty()); d != "" {
		t.Errorf("fresh server (-want +got)\n%s", d)
	}
	if d := cmp.Diff(wkcPkt, must(server.Unwrap(enc, t0)), cmpopts.EquateEmpty()); d != "" {
		t.Errorf("server (-want +got)\n%s", d)
	}

	// Later control packets carry no WKc.
	ctl := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: csid, MessageID: 2, Payload: []byte("hello")}
	enc = must(client.Wrap(nil, &ctl, t0))
	if len(enc) != 9+TLSCryptOverhead+1+4+5 {
		t.Errorf("P_CONTROL_V1 is %d bytes", len(enc))
	}
	must(server.Unwrap(enc, t0))
	if _, err := fresh.Unwrap(must(client.Wrap(nil, &ctl, t0)), t0); err != nil {
		t.Errorf("fresh server keyed by WKC_V1 rejected a control packet: %v", err)
	}

	// Clients refuse client-only opcodes from the server.
	enc = must(server.Wrap(nil, &wkcPkt, t0))
	if _, err := client.Unwrap(enc, t0); err == nil {
		t.Error("client accepted P_CONTROL_WKC_V1")
	}

	// A WKc from another server key does not unwrap.
	otherSK := must(statickey.GenerateTLSCryptV2Server(rand.Reader))
	other := must(NewTLSCryptV2Server(otherSK))
	c2 := must(NewTLSCryptV2Client(ck))
	if _, err := other.Unwrap(must(c2.Wrap(nil, &reset, t0)), t0); !errors.Is(err, statickey.ErrWKcAuth) {
		t.Errorf("foreign WKc: %v, want ErrWKcAuth", err)
	}
}

func TestNewTLSCryptV2ClientRejectsBadWKc(t *testing.T) {
	ck := must(statickey.ParseTLSCryptV2Client([]byte(testV2ClientKey)))
	bad := *ck
	bad.WKc = bytes.Clone(ck.WKc)
	bad.WKc[len(bad.WKc)-1]++
	if _, err := NewTLSCryptV2Client(&bad); err == nil {
		t.Error("bad WKc length field accepted")
	}
	bad.WKc = nil
	if _, err := NewTLSCryptV2Client(&bad); err == nil {
		t.Error("empty WKc accepted")
	}
}

func TestParseEarlyNegTLVs(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		resend  bool
		wantErr bool
	}{
		{"empty", nil, false, false},
		{"resend", []byte{0, 1, 0, 2, 0, 1}, true, false},
		{"flags-zero", []byte{0, 1, 0, 2, 0, 0}, false, false},
		{"other-flag-bits", []byte{0, 1, 0, 2, 0xff, 0xfe}, false, false},
		{"unknown-then-resend", []byte{0x12, 0x34, 0, 3, 9, 9, 9, 0, 1, 0, 2, 0, 1}, true, false},
		{"unknown-empty", []byte{0, 9, 0, 0}, false, false},
		{"flags-wrong-len", []byte{0, 1, 0, 3, 0, 1, 0}, false, true},
		{"truncated-header", []byte{0, 1, 0}, false, true},
		{"truncated-value", []byte{0, 1, 0, 2, 0}, false, true},
		{"stray-after", []byte{0, 1, 0, 2, 0, 1, 0}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resend, err := ParseEarlyNegTLVs(tc.in)
			if (err != nil) != tc.wantErr || (err == nil && resend != tc.resend) {
				t.Errorf("got %v %v, want resend=%v err=%v", resend, err, tc.resend, tc.wantErr)
			}
		})
	}
	if !bytes.Equal(AppendEarlyNegTLVs(nil, true), []byte{0, 1, 0, 2, 0, 1}) {
		t.Error("AppendEarlyNegTLVs encoding")
	}
}

func TestNewTLSAuthErrors(t *testing.T) {
	key := pktKey(t)
	tests := []struct {
		name   string
		key    *statickey.Key
		dir    int
		digest string
	}{
		{"nil-key", nil, 1, "SHA1"},
		{"bad-direction", key, 2, "SHA1"},
		{"digest-none", key, 1, "none"},
		{"digest-unknown", key, 1, "WHIRLPOOL"},
		{"digest-empty", key, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewTLSAuth(tc.key, tc.dir, tc.digest); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := NewTLSCrypt(nil, true); err == nil {
		t.Error("NewTLSCrypt accepted a nil key")
	}
	if _, err := NewTLSCryptV2Client(nil); err == nil {
		t.Error("NewTLSCryptV2Client accepted a nil key")
	}
	if _, err := NewTLSCryptV2Server(nil); err == nil {
		t.Error("NewTLSCryptV2Server accepted a nil key")
	}
}

func TestTLSAuthDigests(t *testing.T) {
	key := pktKey(t)
	tests := []struct {
		name string
		size int
	}{
		{"MD5", 16}, {"SHA1", 20}, {"sha224", 28}, {"SHA256", 32}, {"SHA2-256", 32}, {"SHA384", 48},
		{"SHA512", 64}, {"SHA512-224", 28}, {"SHA512-256", 32}, {"SHA3-256", 32}, {"SHA3-512", 64},
	}
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}, Payload: []byte("payload")}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := must(NewTLSAuth(key, 1, tc.name))
			s := must(NewTLSAuth(key, 0, tc.name))
			if c.Overhead() != tc.size+packetIDLen {
				t.Errorf("overhead %d, want %d", c.Overhead(), tc.size+packetIDLen)
			}
			enc := must(c.Wrap(nil, &p, t0))
			got := must(s.Unwrap(enc, t0))
			if string(got.Payload) != "payload" {
				t.Errorf("payload %q", got.Payload)
			}
			if _, sz, err := LookupDigest(tc.name); err != nil || sz != tc.size {
				t.Errorf("LookupDigest: %d %v", sz, err)
			}
		})
	}
}

func TestNoneUnwrapErrors(t *testing.T) {
	w := NewNone()
	for _, in := range [][]byte{nil, {0x30, 1, 2, 3}, {0x38, 1, 2}, {0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := w.Unwrap(in, t0); err == nil {
			t.Errorf("accepted %x", in)
		}
	}
}

// resetReplay lets benchmarks and allocation tests unwrap the same packet
// repeatedly.
func resetReplay(w Wrapper) {
	switch w := w.(type) {
	case *tlsAuth:
		w.replay = replayWindow{}
	case *tlsCrypt:
		w.replay = replayWindow{}
	case *tlsCryptV2Client:
		w.replay = replayWindow{}
	case *TLSCryptV2Server:
		if w.tc != nil {
			w.tc.replay = replayWindow{}
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}, Acks: []uint32{1, 2, 3, 4}, RemoteSessionID: wire.SessionID{2}, MessageID: 5, Payload: bytes.Repeat([]byte{0x17}, 1250)}
	for _, wp := range wrapperPairs() {
		t.Run(wp.name, func(t *testing.T) {
			client, server := wp.pair(t)
			if v2, ok := server.(*TLSCryptV2Server); ok {
				first := wire.ControlPacket{Opcode: wire.OpHardResetClientV3, SessionID: p.SessionID}
				must(v2.Unwrap(must(client.Wrap(nil, &first, t0)), t0))
			}
			buf := make([]byte, 0, 2048)
			if a := testing.AllocsPerRun(50, func() {
				if _, err := client.Wrap(buf[:0], &p, t0); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Errorf("Wrap: %.1f allocs", a)
			}
			enc := must(client.Wrap(nil, &p, t0))
			must(server.Unwrap(enc, t0)) // grows the decryption buffer once
			if a := testing.AllocsPerRun(50, func() {
				resetReplay(server)
				if _, err := server.Unwrap(enc, t0); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Errorf("Unwrap: %.1f allocs", a)
			}
		})
	}
}

func BenchmarkWrap(b *testing.B) {
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}, Acks: []uint32{1}, RemoteSessionID: wire.SessionID{2}, MessageID: 5, Payload: bytes.Repeat([]byte{0x17}, 1250)}
	for _, wp := range wrapperPairs() {
		b.Run(wp.name, func(b *testing.B) {
			client, _ := wp.pair(b)
			buf := make([]byte, 0, 2048)
			b.ReportAllocs()
			b.SetBytes(int64(len(p.Payload)))
			for b.Loop() {
				if _, err := client.Wrap(buf[:0], &p, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnwrap(b *testing.B) {
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}, Acks: []uint32{1}, RemoteSessionID: wire.SessionID{2}, MessageID: 5, Payload: bytes.Repeat([]byte{0x17}, 1250)}
	for _, wp := range wrapperPairs() {
		b.Run(wp.name, func(b *testing.B) {
			client, server := wp.pair(b)
			if v2, ok := server.(*TLSCryptV2Server); ok {
				first := wire.ControlPacket{Opcode: wire.OpHardResetClientV3, SessionID: p.SessionID}
				must(v2.Unwrap(must(client.Wrap(nil, &first, t0)), t0))
			}
			enc := must(client.Wrap(nil, &p, t0))
			b.ReportAllocs()
			b.SetBytes(int64(len(p.Payload)))
			for b.Loop() {
				resetReplay(server)
				if _, err := server.Unwrap(enc, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// acceptUnwrap unwraps pkt and, if that works, accepts it as the engine does
// for a packet of its session.
func acceptUnwrap(w Wrapper, pkt []byte, now time.Time) (wire.ControlPacket, error) {
	p, err := w.Unwrap(pkt, now)
	if err == nil {
		w.Accept()
	}
	return p, err
}

// A packet that authenticates but is not accepted (the engine found it is
// from another session) must leave the window alone: before Accept existed,
// such a packet with a newer timestamp made the real session's packets
// "older" and the handshake stalled.
func TestReplayUnacceptedPacketLeavesWindow(t *testing.T) {
	key := pktKey(t)
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: wire.SessionID{1}}
	for _, tc := range []struct {
		name   string
		client func() Wrapper
		server Wrapper
	}{
		{"tls-auth", func() Wrapper { return must(NewTLSAuth(key, 1, "SHA256")) }, must(NewTLSAuth(key, 0, "SHA256"))},
		{"tls-crypt", func() Wrapper { return must(NewTLSCrypt(key, true)) }, must(NewTLSCrypt(key, false))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real, other := tc.client(), tc.client()
			pkts := make([][]byte, 3)
			for i := range pkts {
				pkts[i] = must(real.Wrap(nil, &p, t0))
			}
			stray := must(other.Wrap(nil, &p, t0.Add(time.Minute)))
			must(acceptUnwrap(tc.server, pkts[0], t0))
			// The stray packet authenticates and is newer, but is never
			// accepted; nor is a replay, though Accept follows it.
			must(tc.server.Unwrap(stray, t0))
			if _, err := tc.server.Unwrap(pkts[0], t0); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay of an accepted packet: %v, want ErrReplay", err)
			}
			tc.server.Accept()
			// The real session carries on, in and out of order.
			must(acceptUnwrap(tc.server, pkts[2], t0))
			must(acceptUnwrap(tc.server, pkts[1], t0))
			for i, pkt := range pkts {
				if _, err := tc.server.Unwrap(pkt, t0); !errors.Is(err, ErrReplay) {
					t.Errorf("replay of accepted packet %d: %v, want ErrReplay", i, err)
				}
			}
			// Accepting the stray packet does start its newer series.
			must(acceptUnwrap(tc.server, stray, t0))
			if _, err := tc.server.Unwrap(must(real.Wrap(nil, &p, t0)), t0); !errors.Is(err, ErrReplay) {
				t.Errorf("older series after accepting a newer one: %v, want ErrReplay", err)
			}
		})
	}
}
