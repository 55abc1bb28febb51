package engine

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
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
// --remote-cert-ku, --verify-x509-name and --peer-fingerprint, and the chain against
// --tls-cert-profile. --tls-ciphersuites is enforced here too, because crypto/tls offers every
// TLS 1.3 suite it knows.

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
	nsCertType   NSCertType
	crls         func() ([]*x509.RevocationList, error)
	crlDir       func(serial string) (bool, error)
	eku          string
	fingerprints [][32]byte
	ku           []uint16
	profile      CertProfile
	tls13Suites  []uint16
	now          func() time.Time
}

func (v *verifier) verifyConnection(cs tls.ConnectionState) error {
	if err := v.checkTLS13Suite(cs); err != nil {
		return err
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server sent no certificate")
	}
	return v.verifyChain(cs.PeerCertificates)
}

// checkTLS13Suite fails a TLS 1.3 session whose suite is not in --tls-ciphersuites.
func (v *verifier) checkTLS13Suite(cs tls.ConnectionState) error {
	if cs.Version != tls.VersionTLS13 || len(v.tls13Suites) == 0 {
		return nil
	}
	for _, id := range v.tls13Suites {
		if id == cs.CipherSuite {
			return nil
		}
	}
	names := make([]string, len(v.tls13Suites))
	for i, id := range v.tls13Suites {
		names[i] = tls.CipherSuiteName(id)
	}
	return fmt.Errorf("server chose TLS 1.3 cipher suite %s, which tls-ciphersuites (%s) does not allow; crypto/tls cannot limit the TLS 1.3 suites it offers, so the session is refused",
		tls.CipherSuiteName(cs.CipherSuite), strings.Join(names, ":"))
}

func (v *verifier) verifyChain(certs []*x509.Certificate) error {
	leaf := certs[0]
	if v.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         v.roots,
			Intermediates: inter,
			CurrentTime:   v.now(),
			// OpenVPN applies its own EKU rules below, so the chain check accepts any usage.
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return fmt.Errorf("verifying server certificate chain: %w", err)
		}
		if err := v.checkProfileChains(chains); err != nil {
			return err
		}
		if err := v.checkRevocation(chains[0]); err != nil {
			return err
		}
	} else if err := checkProfile(v.profile, certs, false); err != nil {
		// Without a CA the peer's own certificates are all there is to judge.
		return err
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
	if err := checkNSCertType(leaf, v.nsCertType); err != nil {
		return err
	}
	if len(v.ku) > 0 {
		if err := checkKeyUsage(leaf, v.ku); err != nil {
			return err
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

// checkRevocation implements --crl-verify as OpenVPN 2.6 sets up OpenSSL (CRL_CHECK and
// CRL_CHECK_ALL): every certificate of the verified chain below the trust anchor needs a
// revocation list from its issuer, signed by it and current, that does not list its serial.
// In directory mode OpenVPN itself looks for a file named by each certificate's serial.
func (v *verifier) checkRevocation(chain []*x509.Certificate) error {
	if v.crlDir != nil {
		for depth, c := range chain {
			revoked, err := v.crlDir(c.SerialNumber.String())
			if err != nil {
				return fmt.Errorf("crl-verify: %w", err)
			}
			if revoked {
				return fmt.Errorf("crl-verify: certificate %q (chain depth %d, serial %s) is revoked", c.Subject.CommonName, depth, c.SerialNumber)
			}
		}
	}
	if v.crls == nil {
		return nil
	}
	lists, err := v.crls()
	if err != nil {
		return fmt.Errorf("crl-verify: %w", err)
	}
	now := v.now()
	for depth := 0; depth < len(chain)-1; depth++ {
		c, issuer := chain[depth], chain[depth+1]
		if err := checkCRL(c, issuer, lists, now); err != nil {
			return fmt.Errorf("crl-verify: certificate %q (chain depth %d): %w", c.Subject.CommonName, depth, err)
		}
	}
	return nil
}

// checkCRL finds the issuer's newest current list and looks c up in it.
func checkCRL(c, issuer *x509.Certificate, lists []*x509.RevocationList, now time.Time) error {
	var found *x509.RevocationList
	var firstErr error
	for _, l := range lists {
		if !bytes.Equal(l.RawIssuer, c.RawIssuer) {
			continue
		}
		if err := l.CheckSignatureFrom(issuer); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("revocation list of %q: bad signature: %w", issuer.Subject.CommonName, err)
			}
			continue
		}
		if now.Before(l.ThisUpdate) {
			firstErr = fmt.Errorf("revocation list of %q is not valid before %s", issuer.Subject.CommonName, l.ThisUpdate.UTC().Format(time.RFC3339))
			continue
		}
		if !l.NextUpdate.IsZero() && now.After(l.NextUpdate) {
			firstErr = fmt.Errorf("revocation list of %q expired at %s", issuer.Subject.CommonName, l.NextUpdate.UTC().Format(time.RFC3339))
			continue
		}
		// Like OpenSSL, prefer the most recent of several current lists.
		if found == nil || l.ThisUpdate.After(found.ThisUpdate) {
			found = l
		}
	}
	if found == nil {
		if firstErr != nil {
			return firstErr
		}
		return fmt.Errorf("no revocation list from its issuer %q", issuer.Subject.CommonName)
	}
	for _, e := range found.RevokedCertificateEntries {
		if e.SerialNumber != nil && e.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return fmt.Errorf("revoked (serial %s, revoked at %s)", c.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339))
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
	// Server Gated Cryptography, which crypto/x509 recognizes and OpenSSL's SSL server
	// purpose accepts (ns-cert-type server).
	x509.ExtKeyUsageMicrosoftServerGatedCrypto: "1.3.6.1.4.1.311.10.3.3",
	x509.ExtKeyUsageNetscapeServerGatedCrypto:  "2.16.840.1.113730.4.1",
}

var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// Extensions and usages the ns-cert-type check reads.
var (
	oidNetscapeCertType = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 1}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	// Server Gated Cryptography (Netscape and Microsoft), which OpenSSL's SSL server purpose
	// accepts in place of serverAuth.
	oidNetscapeSGC  = "2.16.840.1.113730.4.1"
	oidMicrosoftSGC = "1.3.6.1.4.1.311.10.3.3"
)

