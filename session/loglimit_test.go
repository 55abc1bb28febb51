package session

import (
	"strings"
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("mute", func(t *testing.T) {
		l := logLimiter{mute: 3}
		var logged []string
		for i := 0; i < 10; i++ {
			ok, notes := l.allow("warning: %v", t0)
			logged = append(logged, notes...)
			if ok {
				logged = append(logged, "warning")
			}
		}
		ok, notes := l.allow("state %v", t0)
		if !ok || len(notes) != 1 || notes[0] != "7 lines suppressed (mute 3)" {
			t.Errorf("after 10 lines of one kind: ok %v notes %q", ok, notes)
		}
		if strings.Count(strings.Join(logged, ","), "warning") != 3 {
			t.Errorf("logged %q, want 3 warnings", logged)
		}
	})
	t.Run("rate", func(t *testing.T) {
		var l logLimiter
		passed := 0
		for i := 0; i < 1000; i++ {
			if ok, _ := l.allow("x", t0); ok {
				passed++
			}
		}
		if passed != logBurst {
			t.Errorf("%d lines passed at once, want the burst %d", passed, logBurst)
		}
		// A second later the bucket holds logRate tokens: the notice and the line take two.
		ok, notes := l.allow("x", t0.Add(time.Second))
		if !ok || len(notes) != 1 || !strings.HasPrefix(notes[0], "900 lines suppressed") {
			t.Errorf("after a second: ok %v notes %q", ok, notes)
		}
	})
}
