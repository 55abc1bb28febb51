package engine

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/push"
	"github.com/ovpnd/ovpnd/engine/wire"
)

const basicPush = "route-gateway 10.8.0.1,topology subnet,ping 10,ifconfig 10.8.0.2 255.255.255.0,peer-id 3,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm"

// ipPacket makes a distinguishable fake IPv4 packet.
func ipPacket(n int) []byte {
	b := make([]byte, 60+n%40)
	b[0] = 0x45
	for i := 1; i < len(b); i++ {
		b[i] = byte(n + i)
	}
	return b
}

// roundTrip sends n packets each way and checks they arrive intact.
func roundTrip(t *testing.T, l *link, n int) {
	t.Helper()
	l.s.Tun, l.tun = nil, nil
	for i := 0; i < n; i++ {
		l.c.SendTunPacket(l.now, ipPacket(i))
		l.s.SendData(ipPacket(1000 + i))
	}
	l.pump()
	if len(l.s.Tun) != n || len(l.tun) != n {
		t.Fatalf("round trip: server got %d, client got %d packets, want %d each; errors %v", len(l.s.Tun), len(l.tun), n, l.errs)
	}
	for i := 0; i < n; i++ {
		if !bytes.Equal(l.s.Tun[i], ipPacket(i)) || !bytes.Equal(l.tun[i], ipPacket(1000+i)) {
			t.Fatalf("round trip: packet %d corrupted", i)
		}
	}
}

func TestHandshakeVariants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   WrapMode
		ekm    bool
		tlsMax uint16
		push   string
		cipher string
		auth   string
	}{
		{name: "none-ekm-tls13", mode: WrapNone, ekm: true, push: basicPush},
		{name: "none-prf-tls12", mode: WrapNone, tlsMax: tls.VersionTLS12, push: "peer-id 0,cipher AES-128-GCM", cipher: "AES-128-GCM"},
		{name: "tls-auth-sha256", mode: WrapTLSAuth, ekm: true, auth: "SHA256", push: basicPush},
		{name: "tls-auth-sha1-v1", mode: WrapTLSAuth, push: "cipher CHACHA20-POLY1305", cipher: "CHACHA20-POLY1305"},
		{name: "tls-crypt", mode: WrapTLSCrypt, ekm: true, push: basicPush},
		{name: "tls-crypt-v2", mode: WrapTLSCryptV2, ekm: true, push: basicPush},
		{name: "tls-crypt-v2-tls12-prf", mode: WrapTLSCryptV2, tlsMax: tls.VersionTLS12, push: "cipher AES-256-GCM,peer-id 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			cfg.Auth = tc.auth
			l := newLink(t, tc.mode, cfg, serverOpts{Push: []string{tc.push}, EKM: tc.ekm, Cipher: tc.cipher, TLSMaxVersion: tc.tlsMax, Digest: tc.auth})
			l.connect()
			want := []State{StateConnecting, StateTLSHandshake, StateAuthenticating, StateConnected}
			var got []State
			for _, s := range l.states {
				got = append(got, s.State)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("states (-want +got):\n%s", d)
			}
			if len(l.keys) != 1 || l.keys[0].Primary == nil || l.keys[0].Primary.KeyID() != 0 || l.keys[0].Retiring != nil {
				t.Fatalf("keys events %+v", l.keys)
			}
			if d := cmp.Diff(strings.Split(tc.push, ","), l.push); d != "" {
				t.Errorf("pushed options (-want +got):\n%s", d)
			}
			roundTrip(t, l, 20)
			if len(l.errs) != 0 {
				t.Errorf("warnings: %v", l.errs)
			}
		})
	}
}

func TestPeerInfoAndOptions(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.IVGUIVer = "ovpnd-test 1"
	l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	lines := strings.Split(strings.TrimSuffix(l.s.PeerInfo, "\n"), "\n")
	want := []string{"IV_VER=2.6.14", "IV_PLAT=linux", "IV_PROTO=8094", "IV_NCP=2",
		"IV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305", "IV_TCPNL=1", "IV_MTU=1600", "IV_GUI_VER=ovpnd-test 1",
		"IV_SSO=webauth,openurl,crtext"}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("peer-info (-want +got):\n%s", d)
	}
	if l.s.User != "" || l.s.Pass != "" {
		t.Errorf("credentials sent without auth-user-pass: %q %q", l.s.User, l.s.Pass)
	}
	if got := l.s.Msgs[0]; got != "PUSH_REQUEST" {
		t.Errorf("first client message %q, want PUSH_REQUEST", got)
	}
}

func TestPushContinuation(t *testing.T) {
	parts := []string{
		"route 10.1.0.0 255.255.0.0,push-continuation 2",
		"route 10.2.0.0 255.255.0.0,peer-id 1,push-continuation 2",
		"cipher AES-128-GCM,ping 5,push-continuation 1",
	}
	l := newLink(t, WrapTLSCrypt, nil, serverOpts{Push: parts, Cipher: "AES-128-GCM", EKM: false})
	l.connect()
	want := []string{"route 10.1.0.0 255.255.0.0", "route 10.2.0.0 255.255.0.0", "peer-id 1", "cipher AES-128-GCM", "ping 5"}
	if d := cmp.Diff(want, l.push); d != "" {
		t.Errorf("options (-want +got):\n%s", d)
	}
	if l.c.peerID != 1 || l.c.ping != 5*time.Second {
		t.Errorf("peer-id %d ping %v not applied", l.c.peerID, l.c.ping)
	}
	roundTrip(t, l, 3)
}