// Netscape certificate type bits as OpenSSL reads the first byte of the bit string.
const (
	nsSSLClient = 0x80
	nsSSLServer = 0x40
)

// checkNSCertType implements --ns-cert-type the way OpenVPN 2.6 does with OpenSSL
// (x509_verify_ns_cert_type): the certificate must pass X509_check_purpose for the SSL server
// (or client) purpose, and if it does not, a Netscape certificate type extension with the
// matching bit still lets it through. The purpose check, for a leaf: an extended key usage, if
// present, must contain serverAuth or SGC (clientAuth for client); a Netscape certificate type,
// if present, must have the SSL server (client) bit; a key usage, if present, must allow
// digitalSignature, keyEncipherment or keyAgreement (client: digitalSignature or keyAgreement).
func checkNSCertType(c *x509.Certificate, want NSCertType) error {
	if want == NSCertNone {
		return nil
	}
	name, nsBit, kuMask := "server", byte(nsSSLServer), uint16(0x80|0x20|0x08)
	ekus := []string{oidServerAuth.String(), oidNetscapeSGC, oidMicrosoftSGC}
	if want == NSCertClient {
		name, nsBit, kuMask = "client", nsSSLClient, 0x80|0x08
		ekus = []string{extKeyUsageOID[x509.ExtKeyUsageClientAuth]}
	}
	ns, nsPresent, err := netscapeCertType(c)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	purpose := true
	if hasExtension(c, oidExtKeyUsage) {
		ok := false
		for _, e := range ekus {
			ok = ok || hasEKU(c, e)
		}
		purpose = ok
	}
	if nsPresent && ns&nsBit == 0 {
		purpose = false
	}
	ku, kuPresent, err := openSSLKeyUsage(c)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if kuPresent && ku&kuMask == 0 {
		purpose = false
	}
	if purpose || (nsPresent && ns&nsBit != 0) {
		return nil
	}
	return fmt.Errorf("server certificate is not an SSL %s certificate (ns-cert-type %s: its extended key usage, Netscape certificate type or key usage rules it out)", name, name)
}

// netscapeCertType returns the first byte of the Netscape certificate type bit string.
func netscapeCertType(c *x509.Certificate) (byte, bool, error) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidNetscapeCertType) {
			continue
		}
		var bits asn1.BitString
		if rest, err := asn1.Unmarshal(e.Value, &bits); err != nil || len(rest) > 0 {
			return 0, true, errors.New("malformed Netscape certificate type extension")
		}
		if len(bits.Bytes) == 0 {
			return 0, true, nil
		}
		return bits.Bytes[0], true, nil
	}
	return 0, false, nil
}

