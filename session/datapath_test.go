package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/internal/israce"
)

// fakeKeys is a stand-in cipher with the shape of an AEAD P_DATA_V2 packet:
// 8 header bytes before the payload and a 16-byte "tag" (a checksum) after it.
type fakeKeys struct {
	id  uint8
	pid uint32
	mu  sync.Mutex
}

const fakeHead, fakeTail = 8, 16

func (k *fakeKeys) KeyID() uint8 { return k.id }

// FrameOverhead lets the mssfix clamp work with the fake: the header and tag
// count as wire overhead, as an AEAD's would.
func (k *fakeKeys) FrameOverhead() datachannel.FrameOverhead {
	return datachannel.FrameOverhead{Header: fakeHead + fakeTail}
}

func (k *fakeKeys) Seal(buf []byte, off, n int) ([]byte, error) {
	if off < fakeHead || len(buf) < off+n+fakeTail {
		return nil, errors.New("no room")
	}
	k.mu.Lock()
	k.pid++
	pid := k.pid
	k.mu.Unlock()
	p := buf[off-fakeHead : off+n+fakeTail]
	p[0] = 9<<3 | k.id
	p[1], p[2], p[3] = 0, 0, 1
	binary.BigEndian.PutUint32(p[4:], pid)
	var sum byte
	for _, b := range buf[off : off+n] {
		sum ^= b
	}
	for i := range fakeTail {
		p[fakeHead+n+i] = sum + byte(i)
	}
	return p, nil
}

func (k *fakeKeys) OpenTo(pkt, _ []byte) ([]byte, error) {
	if len(pkt) < fakeHead+fakeTail || pkt[0] != 9<<3|k.id {
		return nil, errors.New("bad packet")
	}
	pl := pkt[fakeHead : len(pkt)-fakeTail]
	var sum byte
	for _, b := range pl {
		sum ^= b
	}
	for i := range fakeTail {
		if pkt[len(pkt)-fakeTail+i] != sum+byte(i) {
			return nil, errors.New("bad tag")
		}
	}
	return pl, nil
}

// The fake has no compression framing: Frame and Unframe leave the payload
// as it is, and the framed variants are Seal and OpenTo.
func (k *fakeKeys) Frame(buf []byte, off, n int) (int, int)           { return off, off + n }
func (k *fakeKeys) SealFramed(buf []byte, off, n int) ([]byte, error) { return k.Seal(buf, off, n) }
func (k *fakeKeys) OpenFramed(pkt []byte) ([]byte, error)             { return k.OpenTo(pkt, nil) }
func (k *fakeKeys) Unframe(p, _ []byte) ([]byte, error)               { return p, nil }

// fakeTun returns queued packets from Read and records Write.
type fakeTun struct {
	in      [][]byte
	consume bool
	written [][]byte
	record  bool
	nwrites int
}

func (t *fakeTun) Read(bufs [][]byte, sizes []int, off int) (int, error) {
	n := 0
	for n < len(bufs) && n < len(t.in) {
		sizes[n] = copy(bufs[n][off:], t.in[n])
		n++
	}
	if n == 0 {
		return 0, os.ErrClosed
	}
	if t.consume {
		t.in = t.in[n:]
	}
	return n, nil
}

func (t *fakeTun) Write(bufs [][]byte, off int) (int, error) {
	t.nwrites += len(bufs)
	if t.record {
		for _, b := range bufs {
			t.written = append(t.written, append([]byte(nil), b[off:]...))
		}
	}
	return len(bufs), nil
}

func (t *fakeTun) BatchSize() int { return maxBatch }
func (t *fakeTun) Close() error   { return nil }

// fakeConn returns queued datagrams from ReadBatch and records WriteBatch.
type fakeConn struct {
	in     [][]byte
	sent   [][]byte
	record bool
	nsent  int
}

func (c *fakeConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	n := 0
	for n < len(bufs) && n < len(c.in) {
		sizes[n] = copy(bufs[n], c.in[n])
		n++
	}
	if n == 0 {
		return 0, net.ErrClosed
	}
	c.in = c.in[n:]
	return n, nil
}

func (c *fakeConn) WriteBatch(pkts [][]byte) error {
	c.nsent += len(pkts)
	if c.record {
		for _, p := range pkts {
			c.sent = append(c.sent, append([]byte(nil), p...))
		}
	}
	return nil
}

func (c *fakeConn) WritePacket(p []byte) error { return c.WriteBatch([][]byte{p}) }
func (c *fakeConn) Close() error               { return nil }

func testPackets(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		p := make([]byte, size+i%7)
		p[0] = 0x45
		for j := 1; j < len(p); j++ {
			p[j] = byte(i*31 + j)
		}
		out[i] = p
	}
	return out
}

