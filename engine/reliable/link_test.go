package reliable

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// linkParams describes a simulated network between two Layers.
type linkParams struct {
	loss     float64       // probability a packet is dropped
	dup      float64       // probability a packet is delivered twice
	minDelay time.Duration // each copy is delayed uniformly in [minDelay, maxDelay], which
	maxDelay time.Duration // reorders unless the two are equal
}

// simPacket is what one control packet carries as far as the reliability layer is concerned:
// an ack list and, unless it is a P_ACK_V1, one message.
type simPacket struct {
	acks []uint32
	msg  *Message
}

type flight struct {
	arrive time.Time
	seq    int // tie-break so delivery order is deterministic
	pkt    simPacket
}

// simLink carries packets one way.
type simLink struct {
	p     linkParams
	rng   *rand.Rand
	q     []flight
	seq   int
	stats struct{ sent, lost, dups int }
}

func (k *simLink) send(now time.Time, pkt simPacket) {
	k.stats.sent++
	// Copy as the wire would: the sender's buffers must not be shared with the receiver.
	c := simPacket{acks: append([]uint32(nil), pkt.acks...)}
	if pkt.msg != nil {
		m := *pkt.msg
		m.Payload = append([]byte(nil), m.Payload...)
		c.msg = &m
	}
	if k.rng.Float64() < k.p.loss {
		k.stats.lost++
		return
	}
	copies := 1
	if k.rng.Float64() < k.p.dup {
		copies = 2
		k.stats.dups++
	}
	for range copies {
		d := k.p.minDelay
		if k.p.maxDelay > d {
			d += time.Duration(k.rng.Int63n(int64(k.p.maxDelay-d) + 1))
		}
		k.seq++
		k.q = append(k.q, flight{arrive: now.Add(d), seq: k.seq, pkt: c})
	}
}

// pop removes and returns the earliest packet that has arrived by now.
func (k *simLink) pop(now time.Time) (simPacket, bool) {
	best := -1
	for i, f := range k.q {
		if f.arrive.After(now) {
			continue
		}
		if best < 0 || f.arrive.Before(k.q[best].arrive) || (f.arrive.Equal(k.q[best].arrive) && f.seq < k.q[best].seq) {
			best = i
		}
	}
	if best < 0 {
		return simPacket{}, false
	}
	p := k.q[best].pkt
	k.q = append(k.q[:best], k.q[best+1:]...)
	return p, true
}

func (k *simLink) nextArrival() time.Time {
	var t time.Time
	for _, f := range k.q {
		if t.IsZero() || f.arrive.Before(t) {
			t = f.arrive
		}
	}
	return t
}

// endpoint is one side: a Layer, the messages it still has to send and what it delivered.
type endpoint struct {
	l         *Layer
	backlog   []Message
	delivered []Message
	accepted  map[uint32]int
}

func newEndpoint(cfg Config, n int, tag string, rng *rand.Rand) *endpoint {
	e := &endpoint{l: New(cfg), accepted: map[uint32]int{}}
	for i := range n {
		p := make([]byte, rng.Intn(64))
		rng.Read(p)
		p = append(p, fmt.Sprintf("%s-%d", tag, i)...)
		e.backlog = append(e.backlog, Message{ID: uint32(i), Opcode: uint8(3 + i%9), Payload: p})
	}
	return e
}

// transmit queues what fits in the window and puts due messages and acks on the link the way
// the engine does: each control packet carries up to MaxAcksPiggyback acks, and leftover
// pending acks go out in a P_ACK_V1.
func (e *endpoint) transmit(t *testing.T, now time.Time, out *simLink) {
	for len(e.backlog) > 0 && e.l.SendWindowFree() > 0 {
		m := e.backlog[0]
		id, err := e.l.Send(now, m.Opcode, m.Payload)
		if err != nil {
			t.Fatalf("Send with free window: %v", err)
		}
		if id != m.ID {
			t.Fatalf("Send assigned id %d, want %d", id, m.ID)
		}
		e.backlog = e.backlog[1:]
	}
	for _, m := range e.l.Due(now) {
		m := m
		out.send(now, simPacket{acks: e.l.TakeAcks(e.l.Config().MaxAcksPiggyback), msg: &m})
	}
	if e.l.HasPendingAcks() {
		out.send(now, simPacket{acks: e.l.TakeAcks(e.l.Config().MaxAcksStandalone)})
	}
	if acks, n := e.l.RetransmitRequest(now); n > 0 {
		for range n {
			out.send(now, simPacket{acks: acks})
		}
	}
}

