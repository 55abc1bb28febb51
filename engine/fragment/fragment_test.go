package fragment

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/internal/israce"
)

var t0 = time.Unix(1_700_000_000, 0)

// pieces cuts payload the way a sender does and returns each piece with its header.
func pieces(t testing.TB, f *Fragmenter, maxPiece int, payload []byte) [][]byte {
	t.Helper()
	if len(payload) <= maxPiece {
		b := make([]byte, HeaderSize+len(payload))
		PutWhole(b)
		copy(b[HeaderSize:], payload)
		return [][]byte{b}
	}
	s, err := f.Split(len(payload), maxPiece)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := 0; i < s.Count; i++ {
		off, n := s.Piece(i)
		b := make([]byte, HeaderSize+n)
		s.PutHeader(b, i)
		copy(b[HeaderSize:], payload[off:off+n])
		out = append(out, b)
	}
	return out
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// TestHeaderLayout pins the wire format against values worked out by hand from OpenVPN's
// fragment.h masks and shifts.
func TestHeaderLayout(t *testing.T) {
	var b [4]byte
	PutWhole(b[:])
	if got := hex.EncodeToString(b[:]); got != "00000000" {
		t.Errorf("whole header %s, want 00000000", got)
	}
	s := Split{Seq: 5, Size: 752, Count: 2, Len: 1500}
	s.PutHeader(b[:], 0)
	// type 1 | seq 5 << 2 = 0x15
	if got := hex.EncodeToString(b[:]); got != "00000015" {
		t.Errorf("first piece header %s, want 00000015", got)
	}
	s.PutHeader(b[:], 1)
	// type 2 | seq 5 << 2 | id 1 << 10 | 752/4 = 188 << 15 = 0x5e0000 + 0x400 + 0x14 + 2
	if got := hex.EncodeToString(b[:]); got != "005e0416" {
		t.Errorf("last piece header %s, want 005e0416", got)
	}
}

// TestOptimalSize checks OpenVPN's optimal_fragment_size on hand-computed cases.
func TestOptimalSize(t *testing.T) {
	for _, c := range []struct{ n, max, want int }{
		{1500, 1252, 752},  // (1252 - (1252-248)/2 + 3) &^ 3: pieces of 752 and 748
		{2504, 1252, 1252}, // two full pieces
		{1300, 1252, 652},  // (1252 - (1252-48)/2 + 3) &^ 3
		{2000, 1253, 1004}, // (1253 - (1253-748)/2 + 3) &^ 3
		{3000, 1252, 1000}, // (1252 - (1252-496)/3 + 3) &^ 3: three pieces of 1000
		{1400, 1000, 700},  // (1000 - (1000-400)/2 + 3) &^ 3
		{1900, 1000, 1000}, // tail 900 >= 750: unchanged
	} {
		got := optimalSize(c.n, c.max)
		if got != c.want {
			t.Errorf("optimalSize(%d, %d) = %d, want %d", c.n, c.max, got, c.want)
		}
		// Evening out never adds a piece.
		aligned := c.max &^ 3
		if (c.n+got-1)/got != (c.n+aligned-1)/aligned {
			t.Errorf("optimalSize(%d, %d) = %d changes the number of pieces", c.n, c.max, got)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, maxPiece := range []int{4, 64, 100, 577, 1252, 1300} {
		f := NewFragmenter(250)
		r := NewReassembler(2000)
		for _, n := range []int{0, 1, 4, maxPiece - 1, maxPiece, maxPiece + 1, 2*maxPiece + 3, 1500, 2000} {
			if n < 0 || n > 2000 || n > 32*(maxPiece&^3) {
				continue
			}
			want := payload(n)
			ps := pieces(t, f, maxPiece, want)
			// Deliver in random order with one duplicate.
			order := rng.Perm(len(ps))
			order = append(order, order[0])
			var got []byte
			for k, i := range order {
				out, err := r.Incoming(t0, ps[i])
				if err != nil {
					t.Fatalf("max %d, n %d: piece %d: %v", maxPiece, n, i, err)
				}
				if out != nil {
					if got != nil && k < len(ps) {
						t.Fatalf("max %d, n %d: completed twice", maxPiece, n)
					}
					if got == nil {
						got = append([]byte(nil), out...)
					}
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("max %d, n %d: reassembled %d bytes, want %d", maxPiece, n, len(got), len(want))
			}
			for _, p := range ps {
				if len(p)-HeaderSize > maxPiece {
					t.Fatalf("max %d, n %d: piece of %d bytes", maxPiece, n, len(p)-HeaderSize)
				}
			}
		}
	}
}

func TestTooManyPieces(t *testing.T) {
	f := NewFragmenter(0)
	if _, err := f.Split(100*32+1, 100); !errors.Is(err, ErrTooManyPieces) {
		t.Fatalf("Split beyond 32 pieces: %v", err)
	}
	if _, err := f.Split(100*32, 100); err != nil {
		t.Fatalf("Split of exactly 32 pieces: %v", err)
	}
	// A nonsensical piece size (a tiny --fragment with a large overhead) is
	// raised to the smallest one the header can carry.
	if s, err := f.Split(64, -20); err != nil || s.Size != 4 || s.Count != 16 {
		t.Fatalf("Split(64, -20) = %+v, %v", s, err)
	}
}

// TestInterleaved reassembles two packets whose pieces arrive mixed.
func TestInterleaved(t *testing.T) {
	f := NewFragmenter(0)
	r := NewReassembler(2000)
	a, b := payload(1400), bytes.Repeat([]byte{0xAB}, 1200)
	pa, pb := pieces(t, f, 500, a), pieces(t, f, 500, b)
	var gotA, gotB []byte
	for i := 0; i < 3; i++ {
		if out, err := r.Incoming(t0, pa[i]); err != nil {
			t.Fatal(err)
		} else if out != nil {
			gotA = append([]byte(nil), out...)
		}
		if out, err := r.Incoming(t0, pb[i]); err != nil {
			t.Fatal(err)
		} else if out != nil {
			gotB = append([]byte(nil), out...)
		}
	}
	if !bytes.Equal(gotA, a) || !bytes.Equal(gotB, b) {
		t.Fatalf("interleaved reassembly failed: %d/%d bytes", len(gotA), len(gotB))
	}
}

// TestTTL drops a packet whose pieces come more than TTL apart.
func TestTTL(t *testing.T) {
	f := NewFragmenter(0)
	r := NewReassembler(2000)
	ps := pieces(t, f, 500, payload(1400))
	if out, _ := r.Incoming(t0, ps[0]); out != nil {
		t.Fatal("complete after one piece")
	}
	if out, _ := r.Incoming(t0.Add(TTL), ps[1]); out != nil {
		t.Fatal("complete after two pieces")
	}
	if out, _ := r.Incoming(t0.Add(TTL+time.Second), ps[2]); out != nil {
		t.Fatal("complete although piece 0 expired")
	}
	// Within the TTL of each other, pieces still combine.
	ps = pieces(t, f, 500, payload(1400))
	r.Incoming(t0, ps[0])
	r.Incoming(t0.Add(TTL-time.Second), ps[1])
	if out, _ := r.Incoming(t0.Add(2*TTL-2*time.Second), ps[2]); len(out) != 1400 {
		t.Fatalf("reassembly across refreshed TTL gave %d bytes", len(out))
	}
}

// TestWindow drops a packet once Slots newer sequence ids have been seen.
func TestWindow(t *testing.T) {
	f := NewFragmenter(0)
	r := NewReassembler(2000)
	old := pieces(t, f, 500, payload(1400))
	r.Incoming(t0, old[0])
	r.Incoming(t0, old[1])
	for i := 0; i < Slots; i++ {
		ps := pieces(t, f, 500, payload(1000))
		r.Incoming(t0, ps[0])
	}
	if out, _ := r.Incoming(t0, old[2]); out != nil {
		t.Fatal("a packet Slots sequence ids old completed")
	}
	// Slots-1 newer ids keep it.
	f2 := NewFragmenter(100)
	r2 := NewReassembler(2000)
	old = pieces(t, f2, 500, payload(1400))
	r2.Incoming(t0, old[0])
	r2.Incoming(t0, old[1])
	for i := 0; i < Slots-1; i++ {
		ps := pieces(t, f2, 500, payload(1000))
		r2.Incoming(t0, ps[0])
	}
	if out, _ := r2.Incoming(t0, old[2]); len(out) != 1400 {
		t.Fatalf("a packet Slots-1 sequence ids old gave %d bytes", len(out))
	}
}

func TestIncomingErrors(t *testing.T) {
	r := NewReassembler(100)
	for _, c := range []struct {
		name string
		in   string
		want error
	}{
		{"short", "000000", ErrShort},
		{"whole with seq", "00000004", ErrSpuriousWhole},
		{"whole with id", "00000400", ErrSpuriousWhole},
		{"test type", "00000003", ErrTestNotAllowed},
		{"odd piece", "00000001aabbcc", ErrBadSize},
		{"overflow", "00017c02" + hex.EncodeToString(make([]byte, 8)), ErrOverflow}, // piece 31 of 8 bytes
	} {
		in, _ := hex.DecodeString(c.in)
		_, err := r.Incoming(t0, in)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	out, err := r.Incoming(t0, []byte{0, 0, 0, 0, 0x45, 1})
	if err != nil || !bytes.Equal(out, []byte{0x45, 1}) {
		t.Errorf("whole: %x, %v", out, err)
	}
}

func TestZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	f := NewFragmenter(0)
	r := NewReassembler(2000)
	ps := pieces(t, f, 500, payload(1400))
	whole := pieces(t, f, 500, payload(300))[0]
	hdr := make([]byte, 4)
	allocs := testing.AllocsPerRun(200, func() {
		for _, p := range ps {
			if _, err := r.Incoming(t0, p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Incoming(t0, whole); err != nil {
			t.Fatal(err)
		}
		s, _ := f.Split(1400, 500)
		s.PutHeader(hdr, 0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}

// FuzzReassembler feeds arbitrary payloads (each prefixed by a length byte and a
// time step byte) to a small reassembler: no panic, nothing larger than its buffer.
func FuzzReassembler(f *testing.F) {
	fr := NewFragmenter(0)
	var seed []byte
	for _, p := range pieces(f, fr, 40, payload(100)) {
		seed = append(seed, byte(len(p)), 1)
		seed = append(seed, p...)
	}
	f.Add(seed)
	f.Add([]byte{4, 0, 0, 0, 0, 0})
	f.Add([]byte{8, 0, 0, 0, 0x04, 0x02, 1, 2, 3, 4})
	f.Add([]byte{5, 20, 0xff, 0xff, 0xff, 0xfe, 9})
	const maxPacket = 200
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReassembler(maxPacket)
		now := t0
		for len(data) >= 2 {
			n, step := int(data[0]), time.Duration(data[1])*time.Second
			data = data[2:]
			n = min(n, len(data))
			p := data[:n]
			data = data[n:]
			now = now.Add(step)
			out, err := r.Incoming(now, p)
			if err != nil && out != nil {
				t.Fatal("packet and error together")
			}
			if len(out) > maxPacket && len(p) <= maxPacket {
				t.Fatalf("reassembled %d bytes, buffer %d", len(out), maxPacket)
			}
		}
	})
}

// FuzzRoundTrip splits arbitrary payloads at arbitrary piece sizes and reassembles them in
// reverse order.
func FuzzRoundTrip(f *testing.F) {
	f.Add(payload(1500), uint16(1252), uint8(7))
	f.Add([]byte{1, 2, 3}, uint16(4), uint8(255))
	f.Add(payload(700), uint16(68), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, maxPiece uint16, seq uint8) {
		if maxPiece < 4 || maxPiece > 65532 {
			return
		}
		fr := NewFragmenter(seq)
		if len(data) > 4000 {
			data = data[:4000]
		}
		r := NewReassembler(4000)
		if len(data) > int(maxPiece) && optimalSize(len(data), int(maxPiece))*MaxPieces < len(data) {
			return // more than 32 pieces: Split refuses it (TestTooManyPieces)
		}
		ps := pieces(t, fr, int(maxPiece), data)
		var got []byte
		for i := len(ps) - 1; i >= 0; i-- {
			out, err := r.Incoming(t0, ps[i])
			if err != nil {
				t.Fatal(err)
			}
			if out != nil {
				if i != 0 {
					t.Fatalf("complete before the last piece arrived (%d left)", i)
				}
				got = append([]byte(nil), out...)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes at %d: got %d bytes", len(data), maxPiece, len(got))
		}
	})
}

// TestMaxPiece checks frame_calculate_fragment's arithmetic on worked examples.
func TestMaxPiece(t *testing.T) {
	for _, c := range []struct {
		name                          string
		link, header, block, id, want int
	}{
		// AES-256-GCM with a peer id: 4 (P_DATA_V2) + 4 (packet id) + 16 (tag).
		{"gcm fragment 1300", 1300, 24, 0, 0, 1300 - 24 - 4},
		// AES-256-CBC/SHA256 without peer id: 1 + 16 (IV) + 32 (HMAC); 1251 rounds
		// down to 1248 blocks, less a padding byte, the header and the packet id.
		{"cbc fragment 1300", 1300, 49, 16, 4, 1247 - 4 - 4},
		// fragment 1300 mtu over IPv4 UDP: 28 bytes of outer headers come off first.
		{"gcm fragment 1300 mtu", 1300 - 28, 24, 0, 0, 1244},
	} {
		if got := MaxPiece(c.link, c.header, c.block, c.id); got != c.want {
			t.Errorf("%s: MaxPiece = %d, want %d", c.name, got, c.want)
		}
	}
}