func TestNCP(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ciphers    []string
		fallback   string
		push       string
		server     string
		wantCipher string
		wantFail   bool
	}{
		{name: "pushed allowed", push: "cipher CHACHA20-POLY1305", server: "CHACHA20-POLY1305", wantCipher: "CHACHA20-POLY1305"},
		{name: "pushed lower case", push: "cipher aes-128-gcm", server: "AES-128-GCM", wantCipher: "AES-128-GCM"},
		{name: "pushed not allowed", ciphers: []string{"AES-256-GCM"}, push: "cipher AES-128-GCM", server: "AES-128-GCM", wantFail: true},
		{name: "fallback", ciphers: []string{"AES-256-GCM"}, fallback: "AES-256-CBC", push: "topology subnet", server: "AES-256-CBC", wantCipher: "AES-256-CBC"},
		{name: "server occ cipher", push: "topology subnet", server: "AES-128-GCM", wantCipher: "AES-128-GCM"},
		{name: "server occ cipher not allowed", ciphers: []string{"AES-256-GCM"}, push: "topology subnet", server: "AES-128-GCM", wantFail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			cfg.DataCiphers, cfg.DataCiphersFallback = tc.ciphers, tc.fallback
			l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{tc.push}, Cipher: tc.server})
			l.c.Start(l.now)
			l.advance(5 * time.Second)
			if tc.wantFail {
				if st := l.lastState(); st.State != StateReconnecting || st.Reason != "push-failed" {
					t.Fatalf("state %+v, want reconnecting/push-failed; errors %v", st, l.errs)
				}
				return
			}
			if !l.has(StateConnected) {
				t.Fatalf("not connected: %v %v", l.states, l.errs)
			}
			if l.c.cipher != tc.wantCipher {
				t.Errorf("cipher %q, want %q", l.c.cipher, tc.wantCipher)
			}
			roundTrip(t, l, 5)
		})
	}
}

func keyIDs(e EventKeys) string {
	s := "-"
	if e.Primary != nil {
		s = fmt.Sprint(e.Primary.KeyID())
	}
	if e.Retiring != nil {
		s += fmt.Sprintf("/%d", e.Retiring.KeyID())
	}
	return s
}

// sendingKey is the key id the client seals under after the last key event (-1: none).
func sendingKey(l *link) int {
	if len(l.keys) == 0 || l.keys[len(l.keys)-1].Primary == nil {
		return -1
	}
	return int(l.keys[len(l.keys)-1].Primary.KeyID())
}

