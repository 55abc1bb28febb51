package engine

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Peer verification replaces crypto/tls's hostname-based checks with OpenVPN's rules
// (ssl_verify.c): the chain must lead to --ca (intermediates from the peer are used), host names
// play no part, and the leaf is then checked against --remote-cert-tls/--remote-cert-eku,
// --verify-x509-name and --peer-fingerprint.

var oidServerAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}

// ekuNames maps OpenSSL long and short names of extended key usages to OIDs, for
// --remote-cert-eku given by name.
var ekuNames = map[string]string{
	"tls web server authentication": "1.3.6.1.5.5.7.3.1",
	"serverauth":                    "1.3.6.1.5.5.7.3.1",
	"tls web client authentication": "1.3.6.1.5.5.7.3.2",
	"clientauth":                    "1.3.6.1.5.5.7.3.2",
	"code signing":                  "1.3.6.1.5.5.7.3.3",
	"codesigning":                   "1.3.6.1.5.5.7.3.3",
	"e-mail protection":             "1.3.6.1.5.5.7.3.4",
	"emailprotection":               "1.3.6.1.5.5.7.3.4",
	"time stamping":                 "1.3.6.1.5.5.7.3.8",
	"timestamping":                  "1.3.6.1.5.5.7.3.8",
	"ocsp signing":                  "1.3.6.1.5.5.7.3.9",
	"ocspsigning":                   "1.3.6.1.5.5.7.3.9",
}

// x509 short names for the subject string, matching OpenSSL's output that OpenVPN compares.
var rdnShortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.4":                    "SN",
	"2.5.4.42":                   "GN",
	"2.5.4.12":                   "title",
	"2.5.4.41":                   "name",
	"2.5.4.46":                   "dnQualifier",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
}

// subjectString renders the subject as OpenVPN prints it with OpenSSL
// (XN_FLAG_SEP_CPLUS_SPC, short names, certificate order): "C=KG, ST=NA, O=Org, CN=name", with
// "+" joining the values of a multi-valued RDN.
func subjectString(cert *x509.Certificate) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawSubject, &seq); err != nil || len(rest) > 0 {
		return cert.Subject.String()
	}
	var rdns []string
	for _, set := range seq {
		var vals []string
		for _, atv := range set {
			name, ok := rdnShortNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			vals = append(vals, fmt.Sprintf("%s=%v", name, atv.Value))
		}
		rdns = append(rdns, strings.Join(vals, "+"))
	}
	return strings.Join(rdns, ", ")
}

// verifier holds what the peer checks need from the Config.
type verifier struct {
	roots        *x509.CertPool
	x509Type     VerifyX509Type
	x509Name     string
	certTLS      bool
	eku          string
	fingerprints [][32]byte
	now          func() time.Time
}

func (v *verifier) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server sent no certificate")
	}
	return v.verifyChain(cs.PeerCertificates)
}

func (v *verifier) verifyChain(certs []*x509.Certificate) error {
	leaf := certs[0]
	if v.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         v.roots,
			Intermediates: inter,
			CurrentTime:   v.now(),
			// OpenVPN applies its own EKU rules below, so the chain check accepts any usage.
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return fmt.Errorf("verifying server certificate chain: %w", err)
		}
	}
	if len(v.fingerprints) > 0 {
		sum := sha256.Sum256(leaf.Raw)
		ok := false
		for _, fp := range v.fingerprints {
			if subtle.ConstantTimeCompare(sum[:], fp[:]) == 1 {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("server certificate fingerprint %X matches no peer-fingerprint", sum)
		}
	}
	if v.certTLS {
		// remote-cert-tls server = remote-cert-ku (any value, but present) plus the serverAuth EKU.
		if !hasExtension(leaf, asn1.ObjectIdentifier{2, 5, 29, 15}) {
			return errors.New("server certificate has no key usage extension (remote-cert-tls server)")
		}
		if !hasEKU(leaf, oidServerAuth.String()) {
			return errors.New("server certificate lacks TLS Web Server Authentication EKU (remote-cert-tls server)")
		}
	}
	if v.eku != "" {
		want := v.eku
		if oid, ok := ekuNames[strings.ToLower(want)]; ok {
			want = oid
		}
		if !hasEKU(leaf, want) {
			return fmt.Errorf("server certificate lacks extended key usage %q", v.eku)
		}
	}
	switch v.x509Type {
	case VerifyX509Subject:
		if got := subjectString(leaf); got != v.x509Name {
			return fmt.Errorf("verify-x509-name: subject %q is not %q", got, v.x509Name)
		}
	case VerifyX509Name:
		if leaf.Subject.CommonName != v.x509Name {
			return fmt.Errorf("verify-x509-name: common name %q is not %q", leaf.Subject.CommonName, v.x509Name)
		}
	case VerifyX509NamePrefix:
		if !strings.HasPrefix(leaf.Subject.CommonName, v.x509Name) {
			return fmt.Errorf("verify-x509-name: common name %q lacks prefix %q", leaf.Subject.CommonName, v.x509Name)
		}
	}
	return nil
}

func hasExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// hasEKU reports whether the certificate's extended key usage contains the dotted OID.
func hasEKU(c *x509.Certificate, oid string) bool {
	for _, u := range c.ExtKeyUsage {
		if o, ok := extKeyUsageOID[u]; ok && o == oid {
			return true
		}
	}
	for _, u := range c.UnknownExtKeyUsage {
		if u.String() == oid {
			return true
		}
	}
	return false
}

var extKeyUsageOID = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "2.5.29.37.0",
	x509.ExtKeyUsageServerAuth:      "1.3.6.1.5.5.7.3.1",
	x509.ExtKeyUsageClientAuth:      "1.3.6.1.5.5.7.3.2",
	x509.ExtKeyUsageCodeSigning:     "1.3.6.1.5.5.7.3.3",
	x509.ExtKeyUsageEmailProtection: "1.3.6.1.5.5.7.3.4",
	x509.ExtKeyUsageTimeStamping:    "1.3.6.1.5.5.7.3.8",
	x509.ExtKeyUsageOCSPSigning:     "1.3.6.1.5.5.7.3.9",
}