func (e *endpoint) receive(now time.Time, p simPacket) {
	e.l.Ack(now, p.acks)
	if p.msg == nil {
		return
	}
	if e.l.Receive(p.msg.ID, p.msg.Opcode, p.msg.Payload) {
		e.accepted[p.msg.ID]++
	}
	for {
		m, ok := e.l.Next()
		if !ok {
			break
		}
		e.delivered = append(e.delivered, m)
	}
}

type simResult struct {
	elapsed     time.Duration
	steps       int
	retransmits uint64
	duplicates  uint64
}

// runLink sends n messages each way between two Layers over a simulated link and checks that
// each side delivers every message of the other exactly once, in order, intact.
func runLink(t *testing.T, seed int64, n int, cfg Config, lp linkParams) simResult {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	a := newEndpoint(cfg, n, "a", rng)
	b := newEndpoint(cfg, n, "b", rng)
	want := map[*endpoint][]Message{a: append([]Message(nil), b.backlog...), b: append([]Message(nil), a.backlog...)}
	ab := &simLink{p: lp, rng: rng}
	ba := &simLink{p: lp, rng: rng}

	now := t0
	const maxSteps = 2_000_000
	const maxElapsed = 48 * time.Hour
	steps := 0
	for ; steps < maxSteps; steps++ {
		for {
			p, ok := ab.pop(now)
			if !ok {
				break
			}
			b.receive(now, p)
		}
		for {
			p, ok := ba.pop(now)
			if !ok {
				break
			}
			a.receive(now, p)
		}
		a.transmit(t, now, ab)
		b.transmit(t, now, ba)

		done := len(a.backlog) == 0 && len(b.backlog) == 0 && a.l.Unacked() == 0 && b.l.Unacked() == 0 &&
			len(a.delivered) == n && len(b.delivered) == n
		if done {
			break
		}
		next := time.Time{}
		for _, d := range []time.Time{ab.nextArrival(), ba.nextArrival(), a.l.NextDeadline(), b.l.NextDeadline()} {
			if !d.IsZero() && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
		if next.IsZero() {
			t.Fatalf("seed %d: stalled at +%v with nothing scheduled (a: backlog %d unacked %d delivered %d; b: backlog %d unacked %d delivered %d)",
				seed, now.Sub(t0), len(a.backlog), a.l.Unacked(), len(a.delivered), len(b.backlog), b.l.Unacked(), len(b.delivered))
		}
		if next.After(now) {
			now = next
		}
		if now.Sub(t0) > maxElapsed {
			t.Fatalf("seed %d: not done after %v of simulated time", seed, maxElapsed)
		}
	}
	if steps == maxSteps {
		t.Fatalf("seed %d: not done after %d steps", seed, maxSteps)
	}
	for _, e := range []*endpoint{a, b} {
		w := want[e]
		if len(e.delivered) != len(w) {
			t.Fatalf("seed %d: delivered %d messages, want %d", seed, len(e.delivered), len(w))
		}
		for i := range w {
			g := e.delivered[i]
			if g.ID != w[i].ID || g.Opcode != w[i].Opcode || !bytes.Equal(g.Payload, w[i].Payload) {
				t.Fatalf("seed %d: message %d delivered as %+v, want %+v", seed, i, g, w[i])
			}
		}
		for id, c := range e.accepted {
			if c != 1 {
				t.Fatalf("seed %d: id %d accepted %d times", seed, id, c)
			}
		}
		if _, ok := e.l.Next(); ok {
			t.Fatalf("seed %d: extra message delivered", seed)
		}
	}
	sa, sb := a.l.Stats(), b.l.Stats()
	return simResult{
		elapsed:     now.Sub(t0),
		steps:       steps,
		retransmits: sa.Retransmits + sb.Retransmits,
		duplicates:  sa.Duplicates + sb.Duplicates,
	}
}

func TestLink(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		cfg   Config
		lp    linkParams
		seeds int
	}{
		{"perfect", 100, Config{}, linkParams{}, 1},
		{"perfect reordering", 100, Config{}, linkParams{maxDelay: 300 * time.Millisecond}, 5},
		{"lossy", 100, Config{}, linkParams{loss: 0.2, maxDelay: 50 * time.Millisecond}, 10},
		{"lossy duplicating reordering", 100, Config{}, linkParams{loss: 0.3, dup: 0.2, maxDelay: 3 * time.Second}, 10},
		{"very lossy", 40, Config{}, linkParams{loss: 0.6, dup: 0.1, maxDelay: time.Second}, 5},
		{"heavy duplication", 100, Config{}, linkParams{dup: 0.9, maxDelay: 500 * time.Millisecond}, 5},
		{"small windows", 60, Config{SendWindow: 1, RecvWindow: 1, MaxAcksPiggyback: 1, MaxAcksStandalone: 1}, linkParams{loss: 0.2, dup: 0.2, maxDelay: time.Second}, 5},
		{"receive window smaller than send window", 60, Config{SendWindow: 8, RecvWindow: 3}, linkParams{loss: 0.2, dup: 0.1, maxDelay: time.Second}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var retransmits, duplicates uint64
			for seed := range int64(tt.seeds) {
				r := runLink(t, seed+1, tt.n, tt.cfg, tt.lp)
				t.Logf("seed %d: done after %v simulated, %d steps, %d retransmits", seed+1, r.elapsed, r.steps, r.retransmits)
				retransmits += r.retransmits
				duplicates += r.duplicates
			}
			// Make sure the link really exercised recovery when it was told to.
			if tt.lp.loss > 0 && retransmits == 0 {
				t.Error("lossy link but no retransmissions")
			}
			if tt.lp.dup > 0 && duplicates == 0 {
				t.Error("duplicating link but no duplicates received")
			}
		})
	}
}

