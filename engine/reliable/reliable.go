// Package reliable implements the reliability layer of OpenVPN's control channel: message ids,
// per-packet acknowledgements, retransmission with exponential backoff, early retransmission and
// in-order delivery through a bounded receive window.
//
// A Layer holds the state of one key_state (one TLS session) in both directions. It is sans-IO:
// it never reads a clock, never starts a timer and never touches the network. The caller passes
// the current time into every method that needs it, transmits what Due returns, feeds acks and
// received messages back in, and arms one timer for NextDeadline.
//
// The behaviour follows OpenVPN 2.6 (reliable.c, ssl.c):
//   - message ids start at 0 in each direction and acks are per message, not cumulative;
//   - at most SendWindow ids may be in flight, counted from the oldest unacknowledged id (so one
//     lost message stalls the window even if later ones were acked);
//   - a message is retransmitted with a delay that doubles after every transmission; a message is
//     resent at once when three later messages were acked;
//   - received ids in [expected, expected+RecvWindow) are buffered and acked, ids already
//     delivered are acked again (the peer lost our ack), ids beyond the window are dropped
//     without an ack so the peer retransmits them later;
//   - acks that go out are also remembered in a most-recently-used list that fills spare ack
//     slots of later packets, which makes lost ACK packets cheap to recover from.
//
// Where it is safe, it is quicker than OpenVPN, whose first retransmission always waits
// --tls-timeout (2 s):
//   - the first retransmission delay (RTO) comes from the measured round-trip time of the
//     messages acked after a single transmission, as TCP computes it (RFC 6298: smoothed RTT plus
//     four times its variation, Karn's rule), clamped between MinTimeout (200 ms) and Timeout
//     (--tls-timeout, so never slower than OpenVPN); before the first measurement it is
//     InitialTimeout (1 s, RFC 6298's initial RTO, at most Timeout);
//   - when a gap in the received ids outlasts reordering (half the smoothed RTT), RetransmitRequest
//     returns acks of the messages received beyond the gap to send again: OpenVPN's peer counts
//     every ack entry naming a later id and resends the missing message once three arrived
//     (reliable.c reliable_send_purge, N_ACK_RETRANSMIT), instead of waiting its own 2 s.
//
// A Layer is not safe for concurrent use.
package reliable

import (
	"errors"
	"time"
)

// Defaults taken from OpenVPN 2.6 (ssl_pkt.h, reliable.h, ssl.h, options.c).
const (
	// DefaultTimeout is --tls-timeout, OpenVPN's first retransmission delay and the ceiling of
	// the measured one.
	DefaultTimeout = 2 * time.Second
	// DefaultInitialTimeout is the first retransmission delay before a round trip has been
	// measured: RFC 6298's initial RTO. It only applies to the first message or two of a
	// session (the hard reset), which an OpenVPN 2.6 server answers statelessly, so a
	// spurious retransmission costs one small packet.
	DefaultInitialTimeout = time.Second
	// DefaultMinTimeout is the floor of the measured retransmission delay, Linux TCP's
	// TCP_RTO_MIN: it leaves room for a peer that is slow to ack because it is busy with TLS.
	DefaultMinTimeout = 200 * time.Millisecond
	// DefaultMaxTimeout caps the doubled retransmission delay. OpenVPN itself never caps it, but
	// its 60 s hand-window ends the handshake before the delay could exceed 32 s, so the cap only
	// matters for messages sent after the handshake (rekey, exit notification).
	DefaultMaxTimeout = 60 * time.Second
	// DefaultSendWindow is TLS_RELIABLE_N_SEND_BUFFERS.
	DefaultSendWindow = 6
	// DefaultRecvWindow is TLS_RELIABLE_N_REC_BUFFERS.
	DefaultRecvWindow = 12
	// DefaultMaxAcksPiggyback is CONTROL_SEND_ACK_MAX, the acks carried by a control packet.
	DefaultMaxAcksPiggyback = 4
	// DefaultMaxAcksStandalone is RELIABLE_ACK_SIZE, the acks carried by a P_ACK_V1 packet; it
	// is also the capacity of the pending-ack list and of the MRU list.
	DefaultMaxAcksStandalone = 8

	// earlyRetransmitAcks is N_ACK_RETRANSMIT.
	earlyRetransmitAcks = 3
	// minReorderDelay is the least time a gap in the received ids waits before it is taken for
	// a loss rather than reordering.
	minReorderDelay = 10 * time.Millisecond
	// reorderDelayUnmeasured is that wait before any round trip has been measured.
	reorderDelayUnmeasured = 50 * time.Millisecond
	// maxWindow bounds the configurable windows: the wire carries a u8 ack count, and large
	// windows only waste memory on a channel that carries a handful of TLS records.
	maxWindow = 255
)