func newTestPath(t testing.TB, tn *fakeTun, c *fakeConn) (*dataPath, *connRef, chan *ctrlPacket) {
	t.Helper()
	ctrl := make(chan *ctrlPacket, 16)
	errc := make(chan error, 1)
	d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: 32, Tailroom: 32, MTU: 1500}, func(string, ...any) {})
	ref := &connRef{conn: c, ctrl: ctrl, errc: errc}
	d.conn.Store(ref)
	return d, ref, ctrl
}

func TestDataPathRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, size int
		noKeys  bool
	}{
		{"one", 1, 60, false},
		{"batch", 100, 1400, false},
		{"more than a batch", 300, 200, false},
		{"no keys drops", 5, 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts := testPackets(tc.n, tc.size)
			tn := &fakeTun{in: pkts, record: true, consume: true}
			c := &fakeConn{record: true}
			d, _, _ := newTestPath(t, tn, c)
			withKeys := !tc.noKeys
			if withKeys {
				d.setKeys(&keySet{primary: &fakeKeys{id: 1}})
			}
			for len(tn.in) > 0 {
				n, err := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
				if err != nil {
					t.Fatal(err)
				}
				d.sealAndSend(n)
			}
			if !withKeys {
				if len(c.sent) != 0 || d.cnt.dropped.Load() != uint64(tc.n) {
					t.Fatalf("sent %d, dropped %d; want 0, %d", len(c.sent), d.cnt.dropped.Load(), tc.n)
				}
				return
			}
			if len(c.sent) != tc.n {
				t.Fatalf("sent %d packets, want %d", len(c.sent), tc.n)
			}
			// Feed the sealed packets back through the receive side.
			c2 := &fakeConn{in: c.sent}
			tn2 := &fakeTun{record: true}
			d2, ref2, _ := newTestPath(t, tn2, c2)
			d2.setKeys(&keySet{primary: &fakeKeys{id: 2}, retiring: &fakeKeys{id: 1}})
			d2.RoutineSocketToTun(ref2)
			if len(tn2.written) != tc.n {
				t.Fatalf("wrote %d packets to tun, want %d", len(tn2.written), tc.n)
			}
			for i := range pkts {
				if !bytes.Equal(tn2.written[i], pkts[i]) {
					t.Fatalf("packet %d differs", i)
				}
			}
			s := d2.cnt.snapshot()
			if s.PacketsIn != uint64(tc.n) || s.LastRecv.IsZero() {
				t.Errorf("counters %+v", s)
			}
		})
	}
}

// TestSocketToTunClassifies checks that pings, control packets, unknown keys and
// forgeries take their own ways.
func TestSocketToTunClassifies(t *testing.T) {
	k := &fakeKeys{id: 3}
	seal := func(p []byte) []byte {
		buf := make([]byte, 64+len(p)+64)
		copy(buf[64:], p)
		out, err := k.Seal(buf, 64, len(p))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ip := []byte{0x45, 1, 2, 3, 4, 5}
	forged := seal(ip)
	forged[len(forged)-1] ^= 1
	wrongKey := seal(ip)
	wrongKey[0] = 9<<3 | 5
	control := []byte{4 << 3, 1, 2, 3, 4, 5, 6, 7, 8, 0}
	c := &fakeConn{in: [][]byte{seal(pingMagic[:]), control, forged, wrongKey, seal(ip), {}}}
	tn := &fakeTun{record: true}
	d, ref, ctrl := newTestPath(t, tn, c)
	d.setKeys(&keySet{primary: k})
	d.RoutineSocketToTun(ref)
	if len(tn.written) != 1 || !bytes.Equal(tn.written[0], ip) {
		t.Errorf("tun got %x, want only %x", tn.written, ip)
	}
	select {
	case p := <-ctrl:
		if !bytes.Equal(p.b, control) {
			t.Errorf("control packet %x, want %x", p.b, control)
		}
	default:
		t.Error("control packet not forwarded")
	}
	s := d.cnt.snapshot()
	if s.DecryptErrors != 1 || s.Dropped != 1 || s.PacketsIn != 1 || s.LastRecv.IsZero() {
		t.Errorf("counters %+v, want 1 decrypt error, 1 dropped, 1 in", s)
	}
}

// TestDataPathZeroAllocs proves the per-batch work allocates nothing.
func TestDataPathZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	pkts := testPackets(maxBatch, 1400)
	// SYNs among them keep the mssfix clamp busy in both directions.
	for i := 0; i < len(pkts); i += 9 {
		pkts[i] = tcpPacket(i%2 == 0, 0x02, synOpts(1460), nil, nil)
	}
	tn := &fakeTun{in: pkts}
	c := &fakeConn{}
	d, ref, _ := newTestPath(t, tn, c)
	d.setMSSFix(mssFixConfig{N: 1492, Encap: true})
	ks := &keySet{primary: &fakeKeys{id: 1}}
	d.setKeys(ks)
	if ks.mss.v4 == 0 {
		t.Fatal("mssfix clamp not active")
	}
	n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
	if a := testing.AllocsPerRun(50, func() {
		d.sealAndSend(n)
	}); a != 0 {
		t.Errorf("sealAndSend: %v allocs per batch, want 0", a)
	}
	// Build sealed datagrams once, then open them repeatedly (the fake has no
	// replay window) from the receive buffers.
	sealed := make([][]byte, maxBatch)
	for i := range sealed {
		p, err := ks.primary.Seal(d.tx.bufs[i], d.txOff, d.tx.sizes[i])
		if err != nil {
			t.Fatal(err)
		}
		sealed[i] = append([]byte(nil), p...)
	}
	if a := testing.AllocsPerRun(50, func() {
		for i, p := range sealed {
			d.rx.sizes[i] = copy(d.rx.bufs[i][tunWriteOffset:], p)
		}
		d.openAndWrite(ref, len(sealed))
	}); a != 0 {
		t.Errorf("openAndWrite: %v allocs per batch, want 0", a)
	}
	if tn.nwrites == 0 {
		t.Fatal("nothing written to tun")
	}
}

