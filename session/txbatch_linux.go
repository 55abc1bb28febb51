package session

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

/* Send-side batching. A tun read returns one packet from the kernel: with
 * offloads, one TCP super-segment of up to 64 KiB split into MSS-sized
 * segments, but during an ACK-clocked upload mostly two or three segments, as
 * each ACK releases that much. Sending every read on its own costs a sendmmsg,
 * a wake-up of the tun reader and a trip through the Go scheduler per few
 * segments. When more is already queued in the device, the tun reader reads
 * it into the same batch first: a zero-timeout poll tells it without
 * blocking, and the batch goes out in one sendmmsg with larger GSO runs.
 */

// txBatch is the number of packets the tun reader gathers for one send when
// the device can be polled. A tun read may return up to maxBatch segments (the
// kernel consumes the packet even when they do not fit), so another read is
// only tried while maxBatch buffers are still free.
const txBatch = 2 * maxBatch

// tunPoller tells whether a tun device has a packet queued, without blocking.
type tunPoller struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) // bound once: a method value per call would allocate
	fds   [1]unix.PollFd
	ready bool
}

// newTunPoller returns a poller for devices backed by a file (the kernel tun
// device), nil for others (tests, dev null).
func newTunPoller(t tunDevice) *tunPoller {
	f, ok := t.(interface{ File() *os.File })
	if !ok || f.File() == nil {
		return nil
	}
	rc, err := f.File().SyscallConn()
	if err != nil {
		return nil
	}
	p := &tunPoller{rc: rc}
	p.fn = p.poll
	return p
}

// readable reports whether a read would return a packet at once.
func (p *tunPoller) readable() bool {
	p.ready = false
	if p.rc.Control(p.fn) != nil {
		return false
	}
	return p.ready
}

func (p *tunPoller) poll(fd uintptr) {
	p.fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	var ts unix.Timespec // zero: do not wait
	// A zero-timeout poll never blocks: no need to tell the scheduler.
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&p.fds[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	p.ready = e == 0 && n == 1 && p.fds[0].Revents&unix.POLLIN != 0
}
