package session

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sockFD is a UDP socket taken out of the Go runtime's network poller: whoever finds it
// empty (or full, for sends) waits for it in poll(2) itself.
//
// The runtime registers a socket with its epoll instance edge-triggered and, while a P is
// idle, keeps a thread asleep in epoll_wait. Every datagram that arrives then wakes that
// thread, even when the socket reader is busy with the previous batch or pausing on purpose
// (rxPause) and will pick the datagram up by itself: with an OpenVPN server that sends one
// datagram per sendto, about one thread wake-up per received packet, which cost more CPU
// than decrypting it. Out of the poller, an arrival wakes a thread only when the reader is
// actually waiting for one, and then directly the reader's own.
//
// sockFD implements syscall.RawConn, so the batched I/O of udpConn goes through it as it
// went through the net package's.
type sockFD struct {
	fd int
	// wake is an eventfd that Close signals once and nobody reads: it ends every poll in
	// progress and every later one.
	wake   int
	closed atomic.Bool
	// mu is held shared by every use of fd and exclusively by Close, so fd is never closed
	// (and its number reused) under a call in progress.
	mu sync.RWMutex
}

// detachFD moves c's socket out of the network poller: the returned sockFD holds a
// duplicate of the descriptor and c is closed, which removes it from the runtime's epoll
// set. The socket itself (address, connection, options) is unchanged.
func detachFD(c *net.UDPConn) (*sockFD, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("getting raw UDP socket: %w", err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("duplicating UDP socket: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicating UDP socket: %w", derr)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("creating eventfd for the UDP socket: %w", err)
	}
	// The duplicate shares the open file description, which stays non-blocking.
	c.Close()
	return &sockFD{fd: nfd, wake: wake}, nil
}

// Control calls f with the descriptor.
func (s *sockFD) Control(f func(fd uintptr)) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return net.ErrClosed
	}
	f(uintptr(s.fd))
	return nil
}

// Read calls f until it reports done, waiting for the socket to become readable between
// calls; f must not block (MSG_DONTWAIT).
func (s *sockFD) Read(f func(fd uintptr) bool) error { return s.until(f, unix.POLLIN) }

// Write calls f until it reports done, waiting for the socket to become writable between
// calls; f must not block.
func (s *sockFD) Write(f func(fd uintptr) bool) error { return s.until(f, unix.POLLOUT) }

func (s *sockFD) until(f func(fd uintptr) bool, events int16) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for {
		if s.closed.Load() {
			return net.ErrClosed
		}
		if f(uintptr(s.fd)) {
			return nil
		}
		// Readiness, an error (POLLERR: f then reads it) or Close. Only EINTR can fail here,
		// and the loop retries it like a spurious wake-up.
		fds := [2]unix.PollFd{{Fd: int32(s.fd), Events: events}, {Fd: int32(s.wake), Events: unix.POLLIN}}
		_, _ = unix.Poll(fds[:], -1)
	}
}

// Close ends every wait in progress, waits for the calls using the descriptor to return
// and closes it.
func (s *sockFD) Close() error {
	if s.closed.Swap(true) {
		return net.ErrClosed
	}
	one := [8]byte{1}
	_, _ = unix.Write(s.wake, one[:]) // cannot fail: the counter stays far below its limit
	s.mu.Lock()
	defer s.mu.Unlock()
	unix.Close(s.wake)
	if err := unix.Close(s.fd); err != nil {
		return fmt.Errorf("closing UDP socket: %w", err)
	}
	return nil
}
