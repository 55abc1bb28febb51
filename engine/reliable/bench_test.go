package reliable

import (
	"testing"
	"time"
)

// BenchmarkRoundTrip measures one message through a sender and a receiver: Send, Due, Receive,
// Next, TakeAcks, Ack.
func BenchmarkRoundTrip(b *testing.B) {
	tx, rx := New(Config{}), New(Config{})
	payload := make([]byte, 1200)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tx.Send(now, 4, payload); err != nil {
			b.Fatal(err)
		}
		for _, m := range tx.Due(now) {
			rx.Receive(m.ID, m.Opcode, m.Payload)
		}
		if _, ok := rx.Next(); !ok {
			b.Fatal("not delivered")
		}
		tx.Ack(now, rx.TakeAcks(4))
		now = now.Add(time.Millisecond)
	}
}
