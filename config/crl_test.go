package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// testCRL returns a PEM revocation list listing serial 5 and its DER form.
func testCRL(t testing.TB) (pemData, der []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crl ca"}, NotBefore: now,
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign}
	cder, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(cder)
	der, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(5), RevocationTime: now}}}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), der
}

func TestCRLVerifyDirective(t *testing.T) {
	crlPEM, crlDER := testCRL(t)
	fsys := material(t)
	fsys["crl.pem"] = &fstest.MapFile{Data: crlPEM}
	fsys["crl.der"] = &fstest.MapFile{Data: crlDER}
	for _, tc := range []struct{ name, extra, err string }{
		{"file", "crl-verify crl.pem\n", ""},
		{"DER file", "crl-verify crl.der\n", ""},
		{"inline", "<crl-verify>\n" + string(crlPEM) + "</crl-verify>\n", ""},
		{"overridden file never opened", "crl-verify missing.pem\ncrl-verify crl.pem\n", ""},
		{"not a CRL", "crl-verify ca.crt\n", `crl-verify: ca.crt: PEM block 1 is "CERTIFICATE", want X509 CRL`},
		{"dir without the profile's folder", "crl-verify crls dir\n", "crl-verify DIR dir needs the profile's own folder"},
		{"bad flag", "crl-verify crl.pem file\n", `unknown flag "file"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Parse("test.conf", []byte(base+tc.extra), FSOpener(fsys))
			if tc.err != "" {
				if err == nil || !strings.Contains(errText(err), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(errText(err))
			}
			lists, err := DecodeCRLs(c.CRL.PEM)
			if err != nil || len(lists) != 1 || lists[0].RevokedCertificateEntries[0].SerialNumber.Int64() != 5 {
				t.Fatalf("lists %v, %v", lists, err)
			}
			if c.CRL.Path != "" {
				t.Errorf("Path %q without a folder to resolve against", c.CRL.Path)
			}
			checkFixpoint(t, c)
		})
	}
	t.Run("no ca", func(t *testing.T) {
		text := strings.Replace(base, "ca ca.crt\n", "", 1) + "peer-fingerprint " + strings.Repeat("AB:", 31) + "AB\ncrl-verify crl.pem\n"
		_, _, err := Parse("test.conf", []byte(text), FSOpener(fsys))
		if err == nil || !strings.Contains(errText(err), "crl-verify needs ca") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestCRLVerifyLoad checks what only a profile read from disk can do: a file the session can
// watch, and directory mode, which the daemon (ParseInline) refuses by name.
func TestCRLVerifyLoad(t *testing.T) {
	crlPEM, _ := testCRL(t)
	dir := t.TempDir()
	ca, err := os.ReadFile(filepath.Join(keyDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", ca)
	write("crl.pem", crlPEM)
	if err := os.Mkdir(filepath.Join(dir, "crls"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("file.conf", []byte(base+"crl-verify crl.pem\n"))
	write("dir.conf", []byte(base+"crl-verify crls dir\n"))
	c, _, err := Load(filepath.Join(dir, "file.conf"))
	if err != nil {
		t.Fatal(errText(err))
	}
	if c.CRL.Path != filepath.Join(dir, "crl.pem") {
		t.Errorf("Path = %q", c.CRL.Path)
	}
	// What ovpnctl up sends carries the lists inline, without the path.
	c2, _, err := ParseInline("printed", c.Format())
	if err != nil {
		t.Fatal(errText(err))
	}
	if c2.CRL.Path != "" || string(c2.CRL.PEM) != string(c.CRL.PEM) {
		t.Errorf("printed CRL %+v", c2.CRL)
	}
	c, _, err = Load(filepath.Join(dir, "dir.conf"))
	if err != nil {
		t.Fatal(errText(err))
	}
	if c.CRL.Dir != filepath.Join(dir, "crls") {
		t.Errorf("Dir = %q", c.CRL.Dir)
	}
	if _, _, err := ParseInline("printed", c.Format()); err == nil || !strings.Contains(errText(err), "the daemon cannot be sent a directory") {
		t.Errorf("ParseInline of directory mode: %v", err)
	}
}

// FuzzDecodeCRLs feeds arbitrary bytes to the crl-verify reader: no panic, and whatever it
// accepts re-encodes to lists it accepts again.
func FuzzDecodeCRLs(f *testing.F) {
	crlPEM, crlDER := testCRL(f)
	f.Add(crlPEM)
	f.Add(crlDER)
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		norm, err := ParseCRLs(data)
		if err != nil {
			return
		}
		if _, err := DecodeCRLs(norm); err != nil {
			t.Fatalf("re-encoded lists do not parse: %v", err)
		}
	})
}
