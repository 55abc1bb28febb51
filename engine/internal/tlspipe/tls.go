package tlspipe

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
)

// maxAppBacklog bounds the decrypted application data queued for ReadApp. OpenVPN's control
// messages are a few kilobytes; a peer that sends far more than the engine drains is broken or
// hostile, and the session fails instead of growing without bound.
const maxAppBacklog = 1 << 20

// readBufSize holds the largest TLS plaintext record (2^14 bytes), so each Read returns one
// whole record.
const readBufSize = 1 << 14

// ErrHandshakeIncomplete is returned by WriteApp before the handshake has completed: writing
// through a tls.Conn then would wait for the handshake, which only the caller's Feed can
// advance.
var ErrHandshakeIncomplete = errors.New("tlspipe: TLS handshake not complete")

// Session runs one crypto/tls connection (client or server) over a Pipe: the TLS goroutine
// performs the handshake, then reads application data into a queue. The caller feeds records
// from the network with Feed, sends what TakeOutput returns, drains decrypted data with
// ReadApp and encrypts with WriteApp. Like the Pipe, a Session is driven by one caller at a
// time and every call is a deterministic step.
type Session struct {
	p  *Pipe
	tc *tls.Conn

	mu            sync.Mutex
	handshakeDone bool
	state         tls.ConnectionState
	app           [][]byte
	appBytes      int
	maxBacklog    int
}

// Client starts a TLS client handshake over a new Pipe and returns when the client is waiting
// for the server: TakeOutput then returns the ClientHello. cfg is used as tls.Client uses it
// (its Time and Rand decide how deterministic the run is; see the package documentation).
func Client(cfg *tls.Config) *Session {
	return start(cfg, true, maxAppBacklog)
}

// Server starts a TLS server over a new Pipe; it waits for the ClientHello to be fed. The
// engine is a client; the server side exists for tests and test peers.
func Server(cfg *tls.Config) *Session {
	return start(cfg, false, maxAppBacklog)
}

func start(cfg *tls.Config, client bool, maxBacklog int) *Session {
	s := &Session{p: New(), maxBacklog: maxBacklog}
	if client {
		s.tc = tls.Client(s.p.Conn(), cfg)
	} else {
		s.tc = tls.Server(s.p.Conn(), cfg)
	}
	s.p.Start(func(net.Conn) error { return s.run() })
	return s
}

// run is the TLS goroutine.
func (s *Session) run() error {
	if err := s.tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	// Capture the state here, on the TLS goroutine: the caller then never needs the tls.Conn's
	// handshake lock.
	st := s.tc.ConnectionState()
	s.mu.Lock()
	s.state = st
	s.handshakeDone = true
	s.mu.Unlock()

	buf := make([]byte, readBufSize)
	for {
		n, err := s.tc.Read(buf)
		if n > 0 {
			s.mu.Lock()
			over := s.appBytes+n > s.maxBacklog
			if !over {
				s.app = append(s.app, append([]byte(nil), buf[:n]...))
				s.appBytes += n
			}
			s.mu.Unlock()
			if over {
				return fmt.Errorf("reading TLS application data: more than %d bytes not drained", s.maxBacklog)
			}
		}
		if err != nil {
			return fmt.Errorf("reading TLS application data: %w", err)
		}
	}
}

// Feed hands bytes received from the network (TLS records, possibly partial or several) to
// the TLS side and returns once they are fully processed. See Pipe.Feed.
func (s *Session) Feed(data []byte) { s.p.Feed(data) }

// TakeOutput returns the TLS records written since the last call (handshake messages, alerts,
// encrypted application data) and forgets them. The slice belongs to the caller.
func (s *Session) TakeOutput() []byte { return s.p.TakeOutput() }

// HandshakeComplete reports whether the handshake has completed.
func (s *Session) HandshakeComplete() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakeDone
}

// ConnectionState returns the state captured when the handshake completed (version, cipher
// suite, peer certificates, and ExportKeyingMaterial for OpenVPN's tls-ekm), and false before.
func (s *Session) ConnectionState() (tls.ConnectionState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.handshakeDone
}

// WriteApp encrypts b as application data; the records appear in TakeOutput when it returns.
// crypto/tls splits b into records of at most 16 KiB; each call produces at least one record,
// so a caller that needs one message per record writes one message per call.
func (s *Session) WriteApp(b []byte) error {
	if !s.HandshakeComplete() {
		return ErrHandshakeIncomplete
	}
	if s.p.Exited() {
		if err := s.p.Err(); err != nil {
			return fmt.Errorf("writing TLS application data: session ended: %w", err)
		}
		return fmt.Errorf("writing TLS application data: %w", net.ErrClosed)
	}
	if _, err := s.tc.Write(b); err != nil {
		return fmt.Errorf("writing TLS application data: %w", err)
	}
	return nil
}

// ReadApp returns the next chunk of decrypted application data, in order, if any: the
// plaintext of one TLS record per chunk. The slice belongs to the caller.
func (s *Session) ReadApp() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.app) == 0 {
		return nil, false
	}
	b := s.app[0]
	s.app[0] = nil
	s.app = s.app[1:]
	s.appBytes -= len(b)
	if len(s.app) == 0 {
		s.app = nil
	}
	return b, true
}

// Err is the reason the TLS goroutine stopped (a handshake failure, an alert from the peer, a
// closed Pipe), or nil while it runs.
func (s *Session) Err() error { return s.p.Err() }

// Done is closed when the TLS goroutine has stopped.
func (s *Session) Done() <-chan struct{} { return s.p.Done() }

// Close stops the TLS goroutine and waits for it; queued input and output are discarded and no
// close_notify is sent (OpenVPN ends control sessions at its own layer). Close returns nil.
func (s *Session) Close() error { return s.p.Close() }
