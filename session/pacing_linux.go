package session

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

/* Pacing of UDP send batches. The inner TCP paces its own packets, but the
 * tun reader collects what queued up in the device while it was busy, and the
 * socket would send it all at once: a receiver on the same path (the lab's
 * veth, an OpenVPN server reading one datagram at a time) then takes the whole
 * batch into its socket buffer at once and drops what does not fit. A batch of
 * more than one GSO message is therefore sent message by message at paceGain
 * times the recent send rate (so the sender still catches up), spread over at
 * most paceMaxSpread; a batch of the usual size for the rate needs no pause.
 *
 * GSO messages themselves stay as large as GSO allows. Capping them to about a
 * millisecond of data at the send rate (as the kernel sizes TCP's TSO bursts)
 * was tried: at 100 Mbit/s it turned every batch into several messages with
 * pauses between them and cost 20.8 against 11.3 client CPU-s/GB (OpenVPN's
 * client 14.6) without removing a single retransmit, while on the unlimited
 * veth it made no difference (2.55 against 2.56 CPU-s/GB, 36k against 41k
 * retransmits; the spreading of backlogged batches is what took those from
 * about 90k): labctl pacing -runs 2 -ovpnd-b, 2026-11-29, load ~1.
 *
 * The rate is a moving average of bytes handed over per interval between
 * batches, over about paceWindow.
 */

const (
	// paceGain is how much faster than the recent send rate a batch is sent.
	paceGain = 2
	// paceMaxSpread bounds the time one batch is spread over: after an idle
	// spell the interval says nothing about how fast the data came.
	paceMaxSpread = 2 * time.Millisecond
	// paceMinGap is the shortest pause worth a sleep; shorter gaps are sent
	// back to back, since a sleep costs a wake-up and takes at least the
	// thread's timer slack (50 µs). At gigabit rates the gaps are shorter, so
	// the sender does not sleep there.
	paceMinGap = 100 * time.Microsecond
	// paceWindow is the time constant of the send rate's moving average.
	paceWindow = 10 * time.Millisecond
)

// pacer spaces the GSO messages of one send batch (see above).
// It belongs to the data path's sending goroutine.
type pacer struct {
	last time.Time // when the previous batch was handed over
	rate float64   // bytes per second, moving average
}

// spread returns how long to spread a batch of total bytes handed over at
// now over, and records the batch in the send rate: zero for the first batch.
func (p *pacer) spread(now time.Time, total int) time.Duration {
	prev := p.last
	p.last = now
	if prev.IsZero() || total == 0 {
		return 0
	}
	dt := now.Sub(prev)
	if dt <= 0 {
		return 0
	}
	// A time-weighted moving average: the first interval, or an idle spell
	// of a window or more, sets the rate outright.
	a := min(float64(dt)/float64(paceWindow), 1)
	if p.rate == 0 {
		a = 1
	}
	p.rate += a * (float64(total)/dt.Seconds() - p.rate)
	// The batch leaves at paceGain times the recent rate: a batch that took
	// longer than usual to gather (the reader was busy or off the CPU) is
	// spread out, one gathered at the usual pace goes out (almost) at once.
	return min(time.Duration(float64(total)/(paceGain*p.rate)*1e9), paceMaxSpread)
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

// paceSleep pauses the calling thread for d (at most paceMaxSpread). Like
// rxPause it is a raw system call, so the tun reader keeps its P: through the
// runtime's syscall path the system monitor hands the P of every sleep longer
// than its 20 µs tick to another thread, and each pause would cost thread
// wake-ups on top of the sleep itself (measured with labctl pacing at 100
// Mbit/s, load ~7: 19.5 against 10.3 client CPU-s/GB, medians of 3). Holding
// the P this briefly delays at most a stop-the-world.
func paceSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(min(d, paceMaxSpread)))
	_, _, _ = unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}
