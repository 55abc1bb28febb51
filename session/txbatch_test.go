package session

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"testing"
	"time"
)

// pipeTun is a fake tun device backed by a pipe, so that the tun reader can
// poll it: every queued packet is one byte in the pipe, and Read hands out
// perRead packets at a time, consuming their bytes.
type pipeTun struct {
	fakeTun
	r, w    *os.File
	perRead int
	reads   int
}

func newPipeTun(t *testing.T, pkts [][]byte, perRead int) *pipeTun {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	if _, err := w.Write(make([]byte, len(pkts))); err != nil {
		t.Fatal(err)
	}
	return &pipeTun{fakeTun: fakeTun{in: pkts, consume: true}, r: r, w: w, perRead: perRead}
}

func (t *pipeTun) File() *os.File { return t.r }

func (t *pipeTun) Read(bufs [][]byte, sizes []int, off int) (int, error) {
	t.reads++
	n, err := t.fakeTun.Read(bufs[:min(len(bufs), t.perRead)], sizes, off)
	if n > 0 {
		if _, err := t.r.Read(make([]byte, n)); err != nil {
			return n, err
		}
	}
	return n, err
}

// countingConn counts WriteBatch calls.
type countingConn struct {
	fakeConn
	batches int
}

func (c *countingConn) WriteBatch(pkts [][]byte) error {
	c.batches++
	return c.fakeConn.WriteBatch(pkts)
}

// TestTunReaderGathersQueuedPackets: packets already queued in the device go
// out in one send, in order, however the device hands them over.
func TestTunReaderGathersQueuedPackets(t *testing.T) {
	pkts := testPackets(100, 1000)
	tn := newPipeTun(t, pkts, 7)
	c := &countingConn{fakeConn: fakeConn{record: true}}
	ctrl := make(chan *ctrlPacket, 16)
	d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: 32, Tailroom: 32, MTU: 1500}, func(string, ...any) {})
	if d.tx.poll == nil || len(d.tx.bufs) != txBatch {
		t.Fatalf("a pollable device: poller %v, %d buffers, want %d", d.tx.poll != nil, len(d.tx.bufs), txBatch)
	}
	d.conn.Store(&connRef{conn: c, ctrl: ctrl, errc: make(chan error, 1)})
	d.setKeys(&keySet{primary: &fakeKeys{id: 1}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.RoutineTunToSocket() // ends when the fake runs dry (os.ErrClosed)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tun reader did not stop")
	}
	if tn.reads != 100/7+2 {
		t.Errorf("%d device reads, want %d", tn.reads, 100/7+2)
	}
	if len(c.sent) != len(pkts) {
		t.Fatalf("sent %d packets, want %d", len(c.sent), len(pkts))
	}
	if c.batches != 1 {
		t.Errorf("%d sends, want the queued packets in one", c.batches)
	}
	for i, p := range c.sent {
		if len(p) != len(pkts[i])+fakeHead+fakeTail {
			t.Fatalf("packet %d: %d bytes sealed, want %d", i, len(p), len(pkts[i])+fakeHead+fakeTail)
		}
	}
}

// TestTunPollerReadable: the poller sees what a read would return, without
// consuming it.
func TestTunPollerReadable(t *testing.T) {
	tn := newPipeTun(t, nil, 1)
	p := newTunPoller(tn)
	if p == nil {
		t.Fatal("no poller for a file-backed device")
	}
	if p.readable() {
		t.Fatal("empty device reported readable")
	}
	if _, err := tn.w.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // polling consumes nothing
		if !p.readable() {
			t.Fatal("device with a queued packet not readable")
		}
	}
	if newTunPoller(&fakeTun{}) != nil {
		t.Fatal("poller for a device without a file")
	}
}

func TestPaceSpread(t *testing.T) {
	var p pacer
	t0 := time.Unix(1000, 0)
	if d := p.spread(t0, 100000); d != 0 {
		t.Errorf("first batch spread over %v, want 0", d)
	}
	if d := p.spread(t0.Add(400*time.Microsecond), 100000); d != 200*time.Microsecond {
		t.Errorf("batch after 400µs spread over %v, want 200µs", d)
	}
	if d := p.spread(t0.Add(time.Second), 100000); d != paceMaxSpread {
		t.Errorf("batch after an idle second spread over %v, want %v", d, paceMaxSpread)
	}
	for _, tc := range []struct {
		d        time.Duration
		n, total int
		want     time.Duration
	}{
		{time.Millisecond, 50000, 100000, 500 * time.Microsecond},
		{time.Millisecond, 1000, 100000, 0}, // 10 µs: not worth a sleep
		{time.Millisecond, 100, 0, 0},
		{0, 50000, 100000, 0},
	} {
		if g := paceGap(tc.d, tc.n, tc.total); g != tc.want {
			t.Errorf("paceGap(%v, %d, %d) = %v, want %v", tc.d, tc.n, tc.total, g, tc.want)
		}
	}
}

// TestUDPPacedBatch sends a batch of several GSO messages spread over a few
// milliseconds, one message per call with pauses between, and checks that
// every datagram arrives, in order.
func TestUDPPacedBatch(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_ = srv.SetReadBuffer(4 << 20)
	u, err := dialUDP(context.Background(), srv.LocalAddr().(*net.UDPAddr).AddrPort(), udpDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pkts := numberedPackets(200, func(int) int { return 1400 })
	// The previous batch was handed over 8 ms ago: this one is spread over 2 ms.
	u.wr.pace.last = time.Now().Add(-8 * time.Millisecond)
	if err := u.WriteBatch(pkts); err != nil {
		t.Fatal(err)
	}
	if u.wr.spread != paceMaxSpread {
		t.Errorf("spread %v, want %v", u.wr.spread, paceMaxSpread)
	}
	buf := make([]byte, 2048)
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range pkts {
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if n != 1400 || binary.BigEndian.Uint32(buf) != uint32(i) {
			t.Fatalf("datagram %d: %d bytes, id %d", i, n, binary.BigEndian.Uint32(buf))
		}
	}
}

// TestSendSideAllocatesNothing: the poll that gathers tun reads and a paced,
// GSO-sized UDP send allocate nothing per batch.
func TestSendSideAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("sends real datagrams")
	}
	tn := newPipeTun(t, make([][]byte, 1), 1)
	p := newTunPoller(tn)
	if a := testing.AllocsPerRun(100, func() { p.readable() }); a != 0 {
		t.Errorf("tunPoller.readable: %v allocs, want 0", a)
	}
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u, err := dialUDP(context.Background(), srv.LocalAddr().(*net.UDPAddr).AddrPort(), udpDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pkts := numberedPackets(100, func(int) int { return 1400 })
	if a := testing.AllocsPerRun(20, func() {
		// As if handed over 1 ms after the previous batch: spread over 500 µs.
		u.wr.pace.last = time.Now().Add(-time.Millisecond)
		if err := u.WriteBatch(pkts); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("paced WriteBatch: %v allocs, want 0", a)
	}
}