func TestServerSoftReset(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.TranWindow = 30 * time.Second
	l := newLink(t, WrapTLSAuth, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	roundTrip(t, l, 3)

	// Data keeps flowing while the renegotiation runs: nothing may be lost.
	l.s.Renegotiate(l.now)
	sent := 0
	l.s.Tun, l.tun = nil, nil
	for i := 0; i < 40 && sendingKey(l) != 1; i++ {
		l.c.SendTunPacket(l.now, ipPacket(sent))
		l.s.SendData(ipPacket(sent))
		sent++
		l.advance(10 * time.Millisecond)
	}
	// The new key first only opens (Next), and seals once the server's data shows it in use.
	if len(l.keys) != 3 || l.keys[1].Next == nil || keyIDs(l.keys[1]) != "0" || keyIDs(l.keys[2]) != "1/0" {
		t.Fatalf("key events %d, last %v; errors %v", len(l.keys), l.keys, l.errs)
	}
	l.pump()
	if len(l.s.Tun) != sent || len(l.tun) != sent {
		t.Fatalf("lost packets during rekey: sent %d, server got %d, client got %d; errors %v", sent, len(l.s.Tun), len(l.tun), l.errs)
	}
	roundTrip(t, l, 5)
	// A packet sealed with the retiring key still opens within the transition window.
	l.tun = nil
	old := l.s.Prev.Keys
	buf := make([]byte, datachannel.Headroom+64+datachannel.Tailroom)
	pkt, err := old.Seal(buf, datachannel.Headroom, 64)
	if err != nil {
		t.Fatal(err)
	}
	l.c.HandlePacket(l.now, pkt)
	l.pump()
	if len(l.tun) != 1 {
		t.Fatalf("packet under retiring key not delivered: %v", l.errs)
	}
	// After the transition window the old key is dropped.
	l.advance(31 * time.Second)
	if last := l.keys[len(l.keys)-1]; keyIDs(last) != "1" {
		t.Errorf("after tran-window keys %s, want 1", keyIDs(last))
	}
	if l.c.state != StateConnected {
		t.Errorf("state %v", l.c.state)
	}
}

func TestClientRenegSec(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.RenegInterval = 60 * time.Second
	l := newLink(t, WrapTLSCrypt, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	var ids []uint8
	for i := 0; i < 9; i++ {
		before := sendingKey(l)
		l.advance(59990 * time.Millisecond)
		// Traffic both ways across the rekey: nothing may be lost.
		l.s.Tun, l.tun = nil, nil
		sent := 0
		for j := 0; j < 100 && sendingKey(l) == before; j++ {
			l.c.SendTunPacket(l.now, ipPacket(sent))
			l.s.SendData(ipPacket(sent))
			sent++
			l.advance(5 * time.Millisecond)
		}
		if sendingKey(l) == before {
			t.Fatalf("rekey %d did not happen; states %v errors %v", i, l.states, l.errs)
		}
		l.pump()
		if len(l.s.Tun) != sent || len(l.tun) != sent {
			t.Fatalf("rekey %d lost packets: sent %d, server got %d, client got %d", i, sent, len(l.s.Tun), len(l.tun))
		}
		ids = append(ids, l.keys[len(l.keys)-1].Primary.KeyID())
		roundTrip(t, l, 3)
	}
	if d := cmp.Diff([]uint8{1, 2, 3, 4, 5, 6, 7, 1, 2}, ids); d != "" {
		t.Errorf("key ids (-want +got):\n%s", d)
	}
	if l.c.state != StateConnected {
		t.Errorf("state %v after rekeys; errors %v", l.c.state, l.errs)
	}
}

func TestRenegBytes(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.RenegBytes = 10000
	l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	l.c.NoteDataActivity(l.now, Activity{LastRecv: l.now, LastSent: l.now, BytesIn: 6000, BytesOut: 5000, PacketsIn: 10, PacketsOut: 10})
	// No data from the server under the new key: the client switches once the server has
	// sent no control packet for a tls-timeout.
	l.advance(time.Second)
	if sendingKey(l) != 0 || len(l.keys) != 2 || l.keys[1].Next == nil || l.keys[1].Next.KeyID() != 1 {
		t.Fatalf("reneg-bytes did not rekey, or switched before the server could have our ack: %v", l.keys)
	}
	l.advance(2 * time.Second)
	if sendingKey(l) != 1 {
		t.Fatalf("no switch to the new key a tls-timeout after the server's last control packet: %v", l.keys)
	}
}

func TestAuth(t *testing.T) {
	t.Run("failed", func(t *testing.T) {
		cfg := testConfig(t, testPKI(t))
		cfg.AuthUserPass, cfg.Username, cfg.Password = true, "alice", "wrong"
		l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, Auth: func(u, p string) string {
			if p != "secret" {
				return "AUTH_FAILED,bad password"
			}
			return ""
		}})
		l.c.Start(l.now)
		l.advance(3 * time.Second)
		if d := cmp.Diff([]string{"bad password"}, l.authFail); d != "" {
			t.Errorf("auth failures (-want +got):\n%s", d)
		}
		if st := l.lastState(); st.State != StateExiting {
			t.Errorf("state %+v, want exiting", st)
		}
		if l.c.NextDeadline() != (time.Time{}) {
			t.Error("dead client still has a deadline")
		}
	})
	t.Run("ask and token", func(t *testing.T) {
		cfg := testConfig(t, testPKI(t))
		cfg.AuthUserPass = true
		cfg.RenegInterval = 100 * time.Second
		l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush + ",auth-token SESS_abc,auth-token-user Ym9i"}, EKM: true})
		l.c.Start(l.now)
		l.advance(2 * time.Second)
		if l.needCreds != 1 || l.has(StateConnected) {
			t.Fatalf("needCreds %d, states %v", l.needCreds, l.states)
		}
		l.c.SetCredentials("alice", "secret")
		l.advance(2 * time.Second)
		if !l.has(StateConnected) || l.s.User != "alice" || l.s.Pass != "secret" {
			t.Fatalf("connected=%v user %q pass %q", l.has(StateConnected), l.s.User, l.s.Pass)
		}
		l.advance(101 * time.Second)
		if u, tok := l.c.AuthToken(); u != "bob" || tok != "SESS_abc" {
			t.Errorf("AuthToken() = %q, %q", u, tok)
		}
		if l.s.Cur.ID != 1 || l.s.User != "bob" || l.s.Pass != "SESS_abc" {
			t.Errorf("after rekey key %d user %q pass %q, want token", l.s.Cur.ID, l.s.User, l.s.Pass)
		}
	})
	t.Run("pending", func(t *testing.T) {
		l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, Auth: func(u, p string) string { return "AUTH_PENDING,timeout 300" }})
		l.c.Start(l.now)
		l.advance(90 * time.Second)
		var pend []EventAuthPending
		for _, e := range l.events {
			if p, ok := e.(EventAuthPending); ok {
				pend = append(pend, p)
			}
		}
		if len(pend) == 0 || pend[0].Timeout != 300*time.Second {
			t.Fatalf("auth pending events %v", pend)
		}
		if l.has(StateReconnecting) {
			t.Fatalf("gave up during AUTH_PENDING: %v %v", l.states, l.errs)
		}
	})
}

