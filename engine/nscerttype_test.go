package engine

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"
)

// issueNS signs a leaf with the given key usage, extended key usages and, when ns is not
// nil, a Netscape certificate type extension holding ns as its bit string.
func (ca *testCA) issueNS(t *testing.T, ku x509.KeyUsage, eku []x509.ExtKeyUsage, unknownEKU []asn1.ObjectIdentifier, ns []byte) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(3),
		Subject:            pkix.Name{CommonName: "ns leaf"},
		NotBefore:          epoch.Add(-time.Hour),
		NotAfter:           epoch.Add(time.Hour),
		KeyUsage:           ku,
		ExtKeyUsage:        eku,
		UnknownExtKeyUsage: unknownEKU,
	}
	if ns != nil {
		v, err := asn1.Marshal(asn1.BitString{Bytes: ns, BitLength: 8 * len(ns)})
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidNetscapeCertType, Value: v}}
	}
	pub := ecKey(t, elliptic.P256()).Public()
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

// TestNSCertType checks ns-cert-type against OpenVPN 2.6's rule: OpenSSL's SSL server/client
// purpose check, with a fallback to the Netscape certificate type bit.
func TestNSCertType(t *testing.T) {
	ca := newTestCA(t, ecKey(t, elliptic.P256()))
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	sigKE := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	sgc := []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 311, 10, 3, 3}}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want NSCertType
		ok   bool
	}{
		{"easy-rsa server", ca.issueNS(t, sigKE, server, nil, nil), NSCertServer, true},
		{"old easy-rsa server with nsCertType", ca.issueNS(t, sigKE, server, nil, []byte{nsSSLServer}), NSCertServer, true},
		{"nsCertType only", ca.issueNS(t, 0, nil, nil, []byte{nsSSLServer}), NSCertServer, true},
		{"no extensions at all passes the purpose check", ca.issueNS(t, 0, nil, nil, nil), NSCertServer, true},
		{"client certificate as server", ca.issueNS(t, x509.KeyUsageDigitalSignature, client, nil, nil), NSCertServer, false},
		{"client nsCertType as server", ca.issueNS(t, 0, nil, nil, []byte{nsSSLClient}), NSCertServer, false},
		{"server key usage wrong", ca.issueNS(t, x509.KeyUsageCertSign, server, nil, nil), NSCertServer, false},
		{"EKU fails but nsCertType server falls back", ca.issueNS(t, sigKE, client, nil, []byte{nsSSLServer}), NSCertServer, true},
		{"Microsoft SGC counts as server", ca.issueNS(t, sigKE, nil, sgc, nil), NSCertServer, true},
		{"client wanted", ca.issueNS(t, x509.KeyUsageDigitalSignature, client, nil, nil), NSCertClient, true},
		{"client wanted, key encipherment only", ca.issueNS(t, x509.KeyUsageKeyEncipherment, client, nil, nil), NSCertClient, false},
		{"none wanted", ca.issueNS(t, x509.KeyUsageCertSign, client, nil, nil), NSCertNone, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &verifier{roots: ca.pool, nsCertType: tc.want, now: func() time.Time { return epoch }}
			err := v.verifyChain([]*x509.Certificate{tc.cert})
			if (err == nil) != tc.ok {
				t.Fatalf("verifyChain = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "ns-cert-type") {
				t.Errorf("error %q does not name ns-cert-type", err)
			}
		})
	}
}
