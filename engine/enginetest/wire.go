package enginetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/ovpnd/ovpnd/engine/wire"
)

// The server reads the client's key-method 2 record on its own (it is the other side of the
// engine's keymethod.go, written from OpenVPN's ssl.c rather than shared with the client, so
// a bug on one side is not hidden by the same bug on the other).

// Limits of the key-method 2 strings (ssl.c, misc.h).
const (
	maxOptionsLen    = 512  // TLS_OPTIONS_LEN
	maxUserPassLen   = 128  // USER_PASS_LEN
	maxPackedPassLen = 4096 // a static-challenge SCRV1 password
	maxPeerInfoLen   = 10000
)

// maxRecord holds any TLS record's plaintext, so one Read returns one whole record.
const maxRecord = 16384 + 256

var errShortRecord = errors.New("key-method 2 record truncated")

// appendString appends a key-method 2 string: a 16-bit length including the NUL, the text, NUL.
func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)+1))
	dst = append(dst, s...)
	return append(dst, 0)
}

// readString reads a key-method 2 string of at most limit bytes.
func readString(b []byte, limit int) (string, []byte, error) {
	if len(b) < 2 {
		return "", b, errShortRecord
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 {
		return "", b, nil
	}
	if n > len(b) {
		return "", b, errShortRecord
	}
	if n > limit {
		return "", b, fmt.Errorf("key-method 2 string of %d bytes exceeds %d", n, limit)
	}
	s := b[:n]
	if i := strings.IndexByte(string(s), 0); i >= 0 {
		s = s[:i]
	}
	return string(s), b[n:], nil
}

// nextKeyID is OpenVPN's key id sequence: 0 only for the first session, then 1..7, 1, ...
func nextKeyID(id uint8) uint8 {
	id = (id + 1) & wire.MaxKeyID
	if id == 0 {
		id = 1
	}
	return id
}

// startOn adapts run to the signature tlspipe's Start expects without naming the net package
// (engine/deps_test.go keeps net out of the engine's packages).
func startOn[C any](start func(func(C) error), run func() error) {
	start(func(C) error { return run() })
}
