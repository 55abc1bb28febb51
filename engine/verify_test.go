package engine

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testCA is a throwaway CA for chain checks that do not need a TLS handshake.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t *testing.T, key crypto.Signer) *testCA {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Profile CA"},
		NotBefore:             epoch.Add(-time.Hour),
		NotAfter:              epoch.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pool: pool}
}

// issue signs a leaf for pub; ku 0 leaves out the key usage extension.
func (ca *testCA) issue(t *testing.T, pub crypto.PublicKey, ku x509.KeyUsage, sig x509.SignatureAlgorithm) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(2),
		Subject:            pkix.Name{CommonName: "leaf"},
		NotBefore:          epoch.Add(-time.Hour),
		NotAfter:           epoch.Add(time.Hour),
		KeyUsage:           ku,
		SignatureAlgorithm: sig,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRemoteCertKU(t *testing.T) {
	ca := newTestCA(t, ecKey(t, elliptic.P256()))
	pub := ecKey(t, elliptic.P256()).Public()
	sigKE := ca.issue(t, pub, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, 0) // 0xa0
	agree := ca.issue(t, pub, x509.KeyUsageKeyAgreement, 0)                                  // 0x08
	encOnly := ca.issue(t, pub, x509.KeyUsageKeyAgreement|x509.KeyUsageEncipherOnly, 0)      // 0x09
	decOnly := ca.issue(t, pub, x509.KeyUsageKeyAgreement|x509.KeyUsageDecipherOnly, 0)      // 0x08: bit 8 unread
	noKU := ca.issue(t, pub, 0, 0)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want []uint16
		ok   bool
	}{
		{"exact", sigKE, []uint16{0xa0}, true},
		{"subset", sigKE, []uint16{0x20}, true},
		{"superset", sigKE, []uint16{0xa8}, false},
		{"second value", sigKE, []uint16{0x88, 0xa0}, true},
		{"none", sigKE, []uint16{0x88, 0x08}, false},
		{"zero never matches", sigKE, []uint16{0}, false},
		{"required", sigKE, []uint16{KURequired}, true},
		{"required later is a value", sigKE, []uint16{0x01, KURequired}, false},
		{"key agreement", agree, []uint16{0x08}, true},
		{"encipher only", encOnly, []uint16{0x09}, true},
		{"decipher only ignored", decOnly, []uint16{0x08}, true},
		{"decipher only bit", decOnly, []uint16{0x0100}, false},
		{"no extension", noKU, []uint16{KURequired}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &verifier{roots: ca.pool, ku: tc.want, now: func() time.Time { return epoch }}
			err := v.verifyChain([]*x509.Certificate{tc.cert})
			if (err == nil) != tc.ok {
				t.Errorf("verifyChain = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestCertProfile(t *testing.T) {
	p256CA := newTestCA(t, ecKey(t, elliptic.P256()))
	p384CA := newTestCA(t, ecKey(t, elliptic.P384()))
	rsaCA := newTestCA(t, rsaKey(t, 2048))
	weakCA := newTestCA(t, rsaKey(t, 1024))
	rsa1024 := rsaKey(t, 1024).Public()
	rsa2048 := rsaKey(t, 2048).Public()
	p256 := ecKey(t, elliptic.P256()).Public()
	p521 := ecKey(t, elliptic.P521()).Public()
	ku := x509.KeyUsageDigitalSignature

	type want struct{ insecure, legacy, preferred, suiteb bool }
	for _, tc := range []struct {
		name string
		ca   *testCA
		leaf *x509.Certificate
		want want
	}{
		{"ecdsa p256 sha256", p256CA, p256CA.issue(t, p256, ku, x509.ECDSAWithSHA256), want{true, true, true, true}},
		{"ecdsa p384 ca sha384", p384CA, p384CA.issue(t, p256, ku, x509.ECDSAWithSHA384), want{true, true, true, true}},
		{"ecdsa sha512 signature", p384CA, p384CA.issue(t, p256, ku, x509.ECDSAWithSHA512), want{true, true, true, false}},
		{"p521 leaf", p256CA, p256CA.issue(t, p521, ku, x509.ECDSAWithSHA256), want{true, true, true, false}},
		{"rsa 2048 leaf", p256CA, p256CA.issue(t, rsa2048, ku, x509.ECDSAWithSHA256), want{true, true, true, false}},
		{"rsa 1024 leaf", p256CA, p256CA.issue(t, rsa1024, ku, x509.ECDSAWithSHA256), want{true, true, false, false}},
		{"rsa ca sha256", rsaCA, rsaCA.issue(t, p256, ku, x509.SHA256WithRSA), want{true, true, true, false}},
		{"rsa pss", rsaCA, rsaCA.issue(t, p256, ku, x509.SHA256WithRSAPSS), want{true, true, true, false}},
		{"rsa 1024 ca", weakCA, weakCA.issue(t, p256, ku, x509.SHA256WithRSA), want{true, true, false, false}},
	} {
		for _, p := range []struct {
			profile CertProfile
			ok      bool
		}{
			{CertProfileNone, true},
			{CertProfileInsecure, tc.want.insecure},
			{CertProfileLegacy, tc.want.legacy},
			{CertProfilePreferred, tc.want.preferred},
			{CertProfileSuiteB, tc.want.suiteb},
		} {
			t.Run(tc.name+"/"+profileNames[p.profile], func(t *testing.T) {
				v := &verifier{roots: tc.ca.pool, profile: p.profile, now: func() time.Time { return epoch }}
				err := v.verifyChain([]*x509.Certificate{tc.leaf})
				if (err == nil) != p.ok {
					t.Errorf("verifyChain = %v, want ok=%v", err, p.ok)
				}
				if err != nil && !strings.Contains(err.Error(), "tls-cert-profile") {
					t.Errorf("error %q does not name tls-cert-profile", err)
				}
			})
		}
	}

	// Without a CA (peer-fingerprint only) the peer's certificates are checked as sent.
	leaf := p256CA.issue(t, rsa1024, ku, x509.ECDSAWithSHA256)
	v := &verifier{profile: CertProfilePreferred, fingerprints: [][32]byte{sha256Of(leaf.Raw)}, now: func() time.Time { return epoch }}
	if err := v.verifyChain([]*x509.Certificate{leaf}); err == nil {
		t.Error("preferred accepted a 1024-bit RSA leaf without a CA")
	}
	v.profile = CertProfileLegacy
	if err := v.verifyChain([]*x509.Certificate{leaf}); err != nil {
		t.Errorf("legacy without a CA: %v", err)
	}
}

func TestTLSCipherSuites(t *testing.T) {
	const (
		aes128 = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
		aes256 = tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
		chacha = tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
	)
	server := []uint16{aes128, chacha}
	for _, tc := range []struct {
		name   string
		client []uint16
		want   uint16 // 0 = the handshake must fail
	}{
		{"only chacha", []uint16{chacha}, chacha},
		{"only aes128", []uint16{aes128}, aes128},
		{"no common suite", []uint16{aes256}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			cfg.TLSCipherSuites = tc.client
			l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, TLSMaxVersion: tls.VersionTLS12, CipherSuites: server})
			l.c.Start(l.now)
			l.advance(3 * time.Second)
			if got := l.has(StateConnected); got != (tc.want != 0) {
				t.Fatalf("connected = %v, want %v; errors %v", got, tc.want != 0, l.errs)
			}
			if tc.want == 0 {
				return
			}
			if got := l.s.Cur.Conn.ConnectionState().CipherSuite; got != tc.want {
				t.Errorf("negotiated %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(tc.want))
			}
		})
	}
}

func TestTLS13CipherSuites(t *testing.T) {
	// Learn which suite crypto/tls picks here (it depends on AES hardware), then require
	// another one and the same one.
	probe := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true})
	probe.connect()
	st := probe.s.Cur.Conn.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		t.Fatalf("probe negotiated version %#x, want TLS 1.3", st.Version)
	}
	chosen := st.CipherSuite
	var others []uint16
	for _, s := range tls.CipherSuites() {
		if s.SupportedVersions[0] == tls.VersionTLS13 && s.ID != chosen {
			others = append(others, s.ID)
		}
	}
	for _, tc := range []struct {
		name  string
		allow []uint16
		ok    bool
	}{
		{"chosen allowed", []uint16{chosen}, true},
		{"chosen not allowed", others, false},
		{"chosen last", append(append([]uint16(nil), others...), chosen), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			cfg.TLS13CipherSuites = tc.allow
			l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
			l.c.Start(l.now)
			l.advance(3 * time.Second)
			if got := l.has(StateConnected); got != tc.ok {
				t.Fatalf("connected = %v, want %v; errors %v", got, tc.ok, l.errs)
			}
			if !tc.ok {
				found := false
				for _, e := range l.errs {
					found = found || strings.Contains(e.Error(), "tls-ciphersuites")
				}
				if !found {
					t.Errorf("no error names tls-ciphersuites: %v", l.errs)
				}
			}
		})
	}

	// TLS 1.2 sessions are not subject to the TLS 1.3 list.
	v := &verifier{tls13Suites: []uint16{tls.TLS_AES_256_GCM_SHA384}}
	if err := v.checkTLS13Suite(tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}); err != nil {
		t.Errorf("TLS 1.2 session refused: %v", err)
	}
}

// FuzzOpenSSLKeyUsage feeds arbitrary key usage extension values, which come from the server's
// certificate, to the --remote-cert-ku reader.
func FuzzOpenSSLKeyUsage(f *testing.F) {
	f.Add([]byte{0x03, 0x02, 0x05, 0xa0}) // digitalSignature, keyEncipherment
	f.Add([]byte{0x03, 0x03, 0x07, 0x80, 0x80})
	f.Add([]byte{0x03, 0x01, 0x00})
	f.Add([]byte{0x03, 0x02, 0x08, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		c := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidKeyUsage, Critical: true, Value: v}}}
		ku, present, err := openSSLKeyUsage(c)
		if !present {
			t.Fatal("extension present but not found")
		}
		if err != nil {
			if ku != 0 {
				t.Fatalf("usage %#x with error %v", ku, err)
			}
			return
		}
		if ku > 0xff {
			t.Fatalf("usage %#x beyond the first byte", ku)
		}
		if len(v) == 4 && v[0] == 0x03 && v[1] == 0x02 && v[2] == 0 && ku != uint16(v[3]) {
			t.Fatalf("usage %#x, want the first content byte %#x", ku, v[3])
		}
	})
}