// ErrWindowFull is returned by Send when SendWindow ids are already in flight.
var ErrWindowFull = errors.New("reliable: send window full")

// Config tunes a Layer. Zero fields take the defaults above.
type Config struct {
	// Timeout is --tls-timeout: the ceiling of the first retransmission delay.
	Timeout time.Duration
	// InitialTimeout is the first retransmission delay until a round trip has been measured;
	// at most Timeout.
	InitialTimeout time.Duration
	// MinTimeout is the floor of the measured first retransmission delay; at most Timeout.
	MinTimeout time.Duration
	// SRTT and RTTVar seed the round-trip estimate with an earlier measurement of the same
	// path (a renegotiation's new Layer starts from the current one's); zero: none.
	SRTT, RTTVar time.Duration
	// MaxTimeout caps the doubling retransmission delay.
	MaxTimeout time.Duration
	// SendWindow is the number of message ids that may be unacknowledged at once.
	SendWindow int
	// RecvWindow is the number of ids, starting at the next expected one, that are buffered.
	RecvWindow int
	// MaxAcksPiggyback is how many acks a control packet carries; the engine passes it to
	// TakeAcks and AcksToSend when it builds a P_CONTROL packet.
	MaxAcksPiggyback int
	// MaxAcksStandalone is how many acks a P_ACK_V1 packet carries, and the capacity of the
	// pending-ack and MRU lists.
	MaxAcksStandalone int
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxTimeout <= 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.MaxTimeout < c.Timeout {
		c.MaxTimeout = c.Timeout
	}
	if c.InitialTimeout <= 0 {
		c.InitialTimeout = DefaultInitialTimeout
	}
	c.InitialTimeout = min(c.InitialTimeout, c.Timeout)
	if c.MinTimeout <= 0 {
		c.MinTimeout = DefaultMinTimeout
	}
	c.MinTimeout = min(c.MinTimeout, c.Timeout)
	if c.SRTT <= 0 || c.RTTVar < 0 {
		c.SRTT, c.RTTVar = 0, 0
	}
	c.SendWindow = clampWindow(c.SendWindow, DefaultSendWindow)
	c.RecvWindow = clampWindow(c.RecvWindow, DefaultRecvWindow)
	c.MaxAcksPiggyback = clampWindow(c.MaxAcksPiggyback, DefaultMaxAcksPiggyback)
	c.MaxAcksStandalone = clampWindow(c.MaxAcksStandalone, DefaultMaxAcksStandalone)
	return c
}

func clampWindow(v, def int) int {
	switch {
	case v <= 0:
		return def
	case v > maxWindow:
		return maxWindow
	}
	return v
}

// Message is one control-channel message: its id, the opcode of the packet that carries it and
// the packet payload after the message id.
type Message struct {
	ID      uint32
	Opcode  uint8
	Payload []byte
}

// Stats counts events over the life of a Layer.
type Stats struct {
	// Sent counts first transmissions returned by Due.
	Sent uint64
	// Retransmits counts later transmissions returned by Due (timer or early retransmit).
	Retransmits uint64
	// EarlyRetransmits counts the retransmissions triggered by acks of later ids.
	EarlyRetransmits uint64
	// Acked counts messages removed from the send window by an ack.
	Acked uint64
	// Received counts messages accepted into the receive window.
	Received uint64
	// Duplicates counts received messages that were already buffered or delivered.
	Duplicates uint64
	// OutOfWindow counts received messages dropped because their id was too far ahead.
	OutOfWindow uint64
	// AcksDropped counts acks that could not be queued because the pending list was full; the
	// peer recovers by retransmitting.
	AcksDropped uint64
	// RTTSamples counts round trips measured (acks of messages transmitted once).
	RTTSamples uint64
	// RetransmitRequests counts the times RetransmitRequest asked the peer to resend a message
	// missing from a gap in the received ids.
	RetransmitRequests uint64
}

// sendEntry is one message in flight.
type sendEntry struct {
	id      uint32
	op      uint8
	payload []byte
	sent    bool      // transmitted at least once
	resent  bool      // transmitted more than once: its ack gives no RTT sample (Karn)
	first   time.Time // first transmission
	nextTry time.Time // when it is due (for unsent entries: when Send queued it)
	timeout time.Duration
	nAcks   int // acks naming later ids since the last transmission
}

// recvSlot is one buffered received message.
type recvSlot struct {
	present bool
	op      uint8
	payload []byte
}