// TestLinkPerfectTiming checks that a lossless, order-keeping link never retransmits: every
// message is acked long before its 2 s timer and nothing triggers an early retransmission.
func TestLinkPerfectTiming(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	a := newEndpoint(Config{}, 50, "a", rng)
	b := newEndpoint(Config{}, 0, "b", rng)
	lp := linkParams{minDelay: 100 * time.Millisecond, maxDelay: 100 * time.Millisecond}
	ab := &simLink{p: lp, rng: rng}
	ba := &simLink{p: lp, rng: rng}
	now := t0
	for i := 0; i < 10_000 && (len(b.delivered) < 50 || a.l.Unacked() > 0); i++ {
		for p, ok := ab.pop(now); ok; p, ok = ab.pop(now) {
			b.receive(now, p)
		}
		for p, ok := ba.pop(now); ok; p, ok = ba.pop(now) {
			a.receive(now, p)
		}
		a.transmit(t, now, ab)
		b.transmit(t, now, ba)
		now = now.Add(10 * time.Millisecond)
	}
	if len(b.delivered) != 50 {
		t.Fatalf("delivered %d", len(b.delivered))
	}
	if st := a.l.Stats(); st.Retransmits != 0 || st.Sent != 50 || st.Acked != 50 {
		t.Fatalf("sender stats %+v", st)
	}
}

// FuzzLink runs the two-sided simulation with fuzzed seeds and link parameters.
func FuzzLink(f *testing.F) {
	f.Add(int64(1), uint8(10), uint8(0), uint8(0), uint16(0))
	f.Add(int64(2), uint8(30), uint8(60), uint8(30), uint16(2000))
	f.Add(int64(3), uint8(25), uint8(150), uint8(200), uint16(5000))
	f.Fuzz(func(t *testing.T, seed int64, n, loss, dup uint8, delayMs uint16) {
		lp := linkParams{
			loss:     float64(loss%180) / 255, // below ~0.7 so runs finish quickly
			dup:      float64(dup) / 255,
			maxDelay: time.Duration(delayMs) * time.Millisecond,
		}
		runLink(t, seed, int(n%40), Config{}, lp)
	})
}
