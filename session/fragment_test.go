package session

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/internal/israce"
)

// newFragPath is newTestPath with --fragment N.
func newFragPath(t testing.TB, tn *fakeTun, c *fakeConn, n int) (*dataPath, *connRef) {
	t.Helper()
	d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: 32, Tailroom: 32, MTU: 1500, Fragment: fragmentConfig{N: n}}, func(string, ...any) {})
	ref := &connRef{conn: c, ctrl: make(chan *ctrlPacket, 16), errc: make(chan error, 1)}
	d.conn.Store(ref)
	return d, ref
}

// TestFragmentDataPath sends packets of all sizes through one data path with
// fragment 500 and feeds what it put on the wire to a second one: no datagram
// exceeds the limit, every packet arrives intact, and the small ones went
// whole (fragment header zero).
func TestFragmentDataPath(t *testing.T) {
	const limit = 500
	var pkts [][]byte
	for _, n := range []int{40, 400, 472, 473, 900, 1400, 1500} {
		pkts = append(pkts, testPackets(1, n)[0][:n])
	}
	tn := &fakeTun{in: pkts, consume: true}
	c := &fakeConn{record: true}
	d, _ := newFragPath(t, tn, c, limit)
	d.setKeys(&keySet{primary: &fakeKeys{id: 1}})
	if got, want := d.keys.Load().fragPiece, limit-fakeHead-fakeTail-4; got != want {
		t.Fatalf("piece size %d, want %d", got, want)
	}
	n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
	d.sealAndSend(n)
	whole := 0
	for _, p := range c.sent {
		if len(p) > limit {
			t.Errorf("a %d-byte datagram with fragment %d", len(p), limit)
		}
		if binary.BigEndian.Uint32(p[fakeHead:]) == 0 {
			whole++
		}
	}
	// Pieces of 472: 473 and 900 take 2, 1400 takes 3, 1500 takes 4.
	if whole != 3 || len(c.sent) != 3+2+2+3+4 {
		t.Errorf("%d datagrams, %d whole; want 14, 3", len(c.sent), whole)
	}
	if s := d.cnt.snapshot(); s.PacketsOut != uint64(len(pkts)) {
		t.Errorf("counted %d packets out, want %d", s.PacketsOut, len(pkts))
	}

	rtn := &fakeTun{record: true}
	// Reversed: pieces arrive in the wrong order and interleaved with whole packets.
	in := append([][]byte(nil), c.sent...)
	for i, j := 0, len(in)-1; i < j; i, j = i+1, j-1 {
		in[i], in[j] = in[j], in[i]
	}
	rc := &fakeConn{in: in}
	r, rref := newFragPath(t, rtn, rc, limit)
	r.setKeys(&keySet{primary: &fakeKeys{id: 1}})
	r.RoutineSocketToTun(rref)
	if len(rtn.written) != len(pkts) {
		t.Fatalf("tun got %d packets, want %d", len(rtn.written), len(pkts))
	}
	got := map[int][]byte{}
	for _, p := range rtn.written {
		got[len(p)] = p
	}
	for _, p := range pkts {
		if !bytes.Equal(got[len(p)], p) {
			t.Errorf("%d-byte packet corrupted or missing", len(p))
		}
	}
	if s := r.cnt.snapshot(); s.DecryptErrors != 0 || s.Dropped != 0 || s.PacketsIn != uint64(len(pkts)) {
		t.Errorf("receiver counters %+v", s)
	}
}

// TestFragmentMSSAndPiece checks the numbers OpenVPN 2.6 derives from
// "fragment 1300" with AES-256-GCM and a peer id over IPv4 UDP: pieces of
// 1300 - 24 - 4 = 1272 bytes, and the default mssfix "1300 mtu" clamps the MSS
// to 1300 - 24 - 28 - 4 - 40 = 1204 (the fragment header counts as payload).
func TestFragmentMSSAndPiece(t *testing.T) {
	fo := datachannel.FrameOverhead{Header: 24}
	link := fragmentLink(fragmentConfig{N: 1300}, transportInfo{})
	if p := fragmentPieceFor(link, fo); p != 1272 {
		t.Errorf("piece %d, want 1272", p)
	}
	if l := fragmentLink(fragmentConfig{N: 1300, Encap: true}, transportInfo{remoteV6: true}); l != 1300-48 {
		t.Errorf("fragment 1300 mtu over IPv6: link %d, want %d", l, 1300-48)
	}
	if l := fragmentLink(fragmentConfig{N: 1300}, transportInfo{extra: 10}); l != 1290 {
		t.Errorf("fragment 1300 through SOCKS: link %d, want 1290", l)
	}
	d, _ := newFragPath(t, &fakeTun{}, &fakeConn{}, 1300)
	d.setMSSFix(mssFixConfig{N: 1300, Encap: true})
	ks := &keySet{primary: &fakeKeys{id: 1}} // fake overhead: 24 bytes, as AES-GCM with a peer id
	d.setKeys(ks)
	if ks.mss.v4 != 1204 || ks.mss.v6 != 1184 {
		t.Errorf("mss clamp %+v, want 1204/1184", ks.mss)
	}
}

// TestFragmentZeroAllocs extends TestDataPathZeroAllocs to --fragment: whole
// packets, split packets and reassembly allocate nothing.
func TestFragmentZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	pkts := testPackets(maxBatch, 1400)
	for i := 0; i < len(pkts); i += 3 {
		pkts[i] = pkts[i][:300] // some fit whole
	}
	tn := &fakeTun{in: pkts}
	c := &fakeConn{}
	d, ref := newFragPath(t, tn, c, 1000)
	d.setKeys(&keySet{primary: &fakeKeys{id: 1}})
	n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
	if a := testing.AllocsPerRun(50, func() {
		d.sealAndSend(n)
	}); a != 0 {
		t.Errorf("sealAndSend with fragment: %v allocs per batch, want 0", a)
	}
	// Capture one batch's datagrams, then open them repeatedly.
	c.record = true
	d.sealAndSend(n)
	sealed := c.sent
	if len(sealed) <= maxBatch || len(sealed) > 2*maxBatch {
		t.Fatalf("%d datagrams for %d packets", len(sealed), n)
	}
	tn.record = false
	writes := tn.nwrites
	if a := testing.AllocsPerRun(50, func() {
		for off := 0; off < len(sealed); off += maxBatch {
			batch := sealed[off:min(off+maxBatch, len(sealed))]
			for i, p := range batch {
				d.rx.sizes[i] = copy(d.rx.bufs[i][tunWriteOffset:], p)
			}
			d.openAndWrite(ref, len(batch))
		}
	}); a != 0 {
		t.Errorf("openAndWrite with fragment: %v allocs per batch, want 0", a)
	}
	if tn.nwrites-writes < 50*n {
		t.Fatalf("%d packets written to tun, want %d", tn.nwrites-writes, 50*n)
	}
}

// BenchmarkFragmentDataPath is BenchmarkDataPath with fragment 1300: packets of
// 1200 bytes go whole behind the 4-byte header, 1400-byte ones in two pieces.
func BenchmarkFragmentDataPath(b *testing.B) {
	for _, size := range []int{1200, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			pkts := testPackets(maxBatch, size)
			tn := &fakeTun{in: pkts}
			d, _ := newFragPath(b, tn, &fakeConn{}, 1300)
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
