// Package tlspipe runs crypto/tls without sockets, deterministically, for a sans-IO engine.
//
// crypto/tls only offers a blocking net.Conn interface for full TLS records (tls.QUICConn is
// handshake-only), so the engine runs a tls.Conn in a goroutine over a Pipe: an in-memory
// net.Conn whose Read blocks until the engine feeds bytes and whose Write never blocks. The
// Pipe knows exactly when that goroutine is blocked in Read with nothing left to read, and
// Start and Feed return only then. From the caller's view every call is therefore a synchronous
// step: after Feed returns, everything TLS had to say about the input is in TakeOutput, and
// everything it decrypted is queued for ReadApp.
//
// Scheduling is the only thing the Pipe makes deterministic. The bytes themselves still depend
// on tls.Config: Time decides certificate validity and ticket ages, and crypto/tls reads the
// system clock when it is nil, so the engine sets Config.Time to return the time of the
// current step. Key shares and signatures draw fresh randomness (Go ignores Config.Rand for
// most of them; only testing/cryptotest.SetGlobalRandom fixes it), so transcripts differ
// between runs even though the sequence of steps does not.
package tlspipe

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Pipe connects one goroutine running TLS (the TLS side) to one caller (the engine). The TLS
// side gets a net.Conn (see Start) whose Read blocks until the caller feeds data and whose
// Write appends to an output buffer and never blocks; its deadlines are ignored because the
// caller, not the clock, decides when I/O happens.
//
// The two ends are separate types because their Close differs: the TLS side's Close (which
// tls.Conn calls on its own goroutine) only marks the Pipe closed, while Pipe.Close also waits
// for that goroutine to return, which would deadlock if the goroutine called it.
//
// The caller's methods (Start, Feed, TakeOutput, Close) must not be called concurrently with
// each other; the TLS side may run concurrently with all of them.
type Pipe struct {
	mu   sync.Mutex
	cond *sync.Cond

	in  []byte // fed and not yet read by the TLS side
	out []byte // written by the TLS side and not yet taken

	started bool
	closed  bool // either end was closed
	waiting bool // the TLS goroutine is blocked in Read with nothing to read
	exited  bool // the TLS goroutine's function returned
	err     error
	done    chan struct{}
}

// New returns an idle Pipe; nothing runs until Start.
func New() *Pipe {
	p := &Pipe{done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// Conn returns the TLS side's end of the Pipe, for wrapping in tls.Client or tls.Server before
// Start. Start passes the same value to its function.
func (p *Pipe) Conn() net.Conn { return (*end)(p) }

// Start runs fn(p.Conn()) in a new goroutine and returns once fn is blocked reading from the
// Pipe with nothing to read, or has returned. fn must block only in Read on the Pipe (never on
// channels, locks or the network), otherwise Start, Feed and Close cannot tell when it is idle.
// A panic in fn is recovered and reported by Err. Calls after the first do nothing.
func (p *Pipe) Start(fn func(conn net.Conn) error) {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return
	}
	p.started = true
	p.mu.Unlock()

	go p.run(fn)

	p.mu.Lock()
	p.waitIdleLocked()
	p.mu.Unlock()
}

func (p *Pipe) run(fn func(conn net.Conn) error) {
	var err error
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tlspipe: TLS goroutine panicked: %v", r)
		}
		p.mu.Lock()
		p.exited = true
		p.err = err
		// Closed under the lock so that whoever Feed or Start woke sees Done closed too.
		close(p.done)
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	err = fn(p.Conn())
}

// waitIdleLocked waits until the TLS goroutine has consumed every fed byte and is blocked for
// more, or has exited. p.mu must be held.
func (p *Pipe) waitIdleLocked() {
	for !p.exited && !(p.waiting && len(p.in) == 0) {
		p.cond.Wait()
	}
}

// Feed hands data from the network to the TLS side and returns once the TLS goroutine has
// processed all of it and is waiting for more, or has exited. data is copied. Feeding a Pipe
// that was not started only buffers the data; feeding an exited or closed Pipe discards it.
func (p *Pipe) Feed(data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.exited {
		return
	}
	p.in = append(p.in, data...)
	if !p.started {
		return
	}
	p.cond.Broadcast()
	p.waitIdleLocked()
}

// TakeOutput returns everything the TLS side wrote since the last call, and forgets it. The
// returned slice belongs to the caller.
func (p *Pipe) TakeOutput() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.out
	p.out = nil
	return out
}

// Close makes the TLS side's pending and future Reads and Writes fail with net.ErrClosed and
// waits until its goroutine has returned, so no goroutine outlives the Pipe. Unread input and
// untaken output are discarded. The TLS goroutine's result stays available from Err. Close
// always returns nil; calling it again does nothing.
func (p *Pipe) Close() error {
	p.mu.Lock()
	p.closed = true
	p.in = nil
	p.out = nil
	p.cond.Broadcast()
	started := p.started
	p.mu.Unlock()
	if started {
		<-p.done
	}
	return nil
}

// Done is closed when the TLS goroutine has returned.
func (p *Pipe) Done() <-chan struct{} { return p.done }

// Exited reports whether the TLS goroutine has returned.
func (p *Pipe) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Err is what the TLS goroutine's function returned, or nil while it runs.
func (p *Pipe) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// end is the TLS side of a Pipe.
type end Pipe

// Read blocks until the caller feeds data or closes the Pipe.
func (e *end) Read(b []byte) (int, error) {
	p := (*Pipe)(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.in) == 0 {
		if p.closed {
			return 0, net.ErrClosed
		}
		if len(b) == 0 {
			return 0, nil
		}
		p.waiting = true
		p.cond.Broadcast()
		p.cond.Wait()
		p.waiting = false
	}
	if p.closed {
		return 0, net.ErrClosed
	}
	n := copy(b, p.in)
	p.in = p.in[n:]
	if len(p.in) == 0 {
		p.in = nil // let the fed buffer be collected
	}
	return n, nil
}

// Write appends to the output buffer and never blocks. The caller may also write through a
// tls.Conn wrapping this end, from its own goroutine, while the TLS goroutine is in Read.
func (e *end) Write(b []byte) (int, error) {
	p := (*Pipe)(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	p.out = append(p.out, b...)
	return len(b), nil
}

// Close marks the Pipe closed without waiting: tls.Conn calls it from the TLS goroutine.
func (e *end) Close() error {
	p := (*Pipe)(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cond.Broadcast()
	return nil
}

// pipeAddr is the fixed address both ends of every Pipe report.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "tlspipe" }
func (pipeAddr) String() string  { return "tlspipe" }

// LocalAddr returns a fixed placeholder address.
func (e *end) LocalAddr() net.Addr { return pipeAddr{} }

// RemoteAddr returns a fixed placeholder address.
func (e *end) RemoteAddr() net.Addr { return pipeAddr{} }

// SetDeadline does nothing: the caller drives all I/O, so nothing waits on a clock.
func (e *end) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing; see SetDeadline.
func (e *end) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing; see SetDeadline.
func (e *end) SetWriteDeadline(time.Time) error { return nil }
