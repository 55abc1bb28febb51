package wrap

import (
	"bytes"
	"testing"

	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wire"
)

// checkUnwrapped holds for anything Unwrap accepts: it is a well-formed
// control packet that re-encodes to no more than the input carried.
func checkUnwrapped(t *testing.T, in []byte, p wire.ControlPacket) {
	t.Helper()
	if !p.Opcode.IsControl() || len(p.Acks) > wire.MaxAcks || p.KeyID > wire.MaxKeyID {
		t.Fatalf("accepted malformed packet %+v", p)
	}
	if n := len(p.AppendPlain(nil)); n > len(in) {
		t.Fatalf("unwrapped packet (%d bytes) larger than input (%d)", n, len(in))
	}
}

// fuzzUnwrap seeds with packets the client wraps, then feeds arbitrary input
// to a fresh server Wrapper.
func fuzzUnwrap(f *testing.F, pair pairFunc, seeds ...[]byte) {
	client, _ := pair(f)
	for _, p := range testPackets() {
		f.Add(must(client.Wrap(nil, &p, t0)))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0x38})
	f.Fuzz(func(t *testing.T, in []byte) {
		_, server := pair(t)
		orig := bytes.Clone(in)
		p, err := server.Unwrap(in, t0)
		if !bytes.Equal(in, orig) {
			t.Fatal("Unwrap modified its input")
		}
		if err != nil {
			return
		}
		checkUnwrapped(t, in, p)
		server.Accept()
		if _, err := server.Unwrap(in, t0); err == nil && server.Overhead() > 0 {
			t.Fatal("same packet accepted twice")
		}
	})
}

func pairNamed(name string) pairFunc {
	for _, wp := range wrapperPairs() {
		if wp.name == name {
			return wp.pair
		}
	}
	panic("no wrapper pair " + name)
}

func FuzzUnwrapNone(f *testing.F) {
	fuzzUnwrap(f, pairNamed("none"))
}

func FuzzUnwrapTLSAuth(f *testing.F) {
	// The golden packets verify only with key-direction 0 (server side).
	fuzzUnwrap(f, pairNamed("tls-auth-sha1"), vecResetV2TLSAuth, vecControlTLSAuth)
}

func FuzzUnwrapTLSCrypt(f *testing.F) {
	fuzzUnwrap(f, pairNamed("tls-crypt"), vecResetV2TLSCrypt)
}

func FuzzUnwrapTLSCryptV2Server(f *testing.F) {
	fuzzUnwrap(f, pairNamed("tls-crypt-v2"))
}

// FuzzUnwrapTLSCryptV2Client feeds server-direction input to the client.
func FuzzUnwrapTLSCryptV2Client(f *testing.F) {
	ck := must(statickey.ParseTLSCryptV2Client([]byte(testV2ClientKey)))
	key := ck.Key
	server := must(newTLSCrypt(&key, false, "test server"))
	for _, p := range testPackets() {
		f.Add(must(server.Wrap(nil, &p, t0)))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		client := must(NewTLSCryptV2Client(ck))
		p, err := client.Unwrap(in, t0)
		if err != nil {
			return
		}
		checkUnwrapped(t, in, p)
		if p.Opcode == wire.OpHardResetClientV3 || p.Opcode == wire.OpControlWKCV1 {
			t.Fatalf("client accepted %v", p.Opcode)
		}
	})
}

func FuzzParseEarlyNegTLVs(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 1})
	f.Add([]byte{0x12, 0x34, 0, 3, 9, 9, 9, 0, 1, 0, 2, 0, 1})
	f.Add([]byte{0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		resend, err := ParseEarlyNegTLVs(in)
		if err != nil {
			return
		}
		// Appending a flags TLV keeps the input valid and decides the answer
		// only if it asks for a resend.
		again, err := ParseEarlyNegTLVs(AppendEarlyNegTLVs(bytes.Clone(in), false))
		if err != nil || again != resend {
			t.Fatalf("appending a zero flags TLV changed the result: %v %v", again, err)
		}
	})
}
