package session

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
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/config"
)

// TestCRLSourceReload checks that a crl-verify file is re-read when it changes, and that a
// vanished file fails the handshake instead of silently dropping the check.
func TestCRLSourceReload(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	crlPEM := func(serials ...int64) []byte {
		tmpl := &x509.RevocationList{Number: big.NewInt(int64(len(serials) + 1)), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour)}
		for _, s := range serials {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: now})
		}
		d, err := x509.CreateRevocationList(rand.Reader, tmpl, ca, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: d})
	}
	path := filepath.Join(t.TempDir(), "crl.pem")
	if err := os.WriteFile(path, crlPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := newCRLSource(&config.CRL{PEM: crlPEM(), Path: path})
	if err != nil {
		t.Fatal(err)
	}
	lists, err := src.current()
	if err != nil || len(lists) != 1 || len(lists[0].RevokedCertificateEntries) != 0 {
		t.Fatalf("first read: %v %v", lists, err)
	}
	if err := os.WriteFile(path, crlPEM(5, 6), 0o600); err != nil {
		t.Fatal(err)
	}
	// The size changed; also move the time so the test does not depend on mtime granularity.
	if err := os.Chtimes(path, now.Add(time.Minute), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	lists, err = src.current()
	if err != nil || len(lists) != 1 || len(lists[0].RevokedCertificateEntries) != 2 {
		t.Fatalf("after the change: %v %v", lists, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := src.current(); err == nil {
		t.Fatal("a vanished CRL file gave no error")
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "17"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ds, _ := newCRLSource(&config.CRL{Dir: dir})
	if r, err := ds.revoked("17"); !r || err != nil {
		t.Errorf("serial 17: %v %v", r, err)
	}
	if r, err := ds.revoked("18"); r || err != nil {
		t.Errorf("serial 18: %v %v", r, err)
	}
}