func TestServerControlMessages(t *testing.T) {
	for _, tc := range []struct {
		msg    string
		state  State
		reason string
		info   []string
	}{
		{"RESTART,[P]:maintenance", StateReconnecting, "server-pushed-connection-reset", []string{"hello", "RESTART,[P]:maintenance"}},
		{"HALT,bye", StateExiting, "server-pushed-halt", []string{"hello", "HALT,bye"}},
		{"EXIT", StateReconnecting, "remote-exit", []string{"hello"}},
	} {
		t.Run(tc.msg, func(t *testing.T) {
			l := newLink(t, WrapTLSCrypt, nil, serverOpts{Push: []string{basicPush}, EKM: true})
			l.connect()
			l.s.SendControlNow(l.now, "INFO,hello")
			l.pump()
			l.s.SendControlNow(l.now, tc.msg)
			l.pump()
			if st := l.lastState(); st.State != tc.state || st.Reason != tc.reason {
				t.Errorf("state %+v, want %v/%s", st, tc.state, tc.reason)
			}
			var info []string
			for _, e := range l.events {
				if i, ok := e.(EventInfo); ok {
					info = append(info, i.Message)
				}
			}
			if d := cmp.Diff(tc.info, info); d != "" {
				t.Errorf("info (-want +got):\n%s", d)
			}
		})
	}
}

func TestKeepalive(t *testing.T) {
	l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush + ",ping-restart 60"}, EKM: true})
	l.connect()
	l.advance(59 * time.Second)
	if l.c.state != StateConnected {
		t.Fatalf("state %v before ping-restart", l.c.state)
	}
	if l.s.Pings < 5 {
		t.Errorf("server saw %d pings in 59 s with ping 10", l.s.Pings)
	}
	// Server traffic keeps the connection alive.
	l.s.SendData(datachannel.PingPayload[:])
	l.pump()
	l.advance(30 * time.Second)
	if l.c.state != StateConnected {
		t.Fatalf("restarted although the server spoke %v ago", 30*time.Second)
	}
	l.advance(31 * time.Second)
	if st := l.lastState(); st.State != StateReconnecting || st.Reason != "ping-restart" {
		t.Errorf("state %+v, want ping-restart", st)
	}
}

func TestControlChannelLossAndReorder(t *testing.T) {
	for _, mode := range []WrapMode{WrapNone, WrapTLSAuth, WrapTLSCrypt, WrapTLSCryptV2} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			l := newLink(t, mode, nil, serverOpts{Push: []string{basicPush}, EKM: true})
			n := 0
			l.drop = func(toServer bool, pkt []byte) bool {
				n++
				return n%3 == 0
			}
			l.reorder = true
			l.connect()
			l.drop, l.reorder = nil, false
			roundTrip(t, l, 5)
		})
	}
}

func TestTLSCryptV2ResendWKc(t *testing.T) {
	l := newLink(t, WrapTLSCryptV2, nil, serverOpts{Push: []string{basicPush}, EKM: true, ResendWKc: true})
	l.connect()
	if len(l.s.HelloOps) == 0 || l.s.HelloOps[0] != wire.OpControlWKCV1 {
		t.Fatalf("first client control packet ops %v, want P_CONTROL_WKC_V1", l.s.HelloOps)
	}
	for i, op := range l.s.HelloOps[1:] {
		if op != wire.OpControlV1 {
			t.Errorf("client packet %d after the first is %v, want P_CONTROL_V1 (only message id 1 carries WKc)", i+2, op)
		}
	}
	roundTrip(t, l, 3)
}

func TestShortServerKM2AndPushWithoutRequest(t *testing.T) {
	l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true, ShortKM2: true, PushWithoutRequest: true})
	l.connect()
	roundTrip(t, l, 2)
}

func TestShutdown(t *testing.T) {
	t.Run("cc-exit", func(t *testing.T) {
		cfg := testConfig(t, testPKI(t))
		cfg.ExplicitExitNotify = 3
		l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
		l.connect()
		l.c.Shutdown(l.now)
		l.advance(time.Second)
		if l.s.Msgs[len(l.s.Msgs)-1] != "EXIT" {
			t.Errorf("server messages %q, want EXIT last", l.s.Msgs)
		}
		if st := l.lastState(); st.State != StateClosed {
			t.Errorf("state %+v, want closed", st)
		}
	})
	t.Run("occ", func(t *testing.T) {
		cfg := testConfig(t, testPKI(t))
		cfg.ExplicitExitNotify = 3
		l := newLink(t, WrapTLSAuth, cfg, serverOpts{Push: []string{"cipher AES-256-GCM,peer-id 2"}})
		l.connect()
		l.c.Shutdown(l.now)
		l.advance(5 * time.Second)
		if l.s.OCCExits != 3 {
			t.Errorf("server saw %d OCC exits, want 3", l.s.OCCExits)
		}
		if st := l.lastState(); st.State != StateClosed {
			t.Errorf("state %+v, want closed", st)
		}
	})
	t.Run("not connected", func(t *testing.T) {
		cfg := testConfig(t, testPKI(t))
		cfg.ExplicitExitNotify = 3
		l := newLink(t, WrapNone, cfg, serverOpts{})
		l.c.Start(l.now)
		l.c.Shutdown(l.now)
		l.collect()
		if st := l.lastState(); st.State != StateClosed {
			t.Errorf("state %+v, want closed", st)
		}
	})
}

func TestHandWindow(t *testing.T) {
	l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}})
	l.drop = func(toServer bool, pkt []byte) bool { return !toServer }
	l.c.Start(l.now)
	l.advance(59 * time.Second)
	if l.has(StateReconnecting) {
		t.Fatal("gave up before hand-window")
	}
	l.advance(2 * time.Second)
	if st := l.lastState(); st.State != StateReconnecting || st.Reason != "tls-error" {
		t.Errorf("state %+v after hand-window", st)
	}
}

