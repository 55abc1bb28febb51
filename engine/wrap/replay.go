package wrap

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Replay protection for tls-auth and tls-crypt follows OpenVPN's "long form"
// packet id (packet_id.c): a 32-bit id that starts at 1 plus a 32-bit
// timestamp the sender fixes when its session starts.
//
// The receiver keeps, for the newest timestamp it has seen, a 64-packet
// window below the highest id (--replay-window default). A newer timestamp
// starts a new series; an older one is rejected. Like OpenVPN's
// time-backtrack (default 15 s), an out-of-order packet is also rejected
// once any newer packet has been in the window for longer than that, so a
// captured packet cannot be slipped in late.
//
// As in OpenVPN, where this state belongs to the accepted remote session,
// Unwrap only checks a packet; it is recorded when the caller Accepts it,
// after finding it is from the session it talks to.

const (
	// ReplayWindow is the number of packet ids below the highest one
	// that may still arrive out of order.
	ReplayWindow = 64
	// ReplayTime is how long, in seconds, an out-of-order packet may
	// trail a newer one.
	ReplayTime = 15

	// packetIDLen is the long-form packet id: u32 id, u32 timestamp.
	packetIDLen = 8
)

type replayWindow struct {
	started bool
	time    uint32 // timestamp of the current series
	top     uint32 // highest id accepted in the series
	seen    uint64 // bit d set: id top-d accepted
	// recv[id%ReplayWindow] is the local unix time at which id was
	// accepted; only consulted for ids whose seen bit is set.
	recv [ReplayWindow]int64

	// The packet the last successful Unwrap returned, recorded only when
	// the caller accepts it (see Wrapper.Accept).
	pending              bool
	pendingID, pendingTS uint32
	pendingSecs          int64
}

// check reports whether (id, ts) may be accepted at now, without recording
// it. Callers commit only after the packet has been fully processed.
func (r *replayWindow) check(id, ts uint32, now int64) error {
	if id == 0 {
		return fmt.Errorf("packet id 0: %w", ErrReplay)
	}
	if !r.started || ts > r.time || (ts == r.time && id > r.top) {
		return nil
	}
	if ts < r.time {
		return fmt.Errorf("packet id %d: timestamp %d is older than %d: %w", id, ts, r.time, ErrReplay)
	}
	d := r.top - id
	if d >= ReplayWindow {
		return fmt.Errorf("packet id %d is %d behind %d, outside the %d-packet window: %w", id, d, r.top, ReplayWindow, ErrReplay)
	}
	if r.seen&(1<<d) != 0 {
		return fmt.Errorf("packet id %d seen before: %w", id, ErrReplay)
	}
	for n := uint32(0); n < d; n++ {
		if r.seen&(1<<n) != 0 && r.recv[(r.top-n)%ReplayWindow]+ReplayTime < now {
			return fmt.Errorf("packet id %d arrived more than %d s after id %d: %w", id, ReplayTime, r.top-n, ErrReplay)
		}
	}
	return nil
}

// hold remembers (id, ts), which passed check at now, for accept; a
// later hold or drop replaces it.
func (r *replayWindow) hold(id, ts uint32, now int64) {
	r.pending, r.pendingID, r.pendingTS, r.pendingSecs = true, id, ts, now
}

// drop forgets the held packet (its Unwrap failed after the check).
func (r *replayWindow) drop() { r.pending = false }

// accept records the held packet, if any. Nothing was committed between
// its check and now (commits only happen here), so the check still holds.
func (r *replayWindow) accept() {
	if r.pending {
		r.pending = false
		r.commit(r.pendingID, r.pendingTS, r.pendingSecs)
	}
}

// commit records an accepted (id, ts); check must have passed.
func (r *replayWindow) commit(id, ts uint32, now int64) {
	switch {
	case !r.started || ts > r.time:
		r.started, r.time, r.top, r.seen = true, ts, id, 1
	case id > r.top:
		if s := id - r.top; s >= ReplayWindow {
			r.seen = 1
		} else {
			r.seen = r.seen<<s | 1
		}
		r.top = id
	default:
		r.seen |= 1 << (r.top - id)
	}
	r.recv[id%ReplayWindow] = now
}

// sender hands out long-form packet ids.
type sender struct {
	started bool
	id      uint32 // last id used
	time    uint32
}

// next returns the next packet id and the session timestamp, set from the
// first call's clock (OpenVPN sets it on the first packet too).
func (s *sender) next(now time.Time) (id, ts uint32, err error) {
	t := uint32(now.Unix())
	if !s.started {
		s.started, s.time = true, t
	}
	if s.id == math.MaxUint32 {
		// Long-form ids may wrap only into a later timestamp, which
		// starts a fresh series at the receiver.
		if t <= s.time {
			return 0, 0, fmt.Errorf("packet ids exhausted for timestamp %d", s.time)
		}
		s.time, s.id = t, 0
	}
	s.id++
	return s.id, s.time, nil
}

func appendPacketID(dst []byte, id, ts uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, id)
	return binary.BigEndian.AppendUint32(dst, ts)
}

func readPacketID(b []byte) (id, ts uint32) {
	return binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
}
