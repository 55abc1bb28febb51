package session

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCheckRoam: after a move, silence from a server that was talking just before ends the
// attempt (reconnect); an answer, or a server that was idle anyway, keeps it.
func TestCheckRoam(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		lastRecv  time.Time // zero: never
		reconnect bool
	}{
		{"busy then silent", t0.Add(-time.Second), true},
		{"answered after the move", t0.Add(500 * time.Millisecond), false},
		{"idle before the move", t0.Add(-time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var logged []string
			s := &Session{verb: 3, opts: Options{now: func() time.Time { return t0 }, Logf: func(f string, a ...any) {
				mu.Lock()
				defer mu.Unlock()
				logged = append(logged, f)
			}}}
			if !tc.lastRecv.IsZero() {
				s.cnt.lastRecv.Store(tc.lastRecv.UnixNano())
			}
			a := &attempt{s: s, movedAt: t0}
			if d := a.roamDeadline(); !d.Equal(t0.Add(roamVerify)) {
				t.Fatalf("deadline %v, want %v", d, t0.Add(roamVerify))
			}
			if _, done := a.checkRoam(context.Background(), t0.Add(time.Second)); done {
				t.Fatal("gave up before roamVerify")
			}
			out, done := a.checkRoam(context.Background(), t0.Add(roamVerify))
			if done != tc.reconnect || (done && (out.kind != outRetry || !strings.Contains(out.reason, "after moving"))) {
				t.Fatalf("reconnect %v (%+v), want %v", done, out, tc.reconnect)
			}
			if !a.movedAt.IsZero() || !a.roamDeadline().IsZero() {
				t.Error("the move stays pending after its check")
			}
		})
	}
}

// TestReportDropsRateLimited: drops are summed up in one line per dropLogInterval, never one
// line per packet.
func TestReportDropsRateLimited(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var lines []string
	s := &Session{verb: 3, opts: Options{now: func() time.Time { return t0 }, Logf: func(f string, a ...any) {
		lines = append(lines, fmt.Sprintf(f, a...))
	}}}
	a := &attempt{s: s}
	c := Counters{}
	for i := range 1000 {
		c.Replayed++
		if i%3 == 0 {
			c.DecryptFailed++
		}
		a.reportDrops(t0.Add(time.Duration(i)*time.Millisecond), c)
	}
	// The rest of the burst, once the interval is over.
	a.reportDrops(t0.Add(dropLogInterval+time.Second), c)
	a.reportDrops(t0.Add(dropLogInterval+2*time.Second), c) // nothing new: no line
	c.NoKey++
	a.reportDrops(t0.Add(dropLogInterval+3*time.Second), c) // within the interval: later
	a.reportDrops(t0.Add(3*dropLogInterval), c)
	var drops []string
	for _, l := range lines {
		if strings.Contains(l, "dropped") {
			drops = append(drops, l)
		}
	}
	if len(drops) != 3 || !strings.Contains(drops[0], "dropped 2 data packets: 1 replayed, 1 failed to decrypt") ||
		!strings.Contains(drops[1], "dropped 1332 data packets: 999 replayed, 333 failed to decrypt, 0 oversized, 0 without a key") ||
		!strings.Contains(drops[2], "dropped 1 data packets: 0 replayed, 0 failed to decrypt, 0 oversized, 1 without a key") {
		t.Errorf("drop lines %q", drops)
	}
}