func TestCertificateChecks(t *testing.T) {
	other := newPKI(t, "Other-Server")
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
		ok     bool
	}{
		{"name ok", func(c *Config) {}, true},
		{"name mismatch", func(c *Config) { c.VerifyX509Name = "Test" }, false},
		{"name prefix", func(c *Config) { c.VerifyX509Type, c.VerifyX509Name = VerifyX509NamePrefix, "Test-" }, true},
		{"subject", func(c *Config) {
			c.VerifyX509Type, c.VerifyX509Name = VerifyX509Subject, "C=KG, O=OpenVPN-TEST, CN=Test-Server"
		}, true},
		{"subject mismatch", func(c *Config) { c.VerifyX509Type, c.VerifyX509Name = VerifyX509Subject, "CN=Test-Server" }, false},
		{"wrong ca", func(c *Config) { c.RootCAs = other.CAPool }, false},
		{"eku client", func(c *Config) { c.RemoteCertEKU = "TLS Web Client Authentication" }, false},
		{"eku server oid", func(c *Config) { c.RemoteCertEKU = "1.3.6.1.5.5.7.3.1" }, true},
		{"fingerprint only", func(c *Config) {
			c.RootCAs = nil
			c.PeerFingerprints = [][32]byte{sha256Of(testPKI(t).ServerLeaf.Raw)}
		}, true},
		{"fingerprint mismatch", func(c *Config) { c.PeerFingerprints = [][32]byte{{1, 2, 3}} }, false},
		// The test server's leaf has digitalSignature|keyAgreement: OpenVPN value 0x88.
		{"ku exact", func(c *Config) { c.RemoteCertKU = []uint16{0x88} }, true},
		{"ku subset", func(c *Config) { c.RemoteCertKU = []uint16{0x80} }, true},
		{"ku mismatch", func(c *Config) { c.RemoteCertKU = []uint16{0xa0} }, false},
		{"ku one of", func(c *Config) { c.RemoteCertKU = []uint16{0xa0, 0x88} }, true},
		{"ku required", func(c *Config) { c.RemoteCertKU = []uint16{KURequired} }, true},
		{"profile suiteb", func(c *Config) { c.TLSCertProfile = CertProfileSuiteB }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			tc.mutate(cfg)
			l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
			l.c.Start(l.now)
			l.advance(3 * time.Second)
			if got := l.has(StateConnected); got != tc.ok {
				t.Errorf("connected = %v, want %v; errors %v", got, tc.ok, l.errs)
			}
		})
	}
}

func TestBadPacketsAreDropped(t *testing.T) {
	l := newLink(t, WrapTLSCrypt, nil, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	for _, pkt := range [][]byte{
		nil,
		{0x00},
		{0x48},                   // data V1 with key id 0, truncated
		{0x30, 1, 2, 3},          // P_DATA_V2 truncated
		{0x20, 1, 2, 3, 4, 5, 6}, // control V1 garbage
		bytes.Repeat([]byte{0x28}, 100),
		append([]byte{0x4f}, make([]byte, 80)...), // data with unknown key id 7
	} {
		l.c.HandlePacket(l.now, pkt)
	}
	l.collect()
	if l.c.state != StateConnected {
		t.Fatalf("state %v after junk", l.c.state)
	}
	if len(l.errs) < 6 {
		t.Errorf("only %d warnings for 7 bad packets", len(l.errs))
	}
	roundTrip(t, l, 2)
}

func TestPingExit(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.PingExit = 30 * time.Second
	l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{"cipher AES-256-GCM"}, EKM: false})
	l.connect()
	l.advance(29 * time.Second)
	if l.c.state != StateConnected {
		t.Fatalf("state %v before ping-exit", l.c.state)
	}
	l.advance(2 * time.Second)
	if st := l.lastState(); st.State != StateExiting || st.Reason != "ping-exit" {
		t.Errorf("state %+v, want exiting/ping-exit", st)
	}
}

func TestNewClientValidation(t *testing.T) {
	p := testPKI(t)
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
	}{
		{"no rand", func(c *Config) { c.Rand = nil }},
		{"no trust", func(c *Config) { c.RootCAs = nil }},
		{"tls-mtu small", func(c *Config) { c.TLSMTU = 100 }},
		{"tls-auth without key", func(c *Config) { c.Wrap = WrapTLSAuth }},
		{"tls-crypt-v2 without key", func(c *Config) { c.Wrap = WrapTLSCryptV2 }},
		{"bad key direction", func(c *Config) { c.KeyDirection = 2 }},
		{"tls versions", func(c *Config) { c.TLSVersionMin, c.TLSVersionMax = tls.VersionTLS13, tls.VersionTLS12 }},
		{"tls 1.3 suite in tls-cipher", func(c *Config) { c.TLSCipherSuites = []uint16{tls.TLS_AES_128_GCM_SHA256} }},
		{"unknown suite", func(c *Config) { c.TLSCipherSuites = []uint16{0x1234} }},
		{"tls 1.2 suite in tls-ciphersuites", func(c *Config) {
			c.TLS13CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		}},
		{"too many ku", func(c *Config) { c.RemoteCertKU = make([]uint16, 65) }},
		{"bad profile", func(c *Config) { c.TLSCertProfile = 99 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, p)
			tc.mutate(cfg)
			if _, err := NewClient(cfg); err == nil {
				t.Error("NewClient accepted a bad config")
			}
		})
	}
	if _, err := NewClient(testConfig(t, p)); err != nil {
		t.Errorf("good config rejected: %v", err)
	}
}

