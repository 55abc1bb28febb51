package session

import (
	"fmt"
	"time"
)

// Log limits. A hostile peer can make the session log a line per packet (a spoofed-packet
// flood at verb 3 wrote 170k lines and wiped the D-Bus history), so every line passes a
// token bucket: logBurst lines at once, then logRate per second. Suppressed lines are
// counted and reported by one "N lines suppressed" line when logging resumes.
const (
	logRate  = 20
	logBurst = 100
)

// logLimiter is OpenVPN's --mute (at most mute consecutive lines of one kind, the kind
// being the format string) followed by the rate limit. It is used under Session.logMu.
type logLimiter struct {
	mute int // 0: no mute

	kind    string // format of the last line let through mute
	repeats int    // consecutive lines of kind so far
	muted   int    // lines of kind suppressed by mute

	tokens     float64
	last       time.Time
	suppressed int // lines dropped by the rate limit since the last line logged
}

// allow decides about one line of the given kind at now. It returns whether to log it and
// the lines to log first (suppression notices).
func (l *logLimiter) allow(kind string, now time.Time) (bool, []string) {
	var notes []string
	if l.mute > 0 {
		if kind == l.kind {
			l.repeats++
			if l.repeats > l.mute {
				l.muted++
				return false, nil
			}
		} else {
			if l.muted > 0 {
				notes = append(notes, fmt.Sprintf("%d lines suppressed (mute %d)", l.muted, l.mute))
			}
			l.kind, l.repeats, l.muted = kind, 1, 0
		}
	}
	if l.last.IsZero() {
		l.tokens = logBurst
	} else if d := now.Sub(l.last); d > 0 {
		l.tokens = min(logBurst, l.tokens+d.Seconds()*logRate)
	}
	l.last = now
	// The notices cost tokens too, so that a flood of alternating kinds stays bounded.
	need := 1.0 + float64(len(notes))
	if l.suppressed > 0 {
		need++
	}
	if l.tokens < need {
		l.suppressed += 1 + len(notes)
		return false, nil
	}
	l.tokens -= need
	if l.suppressed > 0 {
		notes = append([]string{fmt.Sprintf("%d lines suppressed (more than %d lines per second)", l.suppressed, logRate)}, notes...)
		l.suppressed = 0
	}
	return true, notes
}