// openSSLKeyUsage returns the first byte of the key usage bit string the way OpenVPN's
// x509_verify_cert_ku (OpenSSL build) reads it: ASN.1 bit i becomes value bit 7-i, so
// digitalSignature is 0x80 and encipherOnly 0x01; decipherOnly (bit 8) is not looked at.
func openSSLKeyUsage(c *x509.Certificate) (ku uint16, present bool, err error) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidKeyUsage) {
			continue
		}
		var bits asn1.BitString
		if _, err := asn1.Unmarshal(e.Value, &bits); err != nil {
			return 0, true, fmt.Errorf("parsing key usage extension: %w", err)
		}
		for i := range 8 {
			if bits.At(i) == 1 {
				ku |= 1 << (7 - i)
			}
		}
		return ku, true, nil
	}
	return 0, false, nil
}

// checkKeyUsage implements --remote-cert-ku: the extension must be present, and unless the
// first value is KURequired, one non-zero value's bits must all be set.
func checkKeyUsage(c *x509.Certificate, want []uint16) error {
	ku, present, err := openSSLKeyUsage(c)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if !present {
		return errors.New("server certificate has no key usage extension (remote-cert-ku)")
	}
	if want[0] == KURequired {
		return nil
	}
	for _, w := range want {
		if w != 0 && ku&w == w {
			return nil
		}
	}
	vals := make([]string, len(want))
	for i, w := range want {
		vals[i] = fmt.Sprintf("%02x", w)
	}
	return fmt.Errorf("server certificate key usage %02x matches none of remote-cert-ku %s", ku, strings.Join(vals, " "))
}

// checkProfileChains accepts when one of the verified chains satisfies --tls-cert-profile.
func (v *verifier) checkProfileChains(chains [][]*x509.Certificate) error {
	if v.profile == CertProfileNone || v.profile == CertProfileInsecure {
		return nil
	}
	var first error
	for _, ch := range chains {
		err := checkProfile(v.profile, ch, true)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

var profileNames = map[CertProfile]string{
	CertProfileLegacy: "legacy", CertProfilePreferred: "preferred", CertProfileSuiteB: "suiteb",
}

// checkProfile checks every key in chain and every signature but a trust anchor's own
// (endsInRoot says the last certificate is the anchor from --ca).
func checkProfile(p CertProfile, chain []*x509.Certificate, endsInRoot bool) error {
	if p == CertProfileNone || p == CertProfileInsecure {
		return nil
	}
	for i, c := range chain {
		if err := profileKey(p, c); err != nil {
			return fmt.Errorf("tls-cert-profile %s: certificate %q (chain depth %d): %w", profileNames[p], c.Subject.CommonName, i, err)
		}
		if endsInRoot && i == len(chain)-1 {
			break
		}
		if err := profileSignature(p, c.SignatureAlgorithm); err != nil {
			return fmt.Errorf("tls-cert-profile %s: certificate %q (chain depth %d): %w", profileNames[p], c.Subject.CommonName, i, err)
		}
	}
	return nil
}

func profileKey(p CertProfile, c *x509.Certificate) error {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		switch {
		case p == CertProfileSuiteB:
			return fmt.Errorf("RSA key not allowed (ECDSA P-256 or P-384 only)")
		case p == CertProfilePreferred && bits < 2048:
			return fmt.Errorf("RSA key of %d bits (at least 2048)", bits)
		case bits < 1024:
			return fmt.Errorf("RSA key of %d bits (at least 1024)", bits)
		}
	case *ecdsa.PublicKey:
		if p == CertProfileSuiteB && k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s not allowed (P-256 or P-384 only)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if p == CertProfileSuiteB {
			return errors.New("Ed25519 key not allowed (ECDSA P-256 or P-384 only)")
		}
	default:
		return fmt.Errorf("unsupported public key type %T", c.PublicKey)
	}
	return nil
}

func profileSignature(p CertProfile, alg x509.SignatureAlgorithm) error {
	ok := false
	switch p {
	case CertProfileSuiteB:
		ok = alg == x509.ECDSAWithSHA256 || alg == x509.ECDSAWithSHA384
	case CertProfilePreferred, CertProfileLegacy:
		switch alg {
		case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
			x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
			x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512, x509.PureEd25519:
			ok = true
		case x509.SHA1WithRSA, x509.ECDSAWithSHA1:
			// legacy allows SHA-1 as OpenVPN does; crypto/tls has already refused such a
			// chain signature, so this only matters for a CA-less (peer-fingerprint) leaf.
			ok = p == CertProfileLegacy
		}
	}
	if !ok {
		return fmt.Errorf("signature algorithm %v not allowed", alg)
	}
	return nil
}
