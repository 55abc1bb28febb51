// Package fragment is OpenVPN's data-channel fragmentation layer (--fragment),
// sans-IO: it splits payloads that would make too large a datagram into pieces,
// each sent as its own data packet, and puts received pieces back together.
//
// Every data-channel payload of a connection with --fragment starts with a
// 4-byte big-endian header, inside the encryption and in front of the
// compression framing (OpenVPN compresses, then fragments, then encrypts):
//
//	bits  0-1   type: 0 whole packet, 1 piece but not the last, 2 last piece, 3 test (unused)
//	bits  2-9   sequence id of the packet the piece belongs to (mod 256)
//	bits 10-14  piece number within the packet (0..31)
//	bits 15-28  last piece only: the size of every other piece, divided by 4
//
// A whole packet carries a zero header. Pieces of one packet all have the same
// size, a multiple of 4, except the last, which may be shorter and announces
// that size. The layout and the rules (32 pieces at most, 25 packets under
// reassembly at once, 10 seconds to complete one) follow OpenVPN 2.6's
// fragment.c and fragment.h.
package fragment

import (
	"encoding/binary"
	"errors"
	"time"
)

const (
	// HeaderSize is the size of the fragment header in front of every payload.
	HeaderSize = 4
	// MaxPieces is how many pieces one packet may be split into (MAX_FRAGS).
	MaxPieces = 32
	// Slots is how many packets are reassembled at once (N_FRAG_BUF): pieces
	// of a packet whose sequence id is Slots or more behind the newest one
	// are dropped with what was gathered of it.
	Slots = 25
	// TTL is how long a partly received packet waits for its other pieces
	// (FRAG_TTL_SEC).
	TTL = 10 * time.Second
	// MinFragment is the smallest value of --fragment OpenVPN accepts.
	MinFragment = 68

	typeWhole   = 0
	typeNotLast = 1
	typeLast    = 2
	typeTest    = 3

	typeMask  = 0x3
	seqShift  = 2
	seqMask   = 0xff
	idShift   = 10
	idMask    = 0x1f
	sizeShift = 15
	sizeMask  = 0x3fff
	// sizeRound: piece sizes are multiples of 4 so that 14 bits carry up to 65532.
	sizeRound = 4
	seqIDs    = 256
)

// PutWhole writes the header of an unfragmented payload into b[:HeaderSize].
func PutWhole(b []byte) {
	binary.BigEndian.PutUint32(b, typeWhole)
}

// MaxPiece is OpenVPN 2.6's frame_calculate_fragment: the largest payload
// piece (after the fragment header) for a data packet of at most link bytes,
// where link is the --fragment value less the outer IP and UDP headers when
// its "mtu" flag is given and less the header a SOCKS UDP relay adds. header
// is what the data packet carries outside its encrypted payload (opcode or
// peer id, packet id, AEAD tag, or CBC IV and HMAC), block the CBC block size
// (0 for AEAD and cipher none), and payloadID the packet id CBC encrypts with
// every payload (0 otherwise). Compression framing is not subtracted: it is
// part of the payload that gets cut into pieces.
func MaxPiece(link, header, block, payloadID int) int {
	target := link - header
	if block > 0 {
		// At least one byte of padding, and whole blocks within the target.
		target = target/block*block - 1
	}
	return target - HeaderSize - payloadID
}

// Fragmenter splits outgoing payloads. It holds the sequence id of the last
// split packet; one goroutine at a time may use it.
type Fragmenter struct {
	seq uint8
}

// NewFragmenter returns a fragmenter whose first packet gets sequence id
// seq+1. OpenVPN picks seq at random so that pieces of a restarted session
// are unlikely to meet those of the previous one.
func NewFragmenter(seq uint8) *Fragmenter { return &Fragmenter{seq: seq} }

// Split is how one payload is cut: Count pieces of Size bytes, the last one
// possibly shorter, all with sequence id Seq.
type Split struct {
	Seq   uint8
	Size  int
	Count int
	Len   int
}

// ErrTooManyPieces reports a payload that would need more than MaxPieces pieces.
var ErrTooManyPieces = errors.New("fragment: payload needs more than 32 pieces")

// Split plans the pieces of an n-byte payload that is larger than maxPiece
// (smaller ones are sent whole with PutWhole). Like OpenVPN it evens out the
// piece size so that the last piece is not much shorter than the others, and
// it takes a new sequence id. maxPiece is brought into 4..65532, the sizes
// the header can announce.
func (f *Fragmenter) Split(n, maxPiece int) (Split, error) {
	maxPiece = min(max(maxPiece, sizeRound), sizeMask*sizeRound)
	size := optimalSize(n, maxPiece)
	count := (n + size - 1) / size
	if count > MaxPieces {
		return Split{}, ErrTooManyPieces
	}
	f.seq++
	return Split{Seq: f.seq, Size: size, Count: count, Len: n}, nil
}

// Piece returns the bounds of piece i within the payload.
func (s Split) Piece(i int) (off, n int) {
	off = i * s.Size
	return off, min(s.Size, s.Len-off)
}

// PutHeader writes the header of piece i into b[:HeaderSize].
func (s Split) PutHeader(b []byte, i int) {
	h := uint32(s.Seq)<<seqShift | uint32(i&idMask)<<idShift
	if i == s.Count-1 {
		h |= typeLast | uint32(s.Size/sizeRound&sizeMask)<<sizeShift
	} else {
		h |= typeNotLast
	}
	binary.BigEndian.PutUint32(b, h)
}