// BenchmarkHandshake measures a full in-process connection (both TLS sides, key-method 2,
// push) on one core, to spot regressions in the control path.
func BenchmarkHandshake(b *testing.B) {
	p := testPKI(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l := newLink(b, WrapTLSCrypt, testConfig(b, p), serverOpts{Push: []string{basicPush}, EKM: true})
		l.connect()
		l.c.closeAll()
		l.s.Close()
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t, testPKI(t))
	cfg.RenegInterval = 30 * time.Second
	l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	l.advance(65 * time.Second) // two rekeys: one retired TLS session closed, one retiring
	l.c.Shutdown(l.now)
	l.advance(time.Second)
	if st := l.lastState(); st.State != StateClosed {
		t.Fatalf("state %+v", st)
	}
	l.s.Close()
	// Closed TLS goroutines finish on their own schedule; on a loaded machine a hundred
	// yields are not always enough for them to be gone.
	for i := 0; i < 1000000 && runtime.NumGoroutine() > before; i++ {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Shutdown, %d before", n, before)
	}
}

// TestEpochAndDynamicTLSCrypt: a server that pushes protocol-flags aead-epoch and dyn-tls-crypt
// gets epoch-format data packets, and the renegotiation is wrapped with the dynamic tls-crypt
// key on both sides (the server unwraps key id 1 only with it), for every wrap mode.
func TestEpochAndDynamicTLSCrypt(t *testing.T) {
	for _, mode := range []WrapMode{WrapNone, WrapTLSAuth, WrapTLSCrypt, WrapTLSCryptV2} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			cfg.TranWindow = 30 * time.Second
			pushed := "cipher AES-256-GCM,peer-id 3,protocol-flags cc-exit tls-ekm dyn-tls-crypt aead-epoch"
			l := newLink(t, mode, cfg, serverOpts{Push: []string{pushed}, EKM: true, Epoch: true, DynTLSCrypt: true})
			l.connect()
			if !l.c.epochData || !l.c.dynTLSCrypt || l.c.renegWrapper == nil {
				t.Fatalf("epoch %v, dyn-tls-crypt %v, wrapper %v", l.c.epochData, l.c.dynTLSCrypt, l.c.renegWrapper)
			}
			roundTrip(t, l, 3)
			l.s.Renegotiate(l.now)
			for i := 0; i < 400 && sendingKey(l) != 1; i++ {
				l.advance(10 * time.Millisecond)
			}
			if sendingKey(l) != 1 || keyIDs(l.keys[len(l.keys)-1]) != "1/0" {
				t.Fatalf("key events %d; errors %v", len(l.keys), l.errs)
			}
			if l.s.RenegUnwrapped == 0 {
				t.Error("the renegotiation was not wrapped with the dynamic tls-crypt key")
			}
			roundTrip(t, l, 3)
		})
	}
}

// TestEpochNeedsAEADAndPeerID: a push asking for epoch data keys with a CBC cipher or without
// a peer-id fails like OpenVPN's, instead of running a format the server will not.
func TestEpochNeedsAEADAndPeerID(t *testing.T) {
	for _, pushed := range []string{
		"cipher AES-256-CBC,peer-id 3,protocol-flags tls-ekm aead-epoch",
		"cipher AES-256-GCM,protocol-flags tls-ekm aead-epoch",
	} {
		cfg := testConfig(t, testPKI(t))
		cfg.DataCiphers = []string{"AES-256-GCM", "AES-256-CBC"}
		l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{pushed}, EKM: true})
		l.c.Start(l.now)
		for i := 0; i < 50 && !l.has(StateReconnecting) && !l.has(StateConnected); i++ {
			l.advance(500 * time.Millisecond)
		}
		if l.has(StateConnected) || !l.has(StateReconnecting) || !strings.Contains(fmt.Sprint(l.errs), "epoch") {
			t.Errorf("%s: states %v, errors %v", pushed, l.states, l.errs)
		}
	}
}

// TestPushedTimersTakeEffect: a pushed keepalive and reneg-sec are applied by the engine, not
// just accepted (the server's reneg-sec 30 rekeys after 30 s instead of the default hour).
func TestPushedTimersTakeEffect(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	l := newLink(t, WrapTLSCrypt, cfg, serverOpts{Push: []string{"peer-id 3,cipher AES-256-GCM,keepalive 7 40,reneg-sec 30"}, EKM: false})
	l.connect()
	if l.c.ping != 7*time.Second || l.c.pingRestart != 40*time.Second || l.c.pingExit != 0 {
		t.Errorf("keepalive: ping %v ping-restart %v ping-exit %v", l.c.ping, l.c.pingRestart, l.c.pingExit)
	}
	if l.c.cfg.RenegInterval != 30*time.Second {
		t.Errorf("reneg-sec %v", l.c.cfg.RenegInterval)
	}
	l.advance(33 * time.Second)
	if len(l.keys) < 2 || l.keys[len(l.keys)-1].Primary.KeyID() != 1 {
		t.Fatalf("pushed reneg-sec 30 did not rekey within 31 s: %d key events, errors %v", len(l.keys), l.errs)
	}
}

