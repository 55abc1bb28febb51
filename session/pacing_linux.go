package session

import (
	"time"

	"golang.org/x/sys/unix"
)

/* Pacing of UDP send batches. The inner TCP paces its own packets (TSO
 * bursts of about a millisecond of data), but the tun reader collects what
 * queued up in the device while it was busy and the socket would send it all
 * at once: the larger the batch, the more of it lands together in the
 * bottleneck's queue (a router's uplink, the server's socket buffer), where it
 * is dropped in one piece. So a batch of more than one GSO message (up to 64
 * KiB, the size of one inner TSO burst) is sent message by message, spread
 * over paceShare of the time in which it was handed over: the batch arrived
 * at bytes/interval, and leaves at paceGain times that rate, so the sender
 * still catches up. Batches of one message, most of them, go out at once.
 */

const (
	// paceGain is how much faster than it arrived a batch is sent.
	paceGain = 2
	// paceMaxSpread bounds the time one batch is spread over: after an idle
	// spell the interval says nothing about how fast the data came.
	paceMaxSpread = 2 * time.Millisecond
	// paceMinGap is the shortest pause worth a sleep; shorter gaps are sent
	// back to back, since a sleep costs a wake-up and takes at least the
	// thread's timer slack (50 µs).
	paceMinGap = 20 * time.Microsecond
)

// pacer spaces the GSO messages of one send batch (see above). It belongs to
// the data path's sending goroutine.
type pacer struct {
	last time.Time // when the previous batch was handed over
}

// spread returns how long to spread a batch of total bytes handed over at
// now over, and records now: zero for the first batch.
func (p *pacer) spread(now time.Time, total int) time.Duration {
	prev := p.last
	p.last = now
	if prev.IsZero() || total == 0 {
		return 0
	}
	return min(now.Sub(prev)/paceGain, paceMaxSpread)
}

// gap is the pause after a message of n bytes out of a batch of total bytes
// spread over d.
func paceGap(d time.Duration, n, total int) time.Duration {
	if total <= 0 {
		return 0
	}
	g := time.Duration(int64(d) * int64(n) / int64(total))
	if g < paceMinGap {
		return 0
	}
	return g
}

// paceSleep pauses the calling thread for d.
func paceSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}
