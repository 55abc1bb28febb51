package engine

import (
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/ovpnd/ovpnd/engine/internal/tlspipe"
)

// maxRecord is a buffer that holds any TLS record's plaintext, so one Read returns one whole
// record: crypto/tls never returns data from two records in one Read, and OpenVPN puts each
// control message (key-method 2 record, PUSH_REPLY, ...) into its own record.
const maxRecord = 16384 + 256

// maxQueuedRecords bounds the decrypted records waiting for the engine. A well-behaved server
// sends a handful per key; a flood ends the TLS session instead of growing memory.
const maxQueuedRecords = 64

var errTooManyRecords = errors.New("server sent too many TLS records at once")

// tlsSession is one TLS session (one key_state) run by crypto/tls in a goroutine over a
// tlspipe.Pipe. The engine goroutine feeds ciphertext, takes ciphertext to send, writes
// plaintext and collects decrypted records; the TLS goroutine only runs while Feed or Start
// wait for it, so the two never race on engine state.
type tlsSession struct {
	pipe *tlspipe.Pipe
	conn *tls.Conn

	handshakeDone atomic.Bool

	mu      sync.Mutex
	records [][]byte
}

// startTLS starts the client handshake; the ClientHello is in output() when it returns.
func startTLS(cfg *tls.Config) *tlsSession {
	s := &tlsSession{pipe: tlspipe.New()}
	s.conn = tls.Client(s.pipe.Conn(), cfg)
	startOn(s.pipe.Start, s.run)
	return s
}

// startOn adapts run to the signature Start expects without this package naming the net
// package (engine/deps_test.go keeps net out of the engine); the conn argument is the same one
// tls.Client already wraps.
func startOn[C any](start func(func(C) error), run func() error) {
	start(func(C) error { return run() })
}

// run is the TLS goroutine: handshake, then read records until the session ends.
func (s *tlsSession) run() error {
	if err := s.conn.Handshake(); err != nil {
		return err
	}
	s.handshakeDone.Store(true)
	buf := make([]byte, maxRecord)
	for {
		n, err := s.conn.Read(buf)
		if n > 0 {
			s.mu.Lock()
			full := len(s.records) >= maxQueuedRecords
			if !full {
				s.records = append(s.records, append([]byte(nil), buf[:n]...))
			}
			s.mu.Unlock()
			if full {
				return errTooManyRecords
			}
		}
		if err != nil {
			return err
		}
	}
}

// feed hands received TLS ciphertext to the session and waits until it is processed.
func (s *tlsSession) feed(b []byte) { s.pipe.Feed(b) }

// output returns TLS ciphertext to send.
func (s *tlsSession) output() []byte { return s.pipe.TakeOutput() }

// takeRecords returns the plaintext records decrypted since the last call.
func (s *tlsSession) takeRecords() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.records
	s.records = nil
	return r
}

// write sends one plaintext message as its own record; OpenVPN expects one control message
// per record.
func (s *tlsSession) write(b []byte) error {
	_, err := s.conn.Write(b)
	return err
}

// err is the error that ended the TLS goroutine, nil while it runs.
func (s *tlsSession) err() error {
	if !s.pipe.Exited() {
		return nil
	}
	if err := s.pipe.Err(); err != nil {
		return err
	}
	return errors.New("TLS session ended")
}

// close stops the goroutine.
func (s *tlsSession) close() { s.pipe.Close() }

// exportKeys runs RFC 5705 export with no context, as OpenVPN's key_state_export_keying_material.
func (s *tlsSession) exportKeys(label string, n int) ([]byte, error) {
	cs := s.conn.ConnectionState()
	return cs.ExportKeyingMaterial(label, nil, n)
}