// TestPushFiltersReachEngine: the profile's pull-filter decides on the canonical option before
// the engine applies protocol options, however the server quotes them.
func TestPushFiltersReachEngine(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.PushPolicy = push.Policy{Filters: []push.Filter{{Action: push.Ignore, Text: "ping"}, {Action: push.Ignore, Text: "peer-id"},
		{Action: push.Ignore, Text: "auth-token"}, {Action: push.Ignore, Text: "compress"}, {Action: push.Ignore, Text: "cipher"}}}
	cfg.DataCiphersFallback = "AES-256-GCM"
	l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{`"cipher" AES-128-GCM,"peer-id" 3,'ping-exit' 5,p\ing 1,ping-restart 9,` +
		`"auth-token" SECRET,compr"ess" lz4-v2,protocol-flags cc-exit tls-ekm`}, EKM: true})
	l.connect()
	if l.c.pingExit != 0 || l.c.pingRestart != cfg.PingRestart || l.c.ping != cfg.Ping || l.c.peerID != wire.NoPeerID {
		t.Errorf("filtered options applied: ping %v ping-exit %v ping-restart %v peer-id %d", l.c.ping, l.c.pingExit, l.c.pingRestart, l.c.peerID)
	}
	if l.c.token != "" || l.c.compression != cfg.Compression || l.c.cipher != "AES-256-GCM" {
		t.Errorf("filtered options applied: token %q compression %v cipher %s", l.c.token, l.c.compression, l.c.cipher)
	}
	if l.reply == nil || len(l.reply.Warnings) != 7 {
		t.Errorf("want 7 pull-filter warnings, got %+v", l.reply)
	}

	cfg = testConfig(t, testPKI(t))
	cfg.PushPolicy = push.Policy{Filters: []push.Filter{{Action: push.Reject, Text: "route "}}}
	l = newLink(t, WrapNone, cfg, serverOpts{Push: []string{`cipher AES-256-GCM,"route" 10.0.0.0 255.0.0.0`}, EKM: true})
	l.c.Start(l.now)
	for i := 0; i < 100 && !l.has(StateReconnecting); i++ {
		l.advance(500 * time.Millisecond)
	}
	if st := l.lastState(); st.State != StateReconnecting || st.Reason != "push-rejected" || l.has(StateConnected) {
		t.Errorf("pull-filter reject: states %v", l.states)
	}
}

// TestRekeyAckBeforeNewKeys: OpenVPN's server uses a renegotiated key only once our ack of its
// key-method 2 record arrived, so the ack must leave before the data path gets the new key;
// a packet the data path seals the moment the key arrives must not overtake it.
func TestRekeyAckBeforeNewKeys(t *testing.T) {
	for _, epoch := range []bool{false, true} {
		t.Run(fmt.Sprintf("epoch=%v", epoch), func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			flags := "cc-exit tls-ekm"
			if epoch {
				flags += " aead-epoch"
			}
			l := newLink(t, WrapTLSCrypt, cfg, serverOpts{Push: []string{"cipher AES-256-GCM,peer-id 3,protocol-flags " + flags}, EKM: true, Epoch: epoch})
			l.connect()
			l.sendOnKeys = true
			l.s.Tun = nil
			for round := 0; round < 3; round++ {
				n := len(l.keys)
				l.s.Renegotiate(l.now)
				for i := 0; i < 40 && len(l.keys) == n; i++ {
					l.advance(10 * time.Millisecond)
				}
				l.pump()
			}
			if l.sentOnKeys < 3 || l.s.NotReady != 0 || len(l.s.Tun) != l.sentOnKeys {
				t.Errorf("%d packets sent as keys arrived, %d reached the server, %d dropped before the server's key was active",
					l.sentOnKeys, len(l.s.Tun), l.s.NotReady)
			}
		})
	}
}

// TestPushUpdate: a PUSH_UPDATE on a live connection reaches the session as one event (after
// its continuation), its keepalive applies, and an option that may not be updated restarts
// the connection as OpenVPN does.
func TestPushUpdate(t *testing.T) {
	l := newLink(t, WrapTLSCrypt, nil, serverOpts{Push: []string{basicPush}, EKM: true})
	var updates []*push.Update
	l.connect()
	l.s.SendControlNow(l.now, "PUSH_UPDATE,route 10.9.1.0 255.255.255.0,-dns,push-continuation 2")
	l.s.SendControlNow(l.now, "PUSH_UPDATE,keepalive 3 17,push-continuation 1")
	l.pump()
	for _, e := range l.events {
		if u, ok := e.(EventPushUpdate); ok {
			updates = append(updates, u.Update)
		}
	}
	if len(updates) != 1 {
		t.Fatalf("%d update events, want 1; errors %v", len(updates), l.errs)
	}
	u := updates[0]
	if !u.Has("route") || !u.Has("dns") || len(u.Reply.Net) != 1 {
		t.Errorf("update %+v", u)
	}
	if l.c.ping != 3*time.Second || l.c.pingRestart != 17*time.Second || l.c.state != StateConnected {
		t.Errorf("ping %v ping-restart %v state %v", l.c.ping, l.c.pingRestart, l.c.state)
	}

	l.s.SendControlNow(l.now, "PUSH_UPDATE,cipher AES-128-GCM")
	l.pump()
	if st := l.lastState(); st.State != StateReconnecting || st.Reason != "push-update-failed" {
		t.Errorf("non-updatable option: states %v", l.states)
	}
}

