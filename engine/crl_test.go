package engine

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"
)

// crl signs a revocation list by ca listing serials, valid from epoch-1h to next.
func (ca *testCA) crl(t *testing.T, next time.Time, serials ...int64) *x509.RevocationList {
	t.Helper()
	return ca.crlAt(t, epoch.Add(-time.Hour), next, serials...)
}

// crlAt is crl issued at this.
func (ca *testCA) crlAt(t *testing.T, this, next time.Time, serials ...int64) *x509.RevocationList {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(this.Unix()), ThisUpdate: this, NextUpdate: next}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: epoch.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCRLVerify checks crl-verify the way OpenVPN 2.6 configures OpenSSL: the leaf needs a
// current list from its CA, signed by it, that does not name its serial.
func TestCRLVerify(t *testing.T) {
	ca := newTestCA(t, ecKey(t, elliptic.P256()))
	other := newTestCA(t, ecKey(t, elliptic.P256()))
	leaf := ca.issue(t, ecKey(t, elliptic.P256()).Public(), x509.KeyUsageDigitalSignature, 0) // serial 2
	later := epoch.Add(24 * time.Hour)
	for _, tc := range []struct {
		name  string
		lists []*x509.RevocationList
		err   string
	}{
		{"not revoked", []*x509.RevocationList{ca.crl(t, later, 7)}, ""},
		{"revoked", []*x509.RevocationList{ca.crl(t, later, 7, 2)}, "revoked (serial 2"},
		{"list of another CA with the same name", []*x509.RevocationList{other.crl(t, later)}, "bad signature"},
		{"no lists", nil, "no revocation list from its issuer"},
		{"expired list", []*x509.RevocationList{ca.crl(t, epoch.Add(-time.Minute))}, "expired at"},
		{"expired list and a current one", []*x509.RevocationList{ca.crl(t, epoch.Add(-time.Minute)), ca.crl(t, later)}, ""},
		{"the newest current list decides", []*x509.RevocationList{ca.crl(t, later), ca.crlAt(t, epoch.Add(-time.Minute), later, 2)}, "revoked (serial 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v := &verifier{roots: ca.pool, now: func() time.Time { return epoch },
				crls: func() ([]*x509.RevocationList, error) { calls++; return tc.lists, nil }}
			err := v.verifyChain([]*x509.Certificate{leaf})
			if tc.err == "" && err != nil {
				t.Fatalf("verifyChain = %v, want success", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "crl-verify")) {
				t.Fatalf("verifyChain = %v, want an error containing %q", err, tc.err)
			}
			if calls != 1 {
				t.Errorf("lists fetched %d times, want once per handshake", calls)
			}
		})
	}
	t.Run("forged list with the CA's name", func(t *testing.T) {
		// A list naming the CA as issuer but signed by another key does not count.
		forger := &testCA{cert: ca.cert, key: ecKey(t, elliptic.P256())}
		v := &verifier{roots: ca.pool, now: func() time.Time { return epoch },
			crls: func() ([]*x509.RevocationList, error) {
				return []*x509.RevocationList{forger.crl(t, later)}, nil
			}}
		if err := v.verifyChain([]*x509.Certificate{leaf}); err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Fatalf("verifyChain = %v, want a bad signature error", err)
		}
	})
	t.Run("directory mode", func(t *testing.T) {
		var asked []string
		v := &verifier{roots: ca.pool, now: func() time.Time { return epoch },
			crlDir: func(serial string) (bool, error) { asked = append(asked, serial); return serial == "2", nil }}
		err := v.verifyChain([]*x509.Certificate{leaf})
		if err == nil || !strings.Contains(err.Error(), "serial 2") {
			t.Fatalf("verifyChain = %v, want the leaf (serial 2) revoked", err)
		}
		if asked[0] != "2" {
			t.Errorf("asked about %v", asked)
		}
	})
}
