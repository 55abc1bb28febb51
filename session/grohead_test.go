package session

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/ovpnd/ovpnd/internal/israce"
)

// segment is a TCP data segment of the test flow with source port sport, sequence number
// seq and n bytes of payload, behind tunWriteOffset bytes of room as the data path hands it
// to place.
func segment(v6 bool, sport uint16, seq uint32, flags byte, n int) []byte {
	p := tcpPacket(v6, flags, nil, nil, bytes.Repeat([]byte{byte(seq)}, n))
	iph := 20
	if v6 {
		iph = 40
	}
	binary.BigEndian.PutUint16(p[iph:], sport)
	binary.BigEndian.PutUint32(p[iph+4:], seq)
	return append(make([]byte, tunWriteOffset), p...)
}

func inHead(h *rxHeadState, p []byte) bool {
	for _, b := range h.bufs {
		if unsafe.SliceData(b) == unsafe.SliceData(p) {
			return true
		}
	}
	return false
}

func TestRxHeadsPlace(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		h := newRxHeadState(func(n int) []byte { return make([]byte, n) })
		var got []bool // whether each segment became a head
		place := func(p []byte) {
			t.Helper()
			q := h.place(p)
			if !bytes.Equal(q[tunWriteOffset:], p[tunWriteOffset:]) || len(q) != len(p) {
				t.Fatalf("v6=%v: segment %d changed by place", v6, len(got))
			}
			got = append(got, inHead(&h, q))
		}
		const seg = 1400
		seq := uint32(1000)
		// One flow: a head, then as many segments as fit in 64 KiB, then the next head.
		fit := (rxHeadSize - 2*tunWriteOffset - (len(segment(v6, 1, 0, tcpFlagACK, seg)) - tunWriteOffset)) / seg
		for range fit + 2 {
			place(segment(v6, 1, seq, tcpFlagACK, seg))
			seq += seg
		}
		want := make([]bool, fit+2)
		want[0], want[fit+1] = true, true
		if !equalBools(got, want) {
			t.Fatalf("v6=%v: heads at %v, want %v", v6, heads(got), heads(want))
		}
		// Another flow interleaved starts its own head; the first goes on in its own.
		got = got[:0]
		place(segment(v6, 2, 5000, tcpFlagACK, seg))
		place(segment(v6, 1, seq, tcpFlagACK|tcpFlagPSH, seg))
		seq += seg
		// After a PSH the flow starts anew in the last head; after a gap in the sequence it
		// would too, but no head is left, so the segment stays in place, as do a SYN and a
		// pure ACK.
		place(segment(v6, 1, seq, tcpFlagACK, seg))
		place(segment(v6, 2, 9999, tcpFlagACK, seg))
		place(segment(v6, 3, 1, 0x02, 0))
		place(segment(v6, 3, 1, tcpFlagACK, 0))
		if want := []bool{true, false, true, false, false, false}; !equalBools(got, want) {
			t.Fatalf("v6=%v: heads at %v, want %v", v6, heads(got), heads(want))
		}
		// A new batch has all heads free again.
		h.reset()
		got = got[:0]
		place(segment(v6, 2, 9999, tcpFlagACK, seg))
		if !got[0] {
			t.Fatalf("v6=%v: no head after reset", v6)
		}
	}
}

func TestRxHeadsZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	h := newRxHeadState(func(n int) []byte { return make([]byte, n) })
	batch := make([][]byte, maxBatch)
	for i := range batch {
		batch[i] = segment(i%3 == 0, uint16(1+i%2), uint32(i/2*1400), tcpFlagACK, 1400)
	}
	if a := testing.AllocsPerRun(50, func() {
		h.reset()
		for _, p := range batch {
			h.place(p)
		}
	}); a != 0 {
		t.Errorf("place: %v allocs per batch, want 0", a)
	}
}

// FuzzRxHeadsPlace: whatever a decrypted packet holds, place hands back the same bytes.
func FuzzRxHeadsPlace(f *testing.F) {
	f.Add(segment(false, 1, 7, tcpFlagACK, 100)[tunWriteOffset:], segment(false, 1, 107, tcpFlagACK, 100)[tunWriteOffset:])
	f.Add(segment(true, 1, 7, tcpFlagACK|tcpFlagPSH, 3)[tunWriteOffset:], []byte{0x60})
	f.Add([]byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if len(a) > 0xFFFF || len(b) > 0xFFFF {
			return
		}
		h := newRxHeadState(func(n int) []byte { return make([]byte, n) })
		for _, ip := range [][]byte{a, b, a, b, b} {
			p := append(make([]byte, tunWriteOffset), ip...)
			q := h.place(p)
			if !bytes.Equal(q[tunWriteOffset:], ip) {
				t.Fatalf("place changed the packet")
			}
		}
	})
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func heads(v []bool) []int {
	var out []int
	for i, h := range v {
		if h {
			out = append(out, i)
		}
	}
	return out
}