func BenchmarkDataPath(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			pkts := testPackets(maxBatch, size)
			tn := &fakeTun{in: pkts}
			c := &fakeConn{}
			d, _, _ := newTestPath(b, tn, c)
			d.setKeys(&keySet{primary: &fakeKeys{id: 1}})
			n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
			b.ReportAllocs()
			b.SetBytes(int64(size * n))
			for b.Loop() {
				d.sealAndSend(n)
			}
		})
	}
}

// errTun fails some reads the way the tun package reports one bad packet, then
// the way a dead device does.
type errTun struct {
	fakeTun
	reads []error
}

func (t *errTun) Read(bufs [][]byte, sizes []int, off int) (int, error) {
	if len(t.reads) == 0 {
		return 0, os.ErrClosed
	}
	err := t.reads[0]
	t.reads = t.reads[1:]
	if err != nil {
		return 0, err
	}
	sizes[0] = copy(bufs[0][off:], testPackets(1, 100)[0])
	return 1, nil
}

// TestTunReadOversizeDropped: a packet larger than the buffers (a pushed
// tun-mtu above what they were sized for) is dropped and counted, and the tun
// reader goes on; only a failing device ends it, and that is reported.
func TestTunReadOversizeDropped(t *testing.T) {
	tn := &errTun{reads: []error{
		nil,
		errors.New("read len 2028 overflows bufs element len 1800"),
		errors.New("read len 2028 overflows bufs element len 1800"),
		nil,
		&fs.PathError{Op: "read", Path: "/dev/net/tun", Err: syscall.EIO},
	}}
	c := &fakeConn{}
	var warns []string
	ctrl := make(chan *ctrlPacket, 16)
	errc := make(chan error, 1)
	d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: 32, Tailroom: 32, MTU: 1500,
		Warnf: func(f string, a ...any) { warns = append(warns, fmt.Sprintf(f, a...)) }}, func(string, ...any) {})
	d.conn.Store(&connRef{conn: c, ctrl: ctrl, errc: errc})
	d.keys.Store(&keySet{primary: &fakeKeys{}})
	d.RoutineTunToSocket()
	if c.nsent != 2 || d.cnt.dropped.Load() != 2 {
		t.Errorf("sent %d, dropped %d; want 2 and 2", c.nsent, d.cnt.dropped.Load())
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "overflows") {
		t.Errorf("warnings %q, want one", warns)
	}
	select {
	case err := <-errc:
		var te *tunError
		if !errors.As(err, &te) {
			t.Errorf("device failure reported as %v", err)
		}
	default:
		t.Error("device failure not reported")
	}
}

// TestDataPathBuffersHoldMaxMTU: the buffers hold a packet of the MTU they
// were sized for.
func TestDataPathBuffersHoldMaxMTU(t *testing.T) {
	d := newDataPath(&fakeTun{}, &counters{}, dataPathConfig{Headroom: 32, Tailroom: 32, MTU: 9000}, func(string, ...any) {})
	if got := len(d.tx.bufs[0]) - d.txOff; got < 9000+32 {
		t.Errorf("tx buffer holds %d bytes past the headroom, want 9000 + tailroom", got)
	}
}
