package config

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// parseCerts reads one or more PEM certificates. Any other PEM type is an error so that a key
// given as ca (a frequent mix-up) is reported rather than skipped.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest, err := eachPEMBlock(data, "CERTIFICATE", func(n int, der []byte) error {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	if len(bytes.TrimSpace(rest)) != 0 && bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, errors.New("malformed PEM block after the certificates")
	}
	return certs, nil
}

// eachPEMBlock calls fn with the number (from 1) and contents of each PEM block in data, in
// order, and returns what follows the last block. A block of another type than typ is an error
// naming it, so that a mix-up (a key given as a certificate, say) is reported rather than skipped.
func eachPEMBlock(data []byte, typ string, fn func(n int, der []byte) error) ([]byte, error) {
	rest := data
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return rest, nil
		}
		if b.Type != typ {
			return rest, fmt.Errorf("PEM block %d is %q, want %s", n, b.Type, typ)
		}
		if err := fn(n, b.Bytes); err != nil {
			return rest, err
		}
	}
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// errKeyEncrypted says that a key needs its passphrase.
var errKeyEncrypted = errors.New("the private key is encrypted")

// parseKey reads a PEM private key in PKCS#8, PKCS#1 or SEC 1 form. It returns the key and the
// normalized PKCS#8 PEM, or errKeyEncrypted for an encrypted key.
func parseKey(data []byte) (crypto.Signer, []byte, error) {
	return parseKeyWith(data, nil)
}

// parseKeyWith is parseKey that decrypts an encrypted key with pass (nil: errKeyEncrypted).
func parseKeyWith(data, pass []byte) (crypto.Signer, []byte, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, nil, errors.New("no PEM private key block")
		}
		if b.Type == "EC PARAMETERS" {
			continue
		}
		if isEncryptedKey(b) {
			if pass == nil {
				return nil, nil, errKeyEncrypted
			}
			der, typ, err := decryptKeyBlock(b, pass)
			if err != nil {
				return nil, nil, err
			}
			b = &pem.Block{Type: typ, Bytes: der}
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			return nil, nil, fmt.Errorf("PEM type is %q, want a private key", b.Type)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", b.Type, err)
		}
		signer, err := checkSigner(k)
		if err != nil {
			return nil, nil, err
		}
		norm, err := encodeKey(signer)
		if err != nil {
			return nil, nil, err
		}
		return signer, norm, nil
	}
}

func checkSigner(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k)
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// keyMatches reports whether the private key belongs to the certificate.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// buildCert assembles the client's tls.Certificate.
func buildCert(chain []*x509.Certificate, extra []*x509.Certificate, key crypto.Signer) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	for _, x := range extra {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// parsePKCS12 decodes a PKCS#12 bundle without a password; a password-protected one gives
// errKeyEncrypted.
func parsePKCS12(der []byte) (crypto.Signer, *x509.Certificate, []*x509.Certificate, error) {
	return parsePKCS12With(der, "")
}

// parsePKCS12With decodes a PKCS#12 bundle with its password.
func parsePKCS12With(der []byte, password string) (crypto.Signer, *x509.Certificate, []*x509.Certificate, error) {
	if err := checkPKCS12Work(der); err != nil {
		return nil, nil, nil, err
	}
	k, cert, cas, err := pkcs12.DecodeChain(der, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			if password == "" {
				return nil, nil, nil, errKeyEncrypted
			}
			return nil, nil, nil, errWrongPassphrase
		}
		return nil, nil, nil, fmt.Errorf("decoding PKCS#12: %w", err)
	}
	signer, err := checkSigner(k)
	if err != nil {
		return nil, nil, nil, err
	}
	if !keyMatches(cert, signer) {
		return nil, nil, nil, errors.New("PKCS#12 private key does not match its certificate")
	}
	return signer, cert, cas, nil
}

// decodeInlinePKCS12 reads the base64 text of an inline <pkcs12> block.
func decodeInlinePKCS12(data []byte) ([]byte, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(data)), ""))
	if err != nil {
		return nil, fmt.Errorf("inline pkcs12 is not base64: %w", err)
	}
	return der, nil
}

// parseFingerprint reads a SHA-256 fingerprint written as 32 colon-separated hex bytes.
func parseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	parts := strings.Split(s, ":")
	if len(parts) != 32 {
		return fp, fmt.Errorf("fingerprint %q is not 32 colon-separated hex bytes (SHA-256)", s)
	}
	for i, p := range parts {
		b, err := hex.DecodeString(p)
		if err != nil || len(b) != 1 {
			return fp, fmt.Errorf("fingerprint %q: byte %d is not two hex digits", s, i+1)
		}
		fp[i] = b[0]
	}
	return fp, nil
}

func formatFingerprint(fp [32]byte) string {
	var b strings.Builder
	for i, x := range fp {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// parseFingerprintBlock reads an inline <peer-fingerprint> block: one fingerprint per line,
// # and ; comment lines allowed.
func parseFingerprintBlock(data []byte) ([][32]byte, error) {
	var out [][32]byte
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		fp, err := parseFingerprint(line)
		if err != nil {
			return nil, err
		}
		out = append(out, fp)
	}
	if len(out) == 0 {
		return nil, errors.New("peer-fingerprint block lists no fingerprint")
	}
	return out, nil
}

// parseUserPass reads an auth-user-pass file: the username on the first line, the password on
// the second.
func parseUserPass(data []byte) (*AuthUserPass, error) {
	// Split always yields at least one element; a file with no newline is a username alone.
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i := range lines {
		// Trim before testing for emptiness, so a second line of just "\r" means no password
		// (ask for one) rather than an empty one.
		lines[i] = strings.TrimRight(lines[i], "\r")
	}
	if strings.TrimSpace(lines[0]) == "" {
		return nil, errors.New("auth-user-pass file has no username on its first line")
	}
	a := &AuthUserPass{Username: lines[0]}
	if len(lines) > 1 && lines[1] != "" {
		a.Password = lines[1]
	} else {
		a.PasswordMissing = true
	}
	if len(lines) > 2 {
		for _, l := range lines[2:] {
			if strings.TrimSpace(l) != "" {
				return nil, errors.New("auth-user-pass file has more than two lines")
			}
		}
	}
	return a, nil
}

// MaxCRLs bounds the revocation lists one crl-verify file may hold.
const MaxCRLs = 64

// ParseCRLs reads certificate revocation lists: PEM "X509 CRL" blocks, or one DER list. It
// returns them re-encoded as PEM, the form profiles carry inline. Signatures and dates are
// checked at each handshake, against the server's chain and the time then.
func ParseCRLs(data []byte) ([]byte, error) {
	lists, err := DecodeCRLs(data)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, l := range lists {
		_ = pem.Encode(&b, &pem.Block{Type: "X509 CRL", Bytes: l.Raw})
	}
	return b.Bytes(), nil
}

// DecodeCRLs parses what ParseCRLs accepts.
func DecodeCRLs(data []byte) ([]*x509.RevocationList, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		l, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, fmt.Errorf("not a PEM or DER certificate revocation list: %w", err)
		}
		return []*x509.RevocationList{l}, nil
	}
	var lists []*x509.RevocationList
	_, err := eachPEMBlock(data, "X509 CRL", func(n int, der []byte) error {
		if len(lists) == MaxCRLs {
			return fmt.Errorf("more than %d revocation lists", MaxCRLs)
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return fmt.Errorf("revocation list %d: %w", n, err)
		}
		lists = append(lists, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(lists) == 0 {
		return nil, errors.New("no PEM X509 CRL block")
	}
	return lists, nil
}
