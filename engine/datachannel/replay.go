package datachannel

import "math/bits"

// Replay window bounds. OpenVPN's --replay-window defaults to 64 and caps
// the sequence backtrack at 65536 (packet_id.h MAX_SEQ_BACKTRACK).
const (
	DefaultReplayWindow = 64
	MaxReplayWindow     = 65536
)

// replayWindow is a sliding bitmap over received packet ids in the style of
// RFC 6479: a ring of 64-bit words where advancing the top only clears the
// words it skips, so every check and update is O(1) apart from large jumps
// (bounded by the ring size). An id is accepted when it is above the highest
// accepted id, or within size ids below it and not yet seen. Id 0 is never
// valid (OpenVPN packet_id_test).
//
// Ids are 64-bit so the same window serves the 48-bit per-epoch counters of
// the epoch data format. Not safe for concurrent use; Keys.Open is
// single-goroutine by contract.
type replayWindow struct {
	size uint64   // ids below top that are still tracked
	top  uint64   // highest accepted id; 0 before the first packet
	mask uint64   // len(ring)-1; the ring length is a power of two
	ring []uint64 // bit (id%64) of word (id/64)&mask
}

func newReplayWindow(size int) replayWindow {
	// One word more than the window needs so the word holding top never
	// aliases the word holding top-size+1.
	words := (size+63)/64 + 1
	n := 1 << bits.Len(uint(words-1))
	return replayWindow{size: uint64(size), mask: uint64(n - 1), ring: make([]uint64, n)}
}

// check reports whether id would be accepted, without recording it, so a
// packet can be rejected before spending a decryption on it.
func (w *replayWindow) check(id uint64) bool {
	if id == 0 {
		return false
	}
	if id > w.top {
		return true
	}
	if w.top-id >= w.size {
		return false
	}
	return w.ring[(id/64)&w.mask]&(1<<(id%64)) == 0
}

// accept records id if check allows it and reports whether it did. Call it
// only after the packet authenticated, or a forged id could move the window.
func (w *replayWindow) accept(id uint64) bool {
	if !w.check(id) {
		return false
	}
	if id > w.top {
		cur, next := w.top/64, id/64
		skip := next - cur
		if skip > w.mask+1 {
			skip = w.mask + 1
		}
		for i := uint64(1); i <= skip; i++ {
			w.ring[(cur+i)&w.mask] = 0
		}
		w.top = id
	}
	w.ring[(id/64)&w.mask] |= 1 << (id % 64)
	return true
}

// reset forgets every id, for reuse under a new key.
func (w *replayWindow) reset() {
	w.top = 0
	clear(w.ring)
}
