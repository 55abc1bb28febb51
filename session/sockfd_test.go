package session

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// The one-shot registration is re-armed by every wait: a reader that finds the socket empty
// time after time is woken by each next datagram, and a control packet goes out while the
// data path's writer uses the same socket.
func TestUDPReaderWakesAfterEachWait(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u, err := dialUDP(context.Background(), srv.LocalAddr().(*net.UDPAddr).AddrPort(), udpDialOptions{NoGSO: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	client := net.UDPAddrFromAddrPort(u.LocalAddr())
	got := make(chan string)
	go func() {
		bufs := [][]byte{make([]byte, 100)}
		sizes := make([]int, 1)
		for {
			n, err := u.ReadBatch(bufs, sizes)
			if err != nil {
				close(got)
				return
			}
			if n == 1 {
				got <- string(bufs[0][:sizes[0]])
			}
		}
	}()
	for i := range 50 {
		if i%10 == 0 {
			// Let the reader park now and then rather than find the next datagram queued.
			time.Sleep(5 * time.Millisecond)
		}
		want := fmt.Sprint("datagram ", i)
		if _, err := srv.WriteToUDP([]byte(want), client); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("read %q, want %q", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("reader not woken for datagram %d", i)
		}
		if err := u.WriteBatch([][]byte{[]byte("data")}); err != nil {
			t.Fatal(err)
		}
		if err := u.WritePacket([]byte("control")); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	for i := range 100 {
		_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatalf("server read %d: %v", i, err)
		}
		if want := []string{"data", "control"}[i%2]; string(buf[:n]) != want {
			t.Fatalf("server read %q, want %q", buf[:n], want)
		}
	}
	u.Close()
	if _, ok := <-got; ok {
		t.Fatal("reader went on after Close")
	}
}
