package reliable

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// t0 is the synthetic start of every scenario; nothing here reads the clock.
var t0 = time.Unix(1_700_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

// fixedTiming is OpenVPN's timing: a first retransmission after tls-timeout until a round trip
// is measured (these scenarios ack after a second, which measures 1 s: RTO stays 2 s).
var fixedTiming = Config{InitialTimeout: DefaultTimeout}

func ids(ms []Message) []uint32 {
	out := make([]uint32, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func mustSend(t *testing.T, l *Layer, now time.Time, op uint8, p string) uint32 {
	t.Helper()
	id, err := l.Send(now, op, []byte(p))
	if err != nil {
		t.Fatalf("Send(%q): %v", p, err)
	}
	return id
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{}, Config{Timeout: 2 * time.Second, InitialTimeout: time.Second, MinTimeout: 200 * time.Millisecond, MaxTimeout: 60 * time.Second, SendWindow: 6, RecvWindow: 12, MaxAcksPiggyback: 4, MaxAcksStandalone: 8}},
		{"negative", Config{Timeout: -1, MaxTimeout: -1, SendWindow: -3, RecvWindow: -1, MaxAcksPiggyback: -1, MaxAcksStandalone: -1},
			Config{Timeout: 2 * time.Second, InitialTimeout: time.Second, MinTimeout: 200 * time.Millisecond, MaxTimeout: 60 * time.Second, SendWindow: 6, RecvWindow: 12, MaxAcksPiggyback: 4, MaxAcksStandalone: 8}},
		{"max below timeout", Config{Timeout: 90 * time.Second}, Config{Timeout: 90 * time.Second, InitialTimeout: time.Second, MinTimeout: 200 * time.Millisecond, MaxTimeout: 90 * time.Second, SendWindow: 6, RecvWindow: 12, MaxAcksPiggyback: 4, MaxAcksStandalone: 8}},
		{"timeout below the initial and minimum", Config{Timeout: 100 * time.Millisecond, SRTT: -1, RTTVar: 5},
			Config{Timeout: 100 * time.Millisecond, InitialTimeout: 100 * time.Millisecond, MinTimeout: 100 * time.Millisecond, MaxTimeout: 60 * time.Second, SendWindow: 6, RecvWindow: 12, MaxAcksPiggyback: 4, MaxAcksStandalone: 8}},
		{"huge windows clamped", Config{SendWindow: 1 << 20, RecvWindow: 1 << 20, MaxAcksPiggyback: 999, MaxAcksStandalone: 999},
			Config{Timeout: 2 * time.Second, InitialTimeout: time.Second, MinTimeout: 200 * time.Millisecond, MaxTimeout: 60 * time.Second, SendWindow: 255, RecvWindow: 255, MaxAcksPiggyback: 255, MaxAcksStandalone: 255}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, New(tt.in).Config()); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendWindow(t *testing.T) {
	l := New(Config{})
	for i := range 6 {
		if got := l.SendWindowFree(); got != 6-i {
			t.Fatalf("before send %d: SendWindowFree = %d, want %d", i, got, 6-i)
		}
		if id := mustSend(t, l, t0, 4, "m"); id != uint32(i) {
			t.Fatalf("send %d got id %d", i, id)
		}
	}
	if _, err := l.Send(t0, 4, nil); !errors.Is(err, ErrWindowFull) {
		t.Fatalf("7th Send err = %v, want ErrWindowFull", err)
	}
	// Acking later ids does not open the window while id 0 is outstanding: the window spans
	// from the oldest unacked id, as in OpenVPN.
	l.Ack(t0, []uint32{1, 2, 3, 4, 5})
	if got := l.SendWindowFree(); got != 0 {
		t.Fatalf("with 0 outstanding: SendWindowFree = %d, want 0", got)
	}
	if got := l.Unacked(); got != 1 {
		t.Fatalf("Unacked = %d, want 1", got)
	}
	l.Ack(t0, []uint32{0})
	if got := l.SendWindowFree(); got != 6 {
		t.Fatalf("all acked: SendWindowFree = %d, want 6", got)
	}
	if id := mustSend(t, l, t0, 4, "x"); id != 6 {
		t.Fatalf("next id = %d, want 6", id)
	}
	// Acking the oldest of several opens exactly as many slots as the span shrinks.
	mustSend(t, l, t0, 4, "y") // 7
	mustSend(t, l, t0, 4, "z") // 8
	l.Ack(t0, []uint32{7})
	if got := l.SendWindowFree(); got != 3 {
		t.Fatalf("6 and 8 outstanding: SendWindowFree = %d, want 3", got)
	}
	l.Ack(t0, []uint32{6})
	if got := l.SendWindowFree(); got != 5 {
		t.Fatalf("8 outstanding: SendWindowFree = %d, want 5", got)
	}
}

func TestSendCopiesPayload(t *testing.T) {
	l := New(Config{})
	buf := []byte("hello")
	mustSend(t, l, t0, 4, string(buf))
	id, _ := l.Send(t0, 7, buf)
	buf[0] = 'X'
	due := l.Due(t0)
	if len(due) != 2 || due[1].ID != id || string(due[1].Payload) != "hello" || due[1].Opcode != 7 {
		t.Fatalf("Due = %+v, payload not copied or wrong", due)
	}
}

func TestBackoff(t *testing.T) {
	l := New(Config{Timeout: 2 * time.Second, InitialTimeout: 2 * time.Second, MaxTimeout: 60 * time.Second})
	mustSend(t, l, t0, 4, "a")
	if got := l.NextDeadline(); !got.Equal(t0) {
		t.Fatalf("queued message deadline = %v, want %v", got, t0)
	}
	// Transmission times: 0, then +2, +4, +8, +16, +32, +60 (capped), +60.
	wantTimes := []time.Duration{0, 2, 6, 14, 30, 62, 122, 182}
	for i, w := range wantTimes {
		w *= time.Second
		if i > 0 {
			if got := l.NextDeadline(); !got.Equal(at(w)) {
				t.Fatalf("transmission %d: NextDeadline = %v, want +%v", i, got.Sub(t0), w)
			}
			if due := l.Due(at(w - time.Millisecond)); len(due) != 0 {
				t.Fatalf("transmission %d: due 1ms early: %v", i, ids(due))
			}
		}
		due := l.Due(at(w))
		if len(due) != 1 || due[0].ID != 0 {
			t.Fatalf("transmission %d at +%v: Due = %v", i, w, ids(due))
		}
		if again := l.Due(at(w)); len(again) != 0 {
			t.Fatalf("transmission %d: Due twice at same time returned %v", i, ids(again))
		}
	}
	st := l.Stats()
	if st.Sent != 1 || st.Retransmits != uint64(len(wantTimes)-1) {
		t.Fatalf("stats = %+v", st)
	}
	l.Ack(at(200*time.Second), []uint32{0})
	if !l.NextDeadline().IsZero() || l.Unacked() != 0 {
		t.Fatalf("after ack: deadline %v unacked %d", l.NextDeadline(), l.Unacked())
	}
}

func TestBackoffIsPerMessage(t *testing.T) {
	l := New(fixedTiming)
	mustSend(t, l, t0, 4, "a")
	l.Due(t0) // 0 next at +2
	mustSend(t, l, at(time.Second), 4, "b")
	if got := ids(l.Due(at(time.Second))); !cmp.Equal(got, []uint32{1}) {
		t.Fatalf("Due(+1s) = %v", got)
	}
	if got := ids(l.Due(at(2 * time.Second))); !cmp.Equal(got, []uint32{0}) {
		t.Fatalf("Due(+2s) = %v", got) // 0 next at +6
	}
	if got := ids(l.Due(at(3 * time.Second))); !cmp.Equal(got, []uint32{1}) {
		t.Fatalf("Due(+3s) = %v", got) // 1 next at +7
	}
	if got := l.NextDeadline(); !got.Equal(at(6 * time.Second)) {
		t.Fatalf("NextDeadline = +%v, want +6s", got.Sub(t0))
	}
	if got := ids(l.Due(at(7 * time.Second))); !cmp.Equal(got, []uint32{0, 1}) {
		t.Fatalf("Due(+7s) = %v, want both in id order", got)
	}
}

func TestEarlyRetransmit(t *testing.T) {
	tests := []struct {
		name     string
		acks     [][]uint32 // packets of acks at +1s
		wantDue  []uint32   // Due(+1s) after the acks
		wantEarl uint64
	}{
		{"three later acks in one packet", [][]uint32{{1, 2, 3}}, []uint32{0}, 1},
		{"three later acks in three packets", [][]uint32{{1}, {2}, {3}}, []uint32{0}, 1},
		{"two later acks are not enough", [][]uint32{{1, 2}}, nil, 0},
		// MRU repeats name the same message again; only distinct acked messages count.
		{"repeated ack of one later id", [][]uint32{{1}, {1}, {1}}, nil, 0},
		{"repeats mixed with new acks", [][]uint32{{1, 2}, {1, 2}, {2, 1}, {3, 1, 2}}, []uint32{0}, 1},
		{"acks of ids never sent do not count", [][]uint32{{9, 10, 11}}, nil, 0},
		{"ack of the message itself", [][]uint32{{0, 1, 2}}, nil, 0},
		// Both 0 and 1 see four acks of later ids.
		{"two messages due early", [][]uint32{{2, 3, 4, 5}}, []uint32{0, 1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(fixedTiming)
			for range 6 {
				mustSend(t, l, t0, 4, "m")
			}
			l.Due(t0)
			for _, a := range tt.acks {
				l.Ack(at(time.Second), a)
			}
			if got := ids(l.Due(at(time.Second))); !cmp.Equal(got, tt.wantDue, cmpopts.EquateEmpty()) {
				t.Fatalf("Due = %v, want %v", got, tt.wantDue)
			}
			if got := l.Stats().EarlyRetransmits; got != tt.wantEarl {
				t.Fatalf("EarlyRetransmits = %d, want %d", got, tt.wantEarl)
			}
		})
	}
}

func TestEarlyRetransmitBacksOff(t *testing.T) {
	l := New(fixedTiming)
	for range 4 {
		mustSend(t, l, t0, 4, "m")
	}
	l.Due(t0)
	l.Ack(at(time.Second), []uint32{1, 2, 3})
	if got := ids(l.Due(at(time.Second))); !cmp.Equal(got, []uint32{0}) {
		t.Fatalf("early Due = %v", got)
	}
	// The early retransmission doubled the delay (2s -> 4s) and reset the ack count.
	if got := l.NextDeadline(); !got.Equal(at(5 * time.Second)) {
		t.Fatalf("NextDeadline = +%v, want +5s", got.Sub(t0))
	}
	// The peer's MRU list repeats the same acks: no further early retransmission.
	for range 5 {
		l.Ack(at(2*time.Second), []uint32{1, 2, 3})
	}
	if got := l.Due(at(2 * time.Second)); len(got) != 0 {
		t.Fatalf("Due after repeated acks = %v", ids(got))
	}
}

func TestScheduleNow(t *testing.T) {
	l := New(fixedTiming)
	mustSend(t, l, t0, 4, "a")
	for _, s := range []time.Duration{0, 2, 6} {
		l.Due(at(s * time.Second)) // next at +14, timeout 16s
	}
	l.ScheduleNow(at(7 * time.Second))
	if got := ids(l.Due(at(7 * time.Second))); !cmp.Equal(got, []uint32{0}) {
		t.Fatalf("Due after ScheduleNow = %v", got)
	}
	if got := l.NextDeadline(); !got.Equal(at(9 * time.Second)) {
		t.Fatalf("NextDeadline = +%v, want +9s (backoff reset)", got.Sub(t0))
	}
}

func TestReceiveWindow(t *testing.T) {
	type rx struct {
		id       uint32
		accepted bool
	}
	tests := []struct {
		name      string
		rx        []rx
		wantNext  []uint32
		wantAcks  []uint32 // TakeAcks(8) afterwards
		wantStats Stats
	}{
		{"in order", []rx{{0, true}, {1, true}, {2, true}}, []uint32{0, 1, 2}, []uint32{0, 1, 2}, Stats{Received: 3}},
		{"reordered", []rx{{2, true}, {0, true}, {1, true}}, []uint32{0, 1, 2}, []uint32{2, 0, 1}, Stats{Received: 3}},
		{"gap holds delivery", []rx{{1, true}, {2, true}}, nil, []uint32{1, 2}, Stats{Received: 2}},
		{"duplicate buffered acked once", []rx{{1, true}, {1, false}}, nil, []uint32{1}, Stats{Received: 1, Duplicates: 1}},
		{"last slot of window", []rx{{11, true}}, nil, []uint32{11}, Stats{Received: 1}},
		{"beyond window dropped unacked", []rx{{12, false}, {1000, false}, {1 << 31, false}, {0xffffffff, false}}, nil, nil, Stats{OutOfWindow: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(Config{})
			for _, r := range tt.rx {
				if got := l.Receive(r.id, 4, []byte{byte(r.id)}); got != r.accepted {
					t.Fatalf("Receive(%d) = %v, want %v", r.id, got, r.accepted)
				}
			}
			var next []uint32
			for {
				m, ok := l.Next()
				if !ok {
					break
				}
				if len(m.Payload) != 1 || m.Payload[0] != byte(m.ID) || m.Opcode != 4 {
					t.Fatalf("Next returned %+v", m)
				}
				next = append(next, m.ID)
			}
			if !cmp.Equal(next, tt.wantNext) {
				t.Errorf("delivered %v, want %v", next, tt.wantNext)
			}
			if got := l.TakeAcks(8); !cmp.Equal(got, tt.wantAcks) {
				t.Errorf("acks %v, want %v", got, tt.wantAcks)
			}
			if diff := cmp.Diff(tt.wantStats, l.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReceiveAcksDelivered(t *testing.T) {
	l := New(Config{})
	for id := range uint32(3) {
		l.Receive(id, 4, nil)
		l.Next()
	}
	l.TakeAcks(8)
	// The peer lost our ack of 1 and resends it: ack again, do not deliver again.
	if l.Receive(1, 4, []byte("dup")) {
		t.Fatal("delivered message accepted again")
	}
	if _, ok := l.Next(); ok {
		t.Fatal("duplicate delivered")
	}
	if !l.HasPendingAcks() {
		t.Fatal("no ack queued for a duplicate")
	}
	if got := l.TakeAcks(1); !cmp.Equal(got, []uint32{1}) {
		t.Fatalf("TakeAcks(1) = %v", got)
	}
	// The window moved: 3..14 are acceptable now, 15 is not.
	if !l.Receive(14, 4, nil) || l.Receive(15, 4, nil) {
		t.Fatal("window did not move with delivery")
	}
	if l.Expected() != 3 {
		t.Fatalf("Expected = %d", l.Expected())
	}
}

func TestReceiveCopiesPayload(t *testing.T) {
	l := New(Config{})
	buf := []byte("abc")
	l.Receive(0, 4, buf)
	buf[0] = 'X'
	m, _ := l.Next()
	if string(m.Payload) != "abc" {
		t.Fatalf("payload %q, not copied", m.Payload)
	}
}

func TestPendingAcksBounded(t *testing.T) {
	l := New(Config{})
	for id := range uint32(12) {
		l.Receive(id, 4, nil)
	}
	if got := l.AcksToSend(100); got != 8 {
		t.Fatalf("AcksToSend(100) = %d, want 8", got)
	}
	if got := l.TakeAcks(100); !cmp.Equal(got, []uint32{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("TakeAcks = %v", got)
	}
	if l.HasPendingAcks() {
		t.Fatal("acks beyond capacity were kept")
	}
	if got := l.Stats().AcksDropped; got != 4 {
		t.Fatalf("AcksDropped = %d, want 4", got)
	}
	// The peer retransmits 8..11; now they are acked.
	for id := uint32(8); id < 12; id++ {
		l.Receive(id, 4, nil)
	}
	if got := l.TakeAcks(4); !cmp.Equal(got, []uint32{8, 9, 10, 11}) {
		t.Fatalf("TakeAcks after retransmit = %v", got)
	}
}

// TestAckMRU follows OpenVPN's ack writing: pending acks first, then recently sent ones,
// most recent first, in a list of at most 8.
func TestAckMRU(t *testing.T) {
	type step struct {
		receive []uint32
		max     int
		want    []uint32
		pending bool // HasPendingAcks afterwards
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"nothing to ack", []step{{nil, 4, nil, false}}},
		{"repeat without pending", []step{
			{[]uint32{0, 1, 2}, 4, []uint32{0, 1, 2}, false},
			{nil, 4, []uint32{0, 1, 2}, false},
			{nil, 2, []uint32{0, 1}, false},
		}},
		{"new ack goes first", []step{
			{[]uint32{0, 1, 2}, 4, []uint32{0, 1, 2}, false},
			{[]uint32{3}, 2, []uint32{3, 0}, false},
			{nil, 8, []uint32{3, 0, 1, 2}, false},
		}},
		{"max smaller than pending", []step{
			{[]uint32{0, 1, 2, 3, 4, 5}, 4, []uint32{0, 1, 2, 3}, true},
			{nil, 4, []uint32{4, 5, 0, 1}, false},
			{nil, 8, []uint32{4, 5, 0, 1, 2, 3}, false},
		}},
		{"re-acked id moves to front without duplicate", []step{
			{[]uint32{0, 1, 2}, 8, []uint32{0, 1, 2}, false},
			{[]uint32{1}, 8, []uint32{1, 0, 2}, false},
		}},
		{"mru keeps eight most recent", []step{
			{[]uint32{0, 1, 2, 3, 4, 5, 6, 7}, 8, []uint32{0, 1, 2, 3, 4, 5, 6, 7}, false},
			{[]uint32{8, 9}, 8, []uint32{8, 9, 0, 1, 2, 3, 4, 5}, false},
			{nil, 255, []uint32{8, 9, 0, 1, 2, 3, 4, 5}, false},
		}},
		{"zero max takes nothing", []step{
			{[]uint32{0}, 0, nil, true},
			{nil, 1, []uint32{0}, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(Config{})
			for i, s := range tt.steps {
				for _, id := range s.receive {
					l.Receive(id, 4, nil)
				}
				predicted := l.AcksToSend(s.max)
				got := l.TakeAcks(s.max)
				if !cmp.Equal(got, s.want) {
					t.Fatalf("step %d: TakeAcks(%d) = %v, want %v", i, s.max, got, s.want)
				}
				if predicted != len(got) {
					t.Fatalf("step %d: AcksToSend = %d, TakeAcks returned %d", i, predicted, len(got))
				}
				if l.HasPendingAcks() != s.pending {
					t.Fatalf("step %d: HasPendingAcks = %v", i, !s.pending)
				}
			}
		})
	}
}

func TestAckIgnoresUnknown(t *testing.T) {
	l := New(Config{})
	mustSend(t, l, t0, 4, "a")
	mustSend(t, l, t0, 4, "b")
	l.Due(t0)
	l.Ack(t0, []uint32{7, 0xffffffff, 1, 1})
	if l.Unacked() != 1 || l.Stats().Acked != 1 {
		t.Fatalf("Unacked = %d stats %+v", l.Unacked(), l.Stats())
	}
	l.Ack(t0, nil)
	l.Ack(t0, []uint32{0})
	if l.Unacked() != 0 {
		t.Fatalf("Unacked = %d", l.Unacked())
	}
	l.Ack(t0, []uint32{0, 1, 2}) // nothing in flight
}

// TestAckBeforeFirstTransmission covers an ack that arrives for a message Due has not yet
// returned (the peer cannot have it, but a confused or hostile peer may say so).
func TestAckBeforeFirstTransmission(t *testing.T) {
	l := New(Config{})
	mustSend(t, l, t0, 4, "a")
	l.Ack(t0, []uint32{0})
	if got := l.Due(t0); len(got) != 0 {
		t.Fatalf("acked message still transmitted: %v", ids(got))
	}
}

func TestIDWrap(t *testing.T) {
	l := New(Config{})
	l.nextID = 0xfffffffe
	for range 4 {
		mustSend(t, l, t0, 4, "w")
	}
	l.Due(t0)
	if got := l.SendWindowFree(); got != 2 {
		t.Fatalf("SendWindowFree across wrap = %d", got)
	}
	l.Ack(at(time.Second), []uint32{0xffffffff, 0, 1})
	if got := ids(l.Due(at(time.Second))); !cmp.Equal(got, []uint32{0xfffffffe}) {
		t.Fatalf("early retransmit across wrap: Due = %v", got)
	}
	l.Ack(at(time.Second), []uint32{0xfffffffe})
	if l.Unacked() != 0 || l.SendWindowFree() != 6 {
		t.Fatalf("Unacked %d free %d", l.Unacked(), l.SendWindowFree())
	}
}

func TestNextPayloadOwnership(t *testing.T) {
	l := New(Config{})
	l.Receive(0, 4, []byte("first"))
	m, _ := l.Next()
	l.Receive(12, 4, []byte("other")) // reuses the ring slot of id 0
	if !bytes.Equal(m.Payload, []byte("first")) {
		t.Fatalf("delivered payload changed to %q", m.Payload)
	}
}

// sendAt queues one message at now and transmits it, returning its id.
func sendAt(t *testing.T, l *Layer, now time.Time) uint32 {
	t.Helper()
	id := mustSend(t, l, now, 4, "m")
	if got := ids(l.Due(now)); !cmp.Equal(got, []uint32{id}) {
		t.Fatalf("Due at send = %v, want [%d]", got, id)
	}
	return id
}

func TestInitialTimeout(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want time.Duration
	}{
		{"default: RFC 6298's 1 s", Config{}, time.Second},
		{"never above tls-timeout", Config{Timeout: 500 * time.Millisecond}, 500 * time.Millisecond},
		{"configured", Config{InitialTimeout: 3 * time.Second, Timeout: 5 * time.Second}, 3 * time.Second},
		{"seeded by an earlier measurement", Config{SRTT: 300 * time.Millisecond, RTTVar: 50 * time.Millisecond}, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.cfg)
			sendAt(t, l, t0)
			if got := l.NextDeadline().Sub(t0); got != tt.want {
				t.Fatalf("first retransmission after %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRTOFromMeasuredRTT(t *testing.T) {
	tests := []struct {
		name    string
		rtts    []time.Duration // acked one after another, each after one transmission
		wantRTO time.Duration
	}{
		// srtt 40 ms, rttvar 20 ms: 120 ms, raised to the 200 ms floor.
		{"short path: the floor", []time.Duration{40 * time.Millisecond}, 200 * time.Millisecond},
		// srtt 300, rttvar 150: 900 ms.
		{"one sample", []time.Duration{300 * time.Millisecond}, 900 * time.Millisecond},
		// srtt 300, rttvar 150; then |300-300| = 0: rttvar 112.5, srtt 300: 750 ms.
		{"steady samples shrink the variation", []time.Duration{300 * time.Millisecond, 300 * time.Millisecond}, 750 * time.Millisecond},
		// srtt 1.5 s, rttvar 750 ms: 4.5 s, capped at tls-timeout.
		{"long path: never slower than tls-timeout", []time.Duration{1500 * time.Millisecond}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(Config{})
			now := t0
			for _, r := range tt.rtts {
				id := sendAt(t, l, now)
				now = now.Add(r)
				l.Ack(now, []uint32{id})
			}
			if got := l.RTO(); got != tt.wantRTO {
				srtt, rttvar := l.RTT()
				t.Fatalf("RTO = %v (srtt %v, rttvar %v), want %v", got, srtt, rttvar, tt.wantRTO)
			}
			if got := l.Stats().RTTSamples; got != uint64(len(tt.rtts)) {
				t.Fatalf("RTTSamples = %d, want %d", got, len(tt.rtts))
			}
			// The next message retransmits after RTO, then after twice that.
			sendAt(t, l, now)
			if got := l.NextDeadline().Sub(now); got != tt.wantRTO {
				t.Fatalf("first retransmission after %v, want %v", got, tt.wantRTO)
			}
			if got := ids(l.Due(now.Add(tt.wantRTO))); len(got) != 1 {
				t.Fatalf("Due at RTO = %v", got)
			}
			if got := l.NextDeadline().Sub(now.Add(tt.wantRTO)); got != 2*tt.wantRTO {
				t.Fatalf("second retransmission after %v more, want %v", got, 2*tt.wantRTO)
			}
		})
	}
}

// TestRTTKarn checks that the ack of a retransmitted message is no sample: it cannot tell which
// transmission it answers.
func TestRTTKarn(t *testing.T) {
	l := New(Config{})
	id := sendAt(t, l, t0)
	if got := ids(l.Due(at(time.Second))); !cmp.Equal(got, []uint32{id}) {
		t.Fatalf("retransmission Due = %v", got)
	}
	l.Ack(at(1050*time.Millisecond), []uint32{id})
	if srtt, _ := l.RTT(); srtt != 0 || l.Stats().RTTSamples != 0 {
		t.Fatalf("sampled a retransmitted message: srtt %v, stats %+v", srtt, l.Stats())
	}
	if got := l.RTO(); got != time.Second {
		t.Fatalf("RTO = %v, want the initial 1s", got)
	}
	// An early retransmission counts as a retransmission too.
	l = New(Config{})
	for range 4 {
		sendAt(t, l, t0)
	}
	l.Ack(at(100*time.Millisecond), []uint32{1, 2, 3})
	if got := ids(l.Due(at(100 * time.Millisecond))); !cmp.Equal(got, []uint32{0}) {
		t.Fatalf("early Due = %v", got)
	}
	l.Ack(at(150*time.Millisecond), []uint32{0})
	if got := l.Stats().RTTSamples; got != 3 {
		t.Fatalf("RTTSamples = %d, want 3 (ids 1..3 only)", got)
	}
}

func TestRetransmitRequest(t *testing.T) {
	l := New(Config{})
	recv := func(id uint32) {
		t.Helper()
		if !l.Receive(id, 4, []byte("m")) {
			t.Fatalf("Receive(%d) not buffered", id)
		}
	}
	check := func(now time.Duration, wantAcks []uint32, wantPackets int) {
		t.Helper()
		acks, n := l.RetransmitRequest(at(now))
		if !cmp.Equal(acks, wantAcks, cmpopts.EquateEmpty()) || n != wantPackets {
			t.Fatalf("RetransmitRequest(+%v) = %v in %d packets, want %v in %d", now, acks, n, wantAcks, wantPackets)
		}
	}
	// In order: no gap, nothing to ask and no deadline.
	recv(0)
	l.Next()
	check(0, nil, 0)
	if !l.NextDeadline().IsZero() {
		t.Fatalf("NextDeadline = %v with nothing to do", l.NextDeadline())
	}
	// id 1 is missing: before an RTT is measured, a gap waits 50 ms for reordering.
	recv(2)
	check(0, nil, 0)
	if got := l.NextDeadline(); !got.Equal(at(50 * time.Millisecond)) {
		t.Fatalf("NextDeadline = +%v, want +50ms", got.Sub(t0))
	}
	check(49*time.Millisecond, nil, 0)
	// One id beyond the gap: three packets carry three acks of a later id.
	check(50*time.Millisecond, []uint32{2}, 3)
	// The next request waits RTO (the initial 1 s), then twice that.
	check(51*time.Millisecond, nil, 0)
	if got := l.NextDeadline(); !got.Equal(at(1050 * time.Millisecond)) {
		t.Fatalf("NextDeadline = +%v, want +1.05s", got.Sub(t0))
	}
	recv(3)
	recv(5)
	check(1050*time.Millisecond, []uint32{2, 3, 5}, 1)
	if got := l.NextDeadline(); !got.Equal(at(3050 * time.Millisecond)) {
		t.Fatalf("NextDeadline = +%v, want +3.05s", got.Sub(t0))
	}
	if got := l.Stats().RetransmitRequests; got != 2 {
		t.Fatalf("RetransmitRequests = %d", got)
	}
	// The missing id arrives: 1, 2, 3 are delivered, and 4 is now missing before 5, a new gap.
	recv(1)
	for range 3 {
		l.Next()
	}
	check(3*time.Second, nil, 0)
	check(3050*time.Millisecond, []uint32{5}, 3)
	recv(4)
	l.Next()
	l.Next()
	check(4*time.Second, nil, 0)
	if !l.NextDeadline().IsZero() {
		t.Fatalf("NextDeadline = +%v after the gap closed", l.NextDeadline().Sub(t0))
	}
}

// TestRetransmitRequestWaitsHalfRTT checks that a measured path waits half its smoothed RTT
// for reordering, at least 10 ms.
func TestRetransmitRequestWaitsHalfRTT(t *testing.T) {
	for _, tt := range []struct{ srtt, want time.Duration }{
		{80 * time.Millisecond, 40 * time.Millisecond},
		{4 * time.Millisecond, 10 * time.Millisecond},
	} {
		l := New(Config{SRTT: tt.srtt, RTTVar: tt.srtt / 2})
		l.Receive(1, 4, nil)
		l.RetransmitRequest(t0)
		if got := l.NextDeadline().Sub(t0); got != tt.want {
			t.Errorf("srtt %v: request after %v, want %v", tt.srtt, got, tt.want)
		}
	}
}