// TestFirstFlightOnePacket: by default the ClientHello fits one control packet, as OpenVPN's
// does (an OpenVPN 2.6 server drops a second packet that arrives first, and the handshake then
// waits a tls-timeout); asking for a post-quantum group first still works and takes two.
func TestFirstFlightOnePacket(t *testing.T) {
	for _, tc := range []struct {
		name    string
		groups  []tls.CurveID
		packets int
	}{
		{"default", nil, 1},
		{"x25519mlkem768", []tls.CurveID{tls.X25519MLKEM768, tls.X25519}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			cfg.TLSGroups = tc.groups
			l := newLink(t, WrapTLSCrypt, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
			var sizes []int
			l.drop = func(toServer bool, pkt []byte) bool {
				op, _, err := wire.ParseHeader(pkt)
				if err != nil || op != wire.OpControlV1 {
					return false
				}
				if toServer {
					sizes = append(sizes, len(pkt))
					return false
				}
				return true // hold back the server's flight: only the client's first one is seen
			}
			l.c.Start(l.now)
			l.advance(150 * time.Millisecond) // less than the least retransmission delay (200 ms)
			if len(sizes) != tc.packets {
				t.Fatalf("first flight took %d control packets (sizes %v), want %d", len(sizes), sizes, tc.packets)
			}
			// The full handshake still succeeds with the group asked for.
			l.drop = nil
			for i := 0; i < 40 && !l.has(StateConnected); i++ {
				l.advance(500 * time.Millisecond)
			}
			if !l.has(StateConnected) {
				t.Fatalf("not connected: %v %v", l.states, l.errs)
			}
		})
	}
}

// TestRekeyLostAckKeepsOldKey: when our ack of the server's key-method 2 record is lost, the
// server keeps its new key inactive until it retransmits and gets the ack a tls-timeout later.
// The client must keep sealing under the old key meanwhile (which the server still accepts)
// instead of sending data the server drops, and switch once the server uses the new key.
func TestRekeyLostAckKeepsOldKey(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.TranWindow = 60 * time.Second
	l := newLink(t, WrapTLSCrypt, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	roundTrip(t, l, 2)
	dropped := 0
	l.drop = func(toServer bool, pkt []byte) bool {
		op, keyID, err := wire.ParseHeader(pkt)
		if err != nil || !toServer || keyID != 1 || op != wire.OpAckV1 || dropped > 0 {
			return false
		}
		if l.c.primary == nil || l.c.primary.id != 1 || l.c.primary.keys == nil {
			return false // an ack from before the server's key-method 2 record
		}
		dropped++
		return true
	}
	l.s.Renegotiate(l.now)
	l.s.Tun, l.tun = nil, nil
	sent := 0
	for i := 0; i < 400 && sendingKey(l) != 1; i++ {
		l.c.SendTunPacket(l.now, ipPacket(sent))
		l.s.SendData(ipPacket(sent))
		sent++
		l.advance(10 * time.Millisecond)
	}
	l.pump()
	if dropped != 1 {
		t.Fatalf("the ack of the server's key-method 2 record was not dropped (%d)", dropped)
	}
	if sendingKey(l) != 1 {
		t.Fatalf("never switched to the new key: %v, errors %v", l.keys, l.errs)
	}
	if l.s.NotReady != 0 || len(l.s.Tun) != sent || len(l.tun) != sent {
		t.Fatalf("sent %d: server dropped %d under its inactive key, got %d; client got %d", sent, l.s.NotReady, len(l.s.Tun), len(l.tun))
	}
	// The switch came with the server's retransmission, not before: well over a second in.
	if sent < 150 {
		t.Errorf("switched after %d×10 ms, before the server could have had the ack", sent)
	}
	roundTrip(t, l, 3)
}

// TestRekeysKeepMemoryFlat: renegotiations leave nothing behind: after 300 rekeys (each with
// traffic both ways and a transition window that expires) the live heap and the goroutine count
// are what they were after the first few.
func TestRekeysKeepMemoryFlat(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.RenegInterval = 10 * time.Second
	cfg.TranWindow = 5 * time.Second
	l := newLink(t, WrapTLSCrypt, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	live := func() (uint64, int) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse, runtime.NumGoroutine()
	}
	var heap0 uint64
	var g0 int
	for i := range 300 {
		l.advance(10 * time.Second)
		roundTrip(t, l, 1)
		l.events, l.keys, l.states = nil, nil, nil // the test's own record of events
		if i == 20 {
			heap0, g0 = live()
		}
	}
	heap1, g1 := live()
	if g1 != g0 || heap1 > heap0+1<<20 {
		t.Errorf("after 20 rekeys: heap %d KB, %d goroutines; after 300: heap %d KB, %d goroutines", heap0>>10, g0, heap1>>10, g1)
	}
	if l.c.state != StateConnected {
		t.Errorf("state %v; errors %v", l.c.state, l.errs)
	}
}