// optimalSize is OpenVPN's optimal_fragment_size: without adding a piece, a
// possibly smaller piece size that leaves the last piece about as long as the
// others, rounded to the 4-byte unit.
func optimalSize(n, maxPiece int) int {
	aligned := maxPiece &^ (sizeRound - 1)
	div, mod := n/aligned, n%aligned
	if div > 0 && mod > 0 && mod < aligned*3/4 {
		return min(aligned, (maxPiece-(maxPiece-mod)/(div+1)+sizeRound-1)&^(sizeRound-1))
	}
	return aligned
}

// Reassembler puts received pieces back together. Its memory is allocated once
// (Slots buffers of the size given to NewReassembler) and nothing is allocated
// per packet. One goroutine at a time may use it.
type Reassembler struct {
	slots [Slots]slot
	seq   int // the newest sequence id under reassembly
	index int // its slot
}

type slot struct {
	defined bool
	size    int    // the piece size this packet was cut into
	have    uint32 // bit n: piece n arrived; the last piece sets its bit and all above
	n       int    // bytes gathered so far (the end of the furthest piece)
	stamp   time.Time
	buf     []byte
}

// NewReassembler returns a reassembler for packets of at most maxPacket bytes
// (header excluded).
func NewReassembler(maxPacket int) *Reassembler {
	r := &Reassembler{}
	backing := make([]byte, Slots*maxPacket)
	for i := range r.slots {
		r.slots[i].buf = backing[i*maxPacket : (i+1)*maxPacket : (i+1)*maxPacket]
	}
	return r
}

// Reset forgets every partly received packet (a new connection).
func (r *Reassembler) Reset() {
	for i := range r.slots {
		r.slots[i].defined = false
	}
	r.seq, r.index = 0, 0
}

// Errors of Incoming; the payload is dropped, as OpenVPN drops it.
var (
	ErrShort          = errors.New("fragment: payload shorter than the fragment header")
	ErrSpuriousWhole  = errors.New("fragment: whole packet with sequence or piece id set")
	ErrBadSize        = errors.New("fragment: piece size not a multiple of 4")
	ErrOverflow       = errors.New("fragment: reassembled packet larger than the buffer")
	ErrTestNotAllowed = errors.New("fragment: FRAG_TEST pieces are not implemented")
)

// Incoming takes one decrypted data payload, header included, received at now.
// It returns the packet without the header when the payload was whole (a
// subslice of p), the complete packet when p was its last missing piece (valid
// until the next call), or nil when more pieces are needed.
func (r *Reassembler) Incoming(now time.Time, p []byte) ([]byte, error) {
	if len(p) < HeaderSize {
		return nil, ErrShort
	}
	h := binary.BigEndian.Uint32(p)
	p = p[HeaderSize:]
	switch h & typeMask {
	case typeWhole:
		if h&(seqMask<<seqShift|idMask<<idShift) != 0 {
			return nil, ErrSpuriousWhole
		}
		return p, nil
	case typeTest:
		return nil, ErrTestNotAllowed
	}
	last := h&typeMask == typeLast
	seq := int(h >> seqShift & seqMask)
	id := int(h >> idShift & idMask)
	size := len(p)
	if last {
		size = int(h>>sizeShift&sizeMask) * sizeRound
	}
	if size%sizeRound != 0 {
		return nil, ErrBadSize
	}
	s := r.slot(seq)
	if s.defined && now.Sub(s.stamp) >= TTL {
		// OpenVPN's housekeeping would have dropped it by now.
		s.defined = false
	}
	if !s.defined || s.size != size {
		s.defined, s.size, s.have, s.n = true, size, 0, 0
	}
	off := id * size
	if off+len(p) > len(s.buf) {
		s.defined = false
		return nil, ErrOverflow
	}
	copy(s.buf[off:], p)
	s.n = max(s.n, off+len(p))
	if last {
		s.have |= ^uint32(0) << id
	} else {
		s.have |= 1 << id
	}
	s.stamp = now
	if s.have != ^uint32(0) {
		return nil, nil
	}
	s.defined = false
	return s.buf[:s.n], nil
}

// slot finds the slot of sequence id seq in the sliding window of the newest
// Slots ids, as OpenVPN's fragment_list_get_buf does: an id far outside the
// window restarts it, a newer one advances it and frees the slots it passes.
func (r *Reassembler) slot(seq int) *slot {
	diff := modSub(seq, r.seq)
	if diff >= Slots || diff <= -Slots {
		for i := range r.slots {
			r.slots[i].defined = false
		}
		r.index, r.seq, diff = 0, seq, 0
	}
	for ; diff > 0; diff-- {
		r.index = (r.index + 1) % Slots
		r.slots[r.index].defined = false
		r.seq = (r.seq + 1) % seqIDs
	}
	return &r.slots[((r.index+diff)%Slots+Slots)%Slots]
}

// modSub is a-b in the sequence-id space, in -128..127.
func modSub(a, b int) int {
	d := (a - b) % seqIDs
	if d >= seqIDs/2 {
		d -= seqIDs
	} else if d < -seqIDs/2 {
		d += seqIDs
	}
	return d
}