// Layer is the reliability state of one control-channel session, both directions.
type Layer struct {
	cfg Config

	// Send side: inflight is ordered by id, oldest first.
	nextID   uint32
	inflight []sendEntry

	// Receive side: slot (head+k)%RecvWindow holds id expected+k.
	expected uint32
	head     int
	slots    []recvSlot

	// pending are ids received but not yet acked, oldest first; mru are ids recently acked,
	// most recent first.
	pending []uint32
	mru     []uint32

	// Round-trip estimate (RFC 6298); srtt is zero until the first sample.
	srtt, rttvar time.Duration

	// A gap in the received ids: when it was first seen (zero: no gap), when the next
	// retransmission request is due, and how many were made.
	gapSince, gapNext time.Time
	gapAsks           int

	stats Stats
}

// New returns a Layer whose message ids start at 0 in both directions.
func New(cfg Config) *Layer {
	cfg = cfg.withDefaults()
	return &Layer{
		cfg:      cfg,
		srtt:     cfg.SRTT,
		rttvar:   cfg.RTTVar,
		inflight: make([]sendEntry, 0, cfg.SendWindow),
		slots:    make([]recvSlot, cfg.RecvWindow),
		pending:  make([]uint32, 0, cfg.MaxAcksStandalone),
		mru:      make([]uint32, 0, cfg.MaxAcksStandalone),
	}
}

// Config returns the effective configuration, defaults filled in.
func (l *Layer) Config() Config { return l.cfg }

// Stats returns the event counters.
func (l *Layer) Stats() Stats { return l.stats }

// before reports whether id a precedes id b in serial-number order, so that comparisons keep
// working if a session ever wraps its 32-bit id space.
func before(a, b uint32) bool { return int32(a-b) < 0 }

// SendWindowFree is how many more messages Send accepts now. As in OpenVPN the window spans ids
// from the oldest unacknowledged one, not the number of messages in flight.
func (l *Layer) SendWindowFree() int {
	if len(l.inflight) == 0 {
		return l.cfg.SendWindow
	}
	span := int(l.nextID - l.inflight[0].id)
	if span >= l.cfg.SendWindow {
		return 0
	}
	return l.cfg.SendWindow - span
}

// Send queues a message with the next id; Due returns it for its first transmission. The payload
// is copied.
func (l *Layer) Send(now time.Time, op uint8, payload []byte) (uint32, error) {
	if l.SendWindowFree() == 0 {
		return 0, ErrWindowFull
	}
	id := l.nextID
	l.nextID++
	l.inflight = append(l.inflight, sendEntry{
		id:      id,
		op:      op,
		payload: append([]byte(nil), payload...),
		nextTry: now,
	})
	return id, nil
}

// RTT returns the smoothed round-trip time and its variation, zero before the first sample.
func (l *Layer) RTT() (srtt, rttvar time.Duration) { return l.srtt, l.rttvar }

// RTO is the first retransmission delay of a message transmitted now.
func (l *Layer) RTO() time.Duration {
	if l.srtt == 0 {
		return l.cfg.InitialTimeout
	}
	return min(max(l.srtt+4*l.rttvar, l.cfg.MinTimeout), l.cfg.Timeout)
}

// sampleRTT folds one round-trip measurement into the estimate (RFC 6298 section 2).
func (l *Layer) sampleRTT(r time.Duration) {
	l.stats.RTTSamples++
	if l.srtt == 0 {
		l.srtt, l.rttvar = max(r, time.Microsecond), r/2
		return
	}
	d := l.srtt - r
	if d < 0 {
		d = -d
	}
	l.rttvar = (3*l.rttvar + d) / 4
	l.srtt = max((7*l.srtt+r)/8, time.Microsecond)
}

// Due returns the messages to transmit now, oldest id first: those never sent, those whose
// retransmission timer expired and those that acks of later ids made due early. Each one is
// marked sent at now and its next retransmission is scheduled with a doubled delay.
//
// Payloads alias the Layer's copy: the caller must not modify them, and they stay valid until
// the message is acknowledged.
func (l *Layer) Due(now time.Time) []Message {
	var out []Message
	for i := range l.inflight {
		e := &l.inflight[i]
		if now.Before(e.nextTry) {
			continue
		}
		if e.sent {
			l.stats.Retransmits++
			e.resent = true
		} else {
			l.stats.Sent++
			e.sent = true
			e.first = now
			e.timeout = l.RTO()
		}
		e.nextTry = now.Add(e.timeout)
		e.timeout *= 2
		if e.timeout > l.cfg.MaxTimeout {
			e.timeout = l.cfg.MaxTimeout
		}
		e.nAcks = 0
		out = append(out, Message{ID: e.id, Opcode: e.op, Payload: e.payload})
	}
	return out
}

