package session

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUDPReportsFirstICMPError: a datagram to a port nobody listens on comes back as
// "connection refused"; the socket reports it once, at once, instead of staying silent until
// the handshake times out.
func TestUDPReportsFirstICMPError(t *testing.T) {
	// A port that was just free on loopback: bind, note it, close.
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skip("no loopback UDP:", err)
	}
	remote := l.LocalAddr().(*net.UDPAddr).AddrPort()
	l.Close()

	got := make(chan error, 4)
	u, err := dialUDP(context.Background(), netip.AddrPortFrom(remote.Addr(), remote.Port()), udpDialOptions{
		OnICMP: func(err error) { got <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		bufs := [][]byte{make([]byte, 2048)}
		u.ReadBatch(bufs, make([]int, 1))
	}()
	for range 3 {
		if err := u.WritePacket([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-got:
		if !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("reported %v, want connection refused", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no ICMP error reported")
	}
	u.Close()
	<-readDone
	if len(got) != 0 {
		t.Errorf("reported %d more times", len(got))
	}
}
