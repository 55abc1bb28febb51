package engine

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestFragmentSlowPath runs the slow data path with --fragment against a test
// server that fragments too: large packets go both ways in pieces no larger
// than the limit, and pings and the exit notification carry the fragment
// header (the server would not recognise them otherwise).
func TestFragmentSlowPath(t *testing.T) {
	const link = 300
	cfg := testConfig(t, testPKI(t))
	cfg.Fragment = link
	l := newLink(t, WrapTLSCrypt, cfg, serverOpts{Push: []string{basicPush}, EKM: true, Fragment: 200})
	l.connect()
	if !strings.Contains(cfg.optionsString(), ",mtu-dynamic") {
		t.Errorf("options string %q lacks mtu-dynamic", cfg.optionsString())
	}
	big := func(n, seed int) []byte {
		b := make([]byte, n)
		b[0] = 0x45
		for i := 1; i < n; i++ {
			b[i] = byte(seed + i*3)
		}
		return b
	}
	sizes := []int{60, 250, 299, 300, 301, 700, 1400, 1500}
	var sent [][]byte
	for i, n := range sizes {
		l.c.SendTunPacket(l.now, big(n, i))
		l.s.SendData(big(n, 100+i))
		sent = append(sent, big(n, i))
	}
	for _, p := range l.collect() {
		// Wire overhead with tls-ekm AES-256-GCM and a peer id: 24 bytes.
		if len(p) > link {
			t.Errorf("client sent a %d-byte data packet with fragment %d", len(p), link)
		}
		l.s.Handle(l.now, p)
	}
	l.pump()
	if len(l.s.Tun) != len(sizes) || len(l.tun) != len(sizes) {
		t.Fatalf("server got %d, client got %d packets, want %d each; errors %v", len(l.s.Tun), len(l.tun), len(sizes), l.errs)
	}
	for i := range sizes {
		if !bytes.Equal(l.s.Tun[i], sent[i]) || !bytes.Equal(l.tun[i], big(sizes[i], 100+i)) {
			t.Fatalf("packet %d (%d bytes) corrupted", i, sizes[i])
		}
	}
	pings := l.s.Pings
	l.advance(11 * time.Second) // the push says ping 10
	if l.s.Pings <= pings {
		t.Errorf("server saw no ping with fragment on (%d before, %d after)", pings, l.s.Pings)
	}
}

func TestFragmentNeedsUDP(t *testing.T) {
	cfg := testConfig(t, testPKI(t))
	cfg.Fragment = 1300
	cfg.Proto = ProtoTCP
	if _, err := NewClient(cfg); err == nil || !strings.Contains(err.Error(), "UDP") {
		t.Fatalf("NewClient with fragment over TCP: %v", err)
	}
}
