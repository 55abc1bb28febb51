package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groPair returns a GSO sender and a GRO receiver on loopback, where the
// kernel passes a GSO send to a GRO socket as one coalesced datagram.
func groPair(t testing.TB, senderGSO bool) (tx, rx *udpConn) {
	t.Helper()
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = l.SetReadBuffer(8 << 20)
	rx, err = newUDPConn(l, l.LocalAddr().(*net.UDPAddr).AddrPort(), maxBatch, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	if !rx.rd.gro {
		t.Skip("kernel without UDP_GRO")
	}
	tx, err = dialUDP(context.Background(), rx.LocalAddr(), udpDialOptions{NoGSO: !senderGSO})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	return tx, rx
}

func numberedPackets(n int, size func(i int) int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		p := make([]byte, size(i))
		for j := range p {
			p[j] = byte(i + j)
		}
		binary.BigEndian.PutUint32(p, uint32(i))
		pkts[i] = p
	}
	return pkts
}

// readAll reads len(want) packets with small batches, so coalesced datagrams
// are split over several calls, and checks them in order.
func readAll(t *testing.T, rx *udpConn, want [][]byte) {
	t.Helper()
	bufs := make([][]byte, 7)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, len(bufs))
	got := 0
	for got < len(want) {
		n, err := rx.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !bytes.Equal(bufs[i][:sizes[i]], want[got]) {
				t.Fatalf("packet %d: got %d bytes id %d, want %d bytes", got, sizes[i], binary.BigEndian.Uint32(bufs[i]), len(want[got]))
			}
			got++
		}
	}
}

// TestUDPGROSplitsInOrder sends GSO runs (equal sizes, short tails) that the
// loopback delivers coalesced, and checks that ReadBatch splits them back
// into the original datagrams, in order, across calls.
func TestUDPGROSplitsInOrder(t *testing.T) {
	tx, rx := groPair(t, true)
	if !tx.wr.gso {
		t.Skip("kernel without UDP_SEGMENT")
	}
	pkts := numberedPackets(200, func(i int) int {
		if i%30 == 29 {
			return 333
		}
		return 1200 + i/100 // two runs of different segment sizes
	})
	if err := tx.WriteBatch(pkts); err != nil {
		t.Fatal(err)
	}
	readAll(t, rx, pkts)
	if !rx.rd.groSeen {
		t.Error("no coalesced datagram seen on loopback")
	}
}

// TestUDPGROProbeTurnsOff checks that a receiver that never sees a
// coalesced datagram goes back to receiving in place.
func TestUDPGROProbeTurnsOff(t *testing.T) {
	tx, rx := groPair(t, false)
	pkts := numberedPackets(groProbe+100, func(int) int { return 100 })
	for i := 0; i < len(pkts); i += 500 {
		batch := pkts[i:min(i+500, len(pkts))]
		if err := tx.WriteBatch(batch); err != nil {
			t.Fatal(err)
		}
		readAll(t, rx, batch)
	}
	if rx.rd.gro {
		t.Error("UDP GRO still on after the probe")
	}
	v := 1
	_ = rx.rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO) })
	if v != 0 {
		t.Errorf("UDP_GRO socket option %d after the probe, want 0", v)
	}
}

func FuzzGROSegmentSize(f *testing.F) {
	cm := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&cm[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(cm[unix.CmsgLen(0):], 1400)
	f.Add(cm, len(cm))
	f.Add(cm[:8], 100)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, oob []byte, n int) {
		// The kernel hands over aligned buffers; so does receiveGRO.
		buf := make([]byte, len(oob)+8)
		al := buf[:len(oob)]
		copy(al, oob)
		_ = groSegmentSize(al, n)
	})
}

func BenchmarkUDPReadGRO(b *testing.B) {
	tx, rx := groPair(b, true)
	if !tx.wr.gso {
		b.Skip("kernel without UDP_SEGMENT")
	}
	pkts := numberedPackets(64, func(int) int { return 1400 })
	bufs := make([][]byte, maxBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, maxBatch)
	b.ReportAllocs()
	b.SetBytes(64 * 1400)
	for b.Loop() {
		if err := tx.WriteBatch(pkts); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(pkts); {
			n, err := rx.ReadBatch(bufs, sizes)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

func TestRxPauseAllocatesNothing(t *testing.T) {
	if a := testing.AllocsPerRun(20, func() { rxPause(time.Microsecond) }); a != 0 {
		t.Errorf("rxPause: %v allocations, want 0", a)
	}
}

// FuzzGROSplit feeds arbitrary coalesced datagrams and segment sizes to the
// splitting half of readGRO: the segments must come out in order, none larger
// than the segment size, and together exactly the datagram, whatever the
// batch size.
func FuzzGROSplit(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1, 2, 3}, 1000), 1400, 3)
	f.Add([]byte{}, 0, 1)
	f.Add([]byte{9}, -5, 8)
	f.Add(make([]byte, 5000), 5000, 1)
	f.Fuzz(func(t *testing.T, data []byte, seg, batch int) {
		if len(data) > groBufSize {
			data = data[:groBufSize]
		}
		batch = 1 + (batch&0xFF)%maxBatch
		u := &udpConn{}
		u.rd.gro, u.rd.groSeen = true, true
		u.rd.land = [][]byte{append([]byte(nil), data...)}
		u.rd.lens, u.rd.segs = []int{len(data)}, []int{seg}
		u.rd.count = 1
		bufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes := make([]int, batch)
		var got []byte
		for calls := 0; u.rd.msg < u.rd.count; calls++ {
			if calls > len(data)+1 {
				t.Fatal("splitting does not terminate")
			}
			n, err := u.ReadBatch(bufs, sizes)
			if err != nil || n == 0 {
				t.Fatalf("ReadBatch = %d, %v", n, err)
			}
			for i := range n {
				if seg > 0 && sizes[i] > seg {
					t.Fatalf("segment of %d bytes, segment size %d", sizes[i], seg)
				}
				got = append(got, bufs[i][:sizes[i]]...)
			}
		}
		if (seg > 0 && seg <= 2048 || len(data) <= 2048) && !bytes.Equal(got, data) {
			t.Fatalf("segments do not add up to the datagram (%d of %d bytes)", len(got), len(data))
		}
	})
}
