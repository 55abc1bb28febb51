package engine

import (
	mrand "math/rand/v2"
	"testing"

	"github.com/ovpnd/ovpnd/engine/enginetest"
	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wrap"
)

// The test server lives in engine/enginetest, so that the session's tests run the same server
// over real sockets. These names keep the engine's tests short.
type (
	testServer = enginetest.Server
	serverOpts = enginetest.Options
	pki        = enginetest.PKI
)

func testPKI(t testing.TB) *pki { return enginetest.SharedPKI(t) }

func newPKI(t testing.TB, serverCN string) *pki { return enginetest.NewPKI(t, serverCN) }

func newTestServer(t testing.TB, p *pki, w wrap.Wrapper, opts serverOpts) *testServer {
	return enginetest.NewServer(t, p, w, opts)
}

// wrapperPair builds matching client config fields and a server wrapper for a wrap mode.
func wrapperPair(t testing.TB, mode WrapMode, cfg *Config) wrap.Wrapper {
	t.Helper()
	key := func() *statickey.Key {
		k, err := statickey.Generate(mrand.NewChaCha8([32]byte{7}))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	cfg.Wrap = mode
	digest := cfg.Auth
	if digest == "" {
		digest = "SHA1"
	}
	switch mode {
	case WrapNone:
		return wrap.NewNone()
	case WrapTLSAuth:
		k := key()
		cfg.WrapKey, cfg.KeyDirection = k, 1
		w, err := wrap.NewTLSAuth(k, 0, digest)
		if err != nil {
			t.Fatal(err)
		}
		return w
	case WrapTLSCrypt:
		k := key()
		cfg.WrapKey = k
		w, err := wrap.NewTLSCrypt(k, false)
		if err != nil {
			t.Fatal(err)
		}
		return w
	case WrapTLSCryptV2:
		r := mrand.NewChaCha8([32]byte{8})
		sk, err := statickey.GenerateTLSCryptV2Server(r)
		if err != nil {
			t.Fatal(err)
		}
		ck, err := sk.NewTLSCryptV2Client(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSCryptV2 = ck
		w, err := wrap.NewTLSCryptV2Server(sk)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Fatalf("unknown wrap mode %d", mode)
	return nil
}
