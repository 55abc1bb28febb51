package reliable

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// FuzzOps drives one Layer with an arbitrary sequence of operations decoded from the input and
// checks its invariants after each one against a simple model.
func FuzzOps(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 5, 0, 3, 1, 10, 2, 0, 0, 0, 0, 3, 0, 4, 5, 6})
	f.Add([]byte{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 255, 1, 255, 2, 3, 0, 1, 2})
	f.Add([]byte{3, 0, 3, 2, 3, 1, 3, 11, 3, 12, 5, 4, 4, 6, 3, 0, 7, 8})
	f.Add(bytes.Repeat([]byte{3, 7, 0, 9, 1, 200, 2, 1, 6, 3}, 20))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4096 {
			return
		}
		l := New(Config{SendWindow: int(len(in)%7) + 1, RecvWindow: int(len(in)%13) + 1})
		cfg := l.Config()
		now := t0
		sent := map[uint32][]byte{} // model: unacked messages by id
		var nextSend, nextDeliver uint32
		rd := func() byte {
			if len(in) == 0 {
				return 0
			}
			b := in[0]
			in = in[1:]
			return b
		}
		for len(in) > 0 {
			switch rd() % 9 {
			case 0: // Send
				p := bytes.Repeat([]byte{rd()}, int(rd()%32))
				free := l.SendWindowFree()
				id, err := l.Send(now, 4, p)
				if free == 0 {
					if err == nil {
						t.Fatal("Send succeeded with a full window")
					}
					break
				}
				if err != nil || id != nextSend {
					t.Fatalf("Send = %d, %v; want id %d", id, err, nextSend)
				}
				sent[id] = p
				nextSend++
			case 1: // advance time and transmit
				now = now.Add(time.Duration(rd()) * 100 * time.Millisecond)
				var last uint32
				for i, m := range l.Due(now) {
					if i > 0 && !before(last, m.ID) {
						t.Fatalf("Due not in id order: %d after %d", m.ID, last)
					}
					last = m.ID
					want, ok := sent[m.ID]
					if !ok || !bytes.Equal(want, m.Payload) {
						t.Fatalf("Due returned id %d payload %x; model has %x (%v)", m.ID, m.Payload, want, ok)
					}
				}
				if d := l.NextDeadline(); !d.IsZero() && !d.After(now) && l.gapSince.IsZero() {
					t.Fatalf("deadline %v not after now %v right after Due", d, now)
				}
			case 2: // Ack ids near the send range
				var acks []uint32
				for range rd() % 10 {
					acks = append(acks, nextSend-8+uint32(rd()%12))
				}
				l.Ack(now, acks)
				for _, id := range acks {
					delete(sent, id)
				}
			case 3: // Receive near the expected id
				id := l.Expected() + uint32(rd()) - 8
				if rd()&1 == 1 {
					id = binary.BigEndian.Uint32([]byte{rd(), rd(), rd(), rd()})
				}
				l.Receive(id, rd(), []byte{byte(id)})
			case 4: // deliver
				for {
					m, ok := l.Next()
					if !ok {
						break
					}
					if m.ID != nextDeliver || len(m.Payload) != 1 || m.Payload[0] != byte(m.ID) {
						t.Fatalf("Next = %+v, want id %d", m, nextDeliver)
					}
					nextDeliver++
				}
			case 5: // take acks
				n := int(rd()%12) - 1
				predicted := l.AcksToSend(n)
				acks := l.TakeAcks(n)
				if len(acks) != predicted {
					t.Fatalf("AcksToSend(%d) = %d, TakeAcks returned %v", n, predicted, acks)
				}
				if len(acks) > max(n, 0) || len(acks) > cfg.MaxAcksStandalone {
					t.Fatalf("TakeAcks(%d) returned %d acks", n, len(acks))
				}
				seen := map[uint32]bool{}
				for _, a := range acks {
					if seen[a] {
						t.Fatalf("TakeAcks returned %d twice: %v", a, acks)
					}
					seen[a] = true
				}
			case 6:
				l.ScheduleNow(now)
			case 7: // time may also jump backwards: nothing must break
				now = now.Add(-time.Duration(rd()) * time.Second)
			case 8: // ask for a message missing from a gap
				acks, n := l.RetransmitRequest(now)
				if (n == 0) != (len(acks) == 0) || len(acks) > cfg.MaxAcksStandalone || (n > 0 && n*len(acks) < 3) || n > 3 {
					t.Fatalf("RetransmitRequest = %v in %d packets", acks, n)
				}
				for _, a := range acks {
					if !before(l.Expected(), a) {
						t.Fatalf("RetransmitRequest acks %d, not beyond the expected %d", a, l.Expected())
					}
				}
			}

			if got := l.Unacked(); got != len(sent) {
				t.Fatalf("Unacked = %d, model %d", got, len(sent))
			}
			if free := l.SendWindowFree(); free < 0 || free > cfg.SendWindow || l.Unacked() > cfg.SendWindow-free {
				t.Fatalf("SendWindowFree = %d with %d unacked, window %d", free, l.Unacked(), cfg.SendWindow)
			}
			if l.NextDeadline().IsZero() != (l.Unacked() == 0 && (l.gapSince.IsZero() || !l.hasGap())) {
				t.Fatalf("NextDeadline %v with %d unacked, gap since %v", l.NextDeadline(), l.Unacked(), l.gapSince)
			}
			if rto := l.RTO(); rto < min(cfg.MinTimeout, cfg.InitialTimeout) || rto > cfg.Timeout {
				t.Fatalf("RTO %v outside [%v, %v]", rto, cfg.MinTimeout, cfg.Timeout)
			}
			if len(l.pending) > cfg.MaxAcksStandalone || len(l.mru) > cfg.MaxAcksStandalone {
				t.Fatalf("ack lists grew to %d pending, %d mru", len(l.pending), len(l.mru))
			}
			if l.Expected() != nextDeliver {
				t.Fatalf("Expected = %d, delivered up to %d", l.Expected(), nextDeliver)
			}
		}
	})
}
