package session

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// sockFD is a UDP socket taken out of the Go runtime's network poller, waited for through
// epoll instances of its own that are armed only while someone waits.
//
// The runtime registers a socket with its epoll instance edge-triggered and, while a P is
// idle, keeps a thread asleep in epoll_wait. Every datagram that arrives then wakes that
// thread, even when the socket reader is busy with the previous batch or pausing on purpose
// (rxPause) and will pick the datagram up by itself: with an OpenVPN server that sends one
// datagram per sendto, about one thread wake-up per received packet, which cost more CPU
// than decrypting it. Here the socket sits, one-shot, in a private epoll instance per
// direction, and that instance in the runtime's poller: a goroutine that finds the socket
// empty (or full) re-arms the one-shot and parks in the runtime as it would on the socket
// itself, and the first datagram (or free space) wakes it once; later arrivals wake nobody
// until it is armed again. Waiting in poll(2) instead would be as quiet, but a goroutine
// blocked in a system call keeps its thread, and the runtime's hand-offs of its P around
// those calls cost more than they saved whenever the reader waits often (ACKs of an upload).
//
// sockFD implements syscall.RawConn, so the batched I/O of udpConn goes through it as it
// went through the net package's.
type sockFD struct {
	fd     int
	rd, wr *sockWaiter
	closed atomic.Bool
	// mu is held shared by every use of fd and exclusively by Close, so fd is never closed
	// (and its number reused) under a call in progress.
	mu sync.RWMutex
}

// sockWaiter is the private epoll instance for one direction: the socket registered
// one-shot for events, itself a file in the runtime's poller.
type sockWaiter struct {
	// mu serialises waiters (the writers: the tun reader and the control loop): each must
	// arm the one-shot for itself, or one could park after another consumed the event.
	mu      sync.Mutex
	ep      *os.File
	rc      syscall.RawConn
	epfd    int
	arm     unix.EpollEvent
	got     [1]unix.EpollEvent
	harvest func(uintptr) bool // ready, bound once so waiting allocates nothing
}

func newSockWaiter(fd int, events uint32) (*sockWaiter, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating epoll instance for the UDP socket: %w", err)
	}
	w := &sockWaiter{epfd: epfd, arm: unix.EpollEvent{Events: events | unix.EPOLLONESHOT, Fd: int32(fd)}}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &w.arm); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("registering the UDP socket with its epoll instance: %w", err)
	}
	// Non-blocking, os.NewFile hands the instance to the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll instance for the UDP socket: %w", err)
	}
	w.ep = os.NewFile(uintptr(epfd), "udp-epoll")
	if w.rc, err = w.ep.SyscallConn(); err != nil {
		w.ep.Close()
		return nil, fmt.Errorf("epoll instance for the UDP socket: %w", err)
	}
	w.harvest = w.ready
	return w, nil
}

// ready collects the socket's event, if it came, which also leaves the instance empty for
// the next edge the runtime's poller sees.
func (w *sockWaiter) ready(epfd uintptr) bool {
	n, err := unix.EpollWait(int(epfd), w.got[:], 0)
	return err == nil && n > 0
}

// wait re-arms the one-shot registration of fd and parks until it fires.
func (w *sockWaiter) wait(fd int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, fd, &w.arm); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return w.rc.Read(w.harvest)
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
	s := &sockFD{fd: nfd}
	if s.rd, err = newSockWaiter(nfd, unix.EPOLLIN); err == nil {
		if s.wr, err = newSockWaiter(nfd, unix.EPOLLOUT); err != nil {
			s.rd.ep.Close()
		}
	}
	if err != nil {
		unix.Close(nfd)
		return nil, err
	}
	// The duplicate shares the open file description, which stays non-blocking.
	c.Close()
	return s, nil
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
func (s *sockFD) Read(f func(fd uintptr) bool) error { return s.until(f, s.rd) }

// Write calls f until it reports done, waiting for the socket to become writable between
// calls; f must not block.
func (s *sockFD) Write(f func(fd uintptr) bool) error { return s.until(f, s.wr) }

func (s *sockFD) until(f func(fd uintptr) bool, w *sockWaiter) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for {
		if s.closed.Load() {
			return net.ErrClosed
		}
		if f(uintptr(s.fd)) {
			return nil
		}
		// Readiness, an error (EPOLLERR: f then reads it) or Close.
		if err := w.wait(s.fd); err != nil {
			if s.closed.Load() || errors.Is(err, os.ErrClosed) {
				return net.ErrClosed
			}
			return err
		}
	}
}

// Close ends every wait in progress, waits for the calls using the descriptor to return
// and closes it.
func (s *sockFD) Close() error {
	if s.closed.Swap(true) {
		return net.ErrClosed
	}
	// Closing the epoll instances wakes whoever is parked on them.
	s.rd.ep.Close()
	s.wr.ep.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := unix.Close(s.fd); err != nil {
		return fmt.Errorf("closing UDP socket: %w", err)
	}
	return nil
}