// ScheduleNow makes every unacknowledged message due at now with its backoff reset to RTO.
// OpenVPN does this once per session, when the first packet from the peer arrives, so that
// messages sent while the peer was not yet listening go out again without waiting.
func (l *Layer) ScheduleNow(now time.Time) {
	for i := range l.inflight {
		e := &l.inflight[i]
		e.nextTry = now
		e.timeout = l.RTO()
		e.nAcks = 0
	}
}

// Ack handles the ack list of one packet from the peer: the named messages leave the send
// window. Each message acked this way counts towards the early retransmission of every older
// message still in flight; once an older message has seen three later messages acked since its
// last transmission it becomes due at now. Unknown ids, repeats (the peer's MRU list resends
// recent acks on every packet) and ids we never sent are ignored.
//
// OpenVPN counts every ack entry naming a later id, repeats included, so a peer's MRU list can
// make it retransmit on each incoming packet; counting distinct acked messages keeps the
// intended "three later messages arrived" meaning and stops reordering from causing spurious
// retransmissions.
func (l *Layer) Ack(now time.Time, ids []uint32) {
	for _, id := range ids {
		if len(l.inflight) == 0 {
			return
		}
		// Only ids in [oldest unacked, nextID) can concern us.
		if before(id, l.inflight[0].id) || !before(id, l.nextID) {
			continue
		}
		at := -1
		for i := range l.inflight {
			if l.inflight[i].id == id {
				at = i
				break
			}
		}
		if at < 0 {
			continue
		}
		if e := &l.inflight[at]; e.sent && !e.resent && !now.Before(e.first) {
			l.sampleRTT(now.Sub(e.first))
		}
		copy(l.inflight[at:], l.inflight[at+1:])
		l.inflight[len(l.inflight)-1] = sendEntry{}
		l.inflight = l.inflight[:len(l.inflight)-1]
		l.stats.Acked++
		// inflight is ordered, so the first at entries are the older ones.
		for i := range at {
			e := &l.inflight[i]
			e.nAcks++
			if e.nAcks == earlyRetransmitAcks && e.sent && now.Before(e.nextTry) {
				e.nextTry = now
				l.stats.EarlyRetransmits++
			}
		}
	}
}

// Unacked is the number of messages sent or queued and not yet acknowledged.
func (l *Layer) Unacked() int { return len(l.inflight) }

