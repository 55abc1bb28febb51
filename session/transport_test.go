package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestUDPBatch sends batches (with GSO runs of equal sizes and a short tail, and
// without) to a plain UDP listener and reads the replies back with ReadBatch.
func TestUDPBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addr  string
		noGSO bool
	}{
		{"ipv4 gso", "127.0.0.1:0", false},
		{"ipv4 no gso", "127.0.0.1:0", true},
		{"ipv6 gso", "[::1]:0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := net.ListenPacket("udp", tc.addr)
			if err != nil {
				t.Skipf("no %s: %v", tc.addr, err)
			}
			defer srv.Close()
			_ = srv.(*net.UDPConn).SetReadBuffer(4 << 20)
			remote := srv.LocalAddr().(*net.UDPAddr).AddrPort()
			u, err := dialUDP(context.Background(), remote, udpDialOptions{NoGSO: tc.noGSO})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()

			var pkts [][]byte
			for i := range 60 {
				size := 1200
				if i%25 == 24 {
					size = 300 // a short one ends a GSO run
				}
				p := make([]byte, size)
				binary.BigEndian.PutUint32(p, uint32(i))
				pkts = append(pkts, p)
			}
			if err := u.WriteBatch(pkts); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 65536)
			_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
			var from net.Addr
			for i := range pkts {
				n, a, err := srv.ReadFrom(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				from = a
				if !bytes.Equal(buf[:n], pkts[i]) {
					t.Fatalf("datagram %d: got %d bytes id %d, want %d bytes id %d", i, n, binary.BigEndian.Uint32(buf), len(pkts[i]), i)
				}
			}
			if got := u.LocalAddr(); got.Port() != uint16(from.(*net.UDPAddr).Port) {
				t.Errorf("LocalAddr %v, datagrams from %v", got, from)
			}
			for _, p := range pkts[:10] {
				if _, err := srv.WriteTo(p, from); err != nil {
					t.Fatal(err)
				}
			}
			bufs := make([][]byte, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			sizes := make([]int, 8)
			got := 0
			for got < 10 {
				n, err := u.ReadBatch(bufs, sizes)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					if !bytes.Equal(bufs[i][:sizes[i]], pkts[got]) {
						t.Fatalf("reply %d differs", got)
					}
					got++
				}
			}
			if err := u.WritePacket([]byte("ctl")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUDPCloseUnblocksRead(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u, err := dialUDP(context.Background(), srv.LocalAddr().(*net.UDPAddr).AddrPort(), udpDialOptions{Local: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		bufs := [][]byte{make([]byte, 100)}
		_, err := u.ReadBatch(bufs, make([]int, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	u.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("ReadBatch after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadBatch still blocked after Close")
	}
}

func TestTCPFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(srvc)
			return
		}
		srvc <- c
	}()
	tc, err := dialTCP(context.Background(), ln.Addr().(*net.TCPAddr).AddrPort(), udpDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	srv := <-srvc
	if srv == nil {
		t.Fatal("accept failed")
	}
	defer srv.Close()

	pkts := [][]byte{[]byte("hello"), bytes.Repeat([]byte{7}, 1500), {}, []byte("x")}
	if err := tc.WriteBatch(pkts[:2]); err != nil {
		t.Fatal(err)
	}
	if err := tc.WritePacket(pkts[3]); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 5}
	want = append(want, pkts[0]...)
	want = append(want, 0x05, 0xdc)
	want = append(want, pkts[1]...)
	want = append(want, 0, 1, 'x')
	got := make([]byte, len(want))
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readFull(srv, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stream %x, want %x", got, want)
	}

	// Frames split across writes and several in one write both come out whole.
	stream := []byte{0, 3, 'a', 'b', 'c', 0, 0, 0, 2, 'd'}
	if _, err := srv.Write(stream[:4]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := srv.Write(append(stream[4:], 'e')); err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 100)}
	sizes := make([]int, 3)
	var frames []string
	for len(frames) < 3 {
		n, err := tc.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			frames = append(frames, string(bufs[i][:sizes[i]]))
		}
	}
	if frames[0] != "abc" || frames[1] != "" || frames[2] != "de" {
		t.Errorf("frames %q", frames)
	}

	// A frame larger than the buffers is an error, not a panic or a short read.
	if _, err := srv.Write([]byte{0x01, 0x00}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.ReadBatch(bufs, sizes); err == nil {
		t.Error("oversized frame accepted")
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