// NextDeadline is the earliest time at which Due or RetransmitRequest has something to return,
// or the zero time if nothing is in flight and no gap is waiting. It may be in the past (a
// message queued or made due early).
func (l *Layer) NextDeadline() time.Time {
	var d time.Time
	if !l.gapSince.IsZero() && l.hasGap() {
		d = l.gapNext
	}
	for i := range l.inflight {
		t := l.inflight[i].nextTry
		if d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

// Receive handles a message from the peer. The payload is copied. It returns whether the
// message was new and buffered for Next. A message is acked (queued for TakeAcks) when it was
// buffered, already buffered or already delivered; one too far ahead of the next expected id is
// dropped without an ack, so the peer retransmits it once the window has moved.
func (l *Layer) Receive(id uint32, op uint8, payload []byte) bool {
	// Plain comparison, as OpenVPN does: only ids below the expected one count as delivered, so
	// an id 2^31 ahead is dropped rather than acked.
	if id < l.expected {
		l.stats.Duplicates++
		l.queueAck(id)
		return false
	}
	k := id - l.expected
	if k >= uint32(len(l.slots)) {
		l.stats.OutOfWindow++
		return false
	}
	s := &l.slots[(l.head+int(k))%len(l.slots)]
	l.queueAck(id)
	if s.present {
		l.stats.Duplicates++
		return false
	}
	*s = recvSlot{present: true, op: op, payload: append([]byte(nil), payload...)}
	l.stats.Received++
	return true
}

// queueAck adds id to the pending acks unless it is already there. Like OpenVPN's reliable_ack,
// the list is bounded; an ack that does not fit is dropped and the peer's retransmission brings
// the id back.
func (l *Layer) queueAck(id uint32) {
	for _, p := range l.pending {
		if p == id {
			return
		}
	}
	if len(l.pending) >= l.cfg.MaxAcksStandalone {
		l.stats.AcksDropped++
		return
	}
	l.pending = append(l.pending, id)
}

// Next returns the next received message in id order, if it has arrived. The returned payload
// belongs to the caller.
func (l *Layer) Next() (Message, bool) {
	s := &l.slots[l.head]
	if !s.present {
		return Message{}, false
	}
	m := Message{ID: l.expected, Opcode: s.op, Payload: s.payload}
	*s = recvSlot{}
	l.head = (l.head + 1) % len(l.slots)
	l.expected++
	return m, true
}

// hasGap reports whether a message is buffered beyond a missing next expected one.
func (l *Layer) hasGap() bool {
	if l.slots[l.head].present {
		return false
	}
	for _, s := range l.slots {
		if s.present {
			return true
		}
	}
	return false
}

// RetransmitRequest returns the acks to send again, and in how many P_ACK_V1 packets, when a gap
// in the received ids has lasted longer than reordering explains: the ids received beyond the
// missing message. OpenVPN's peer resends a message once three ack entries naming later ids
// arrived since its last transmission of it, counting repeats (reliable.c), so the packets
// together carry at least three such entries. It returns nothing while there is no gap, while
// the gap is younger than half the smoothed RTT (at least 10 ms), or before the next request is
// due: if the peer's resend is lost too, the request repeats after RTO, doubling each time.
//
// The engine calls it whenever it sends what is due (after every received packet and timer), so
// the first call that sees a gap is when it opened.
func (l *Layer) RetransmitRequest(now time.Time) (acks []uint32, packets int) {
	if !l.hasGap() {
		l.gapSince, l.gapNext, l.gapAsks = time.Time{}, time.Time{}, 0
		return nil, 0
	}
	if l.gapSince.IsZero() {
		l.gapSince = now
		delay := reorderDelayUnmeasured
		if l.srtt > 0 {
			delay = max(l.srtt/2, minReorderDelay)
		}
		l.gapNext = now.Add(delay)
		return nil, 0
	}
	if now.Before(l.gapNext) {
		return nil, 0
	}
	for k := 1; k < len(l.slots) && len(acks) < l.cfg.MaxAcksStandalone; k++ {
		if l.slots[(l.head+k)%len(l.slots)].present {
			acks = append(acks, l.expected+uint32(k))
		}
	}
	l.stats.RetransmitRequests++
	l.gapAsks++
	l.gapNext = now.Add(min(l.RTO()<<min(l.gapAsks-1, 16), l.cfg.MaxTimeout))
	return acks, (earlyRetransmitAcks + len(acks) - 1) / len(acks)
}

// Expected is the id of the next message Next will return.
func (l *Layer) Expected() uint32 { return l.expected }

// HasPendingAcks reports whether received messages still await an ack. The engine sends a
// P_ACK_V1 when this is true and it has no control packet to carry the acks.
func (l *Layer) HasPendingAcks() bool { return len(l.pending) > 0 }

// TakeAcks returns the ack list for one outgoing packet carrying at most max acks: up to max
// pending acks, oldest first, then, in the remaining slots, ids from the MRU list of recently
// sent acks, most recent first. The pending acks it returns are no longer pending. Like OpenVPN
// it returns MRU ids even when nothing is pending, so every control packet repeats recent acks.
func (l *Layer) TakeAcks(max int) []uint32 {
	if max <= 0 {
		return nil
	}
	n := min(len(l.pending), max)
	// Move the taken ids to the front of the MRU list, keeping their order.
	for i := n - 1; i >= 0; i-- {
		l.mruPush(l.pending[i])
	}
	copy(l.pending, l.pending[n:])
	l.pending = l.pending[:len(l.pending)-n]
	total := min(max, len(l.mru))
	if total == 0 {
		return nil
	}
	return append([]uint32(nil), l.mru[:total]...)
}

// AcksToSend is the length of the list TakeAcks(max) would return now, for sizing a packet.
func (l *Layer) AcksToSend(max int) int {
	if max <= 0 {
		return 0
	}
	n := min(len(l.pending), max)
	union := len(l.mru)
	for _, id := range l.pending[:n] {
		found := false
		for _, m := range l.mru {
			if m == id {
				found = true
				break
			}
		}
		if !found {
			union++
		}
	}
	return min(max, union, cap(l.mru))
}

// mruPush moves id to the front of the MRU list, dropping the least recent entry when full.
func (l *Layer) mruPush(id uint32) {
	at := -1
	for i, m := range l.mru {
		if m == id {
			at = i
			break
		}
	}
	if at < 0 {
		if len(l.mru) < cap(l.mru) {
			l.mru = l.mru[:len(l.mru)+1]
		}
		at = len(l.mru) - 1
	}
	copy(l.mru[1:at+1], l.mru[:at])
	l.mru[0] = id
}
