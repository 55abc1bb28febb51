package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// PKI is key material generated once per process with openssl and openvpn, shared by every lab
// in the process (generation takes about a second; tests do not need fresh keys each).
type PKI struct {
	// Dir holds every file below.
	Dir string
	// CACert is the CA certificate (EC P-256, self-signed).
	CACert string
	// ServerCert and ServerKey: CN "server", extendedKeyUsage serverAuth.
	ServerCert, ServerKey string
	// ClientCert and ClientKey: CN "client", extendedKeyUsage clientAuth.
	ClientCert, ClientKey string
	// TLSAuthKey and TLSCryptKey are OpenVPN static keys (`openvpn --genkey tls-auth|tls-crypt`).
	TLSAuthKey, TLSCryptKey string
	// TLSCryptV2Server is the server key; TLSCryptV2Client a client key wrapped by it.
	TLSCryptV2Server, TLSCryptV2Client string
}

var (
	sharedMu  sync.Mutex
	sharedDir string
	pkiOnce   sync.Once
	pkiVal    *PKI
	pkiErr    error
)

// SharedDir returns the per-process directory for material shared by all labs, creating it.
// Its name carries the pid, so a later run removes it if this process dies without cleanup.
func SharedDir() (string, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDir != "" {
		return sharedDir, nil
	}
	d := filepath.Join(os.TempDir(), fmt.Sprintf("ovpnd-lab-%d", os.Getpid()))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("creating shared lab dir: %w", err)
	}
	sharedDir = d
	return d, nil
}

// RemoveShared deletes the per-process shared dir (PKI, built helpers). Call it when no lab
// is in use any more; Main does.
func RemoveShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
		sharedDir = ""
	}
}

// Main runs the tests of a package that uses labs and then removes the shared dir. Use it as
// `func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }`.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	RemoveShared()
	return code
}

// SharedPKI generates the PKI on first use and returns the same one afterwards.
func SharedPKI() (*PKI, error) {
	pkiOnce.Do(func() {
		dir, err := SharedDir()
		if err != nil {
			pkiErr = err
			return
		}
		pkiVal, pkiErr = generatePKI(filepath.Join(dir, "pki"))
	})
	return pkiVal, pkiErr
}

func generatePKI(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating pki dir: %w", err)
	}
	p := &PKI{
		Dir:              dir,
		CACert:           filepath.Join(dir, "ca.crt"),
		ServerCert:       filepath.Join(dir, "server.crt"),
		ServerKey:        filepath.Join(dir, "server.key"),
		ClientCert:       filepath.Join(dir, "client.crt"),
		ClientKey:        filepath.Join(dir, "client.key"),
		TLSAuthKey:       filepath.Join(dir, "ta.key"),
		TLSCryptKey:      filepath.Join(dir, "tc.key"),
		TLSCryptV2Server: filepath.Join(dir, "tc2-server.key"),
		TLSCryptV2Client: filepath.Join(dir, "tc2-client.key"),
	}
	caKey := filepath.Join(dir, "ca.key")
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	exts := map[string]string{
		"server": "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
		"client": "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
	}
	steps := [][]string{
		append(append([]string{"openssl", "req", "-x509"}, ec...),
			"-keyout", caKey, "-out", p.CACert, "-days", "30", "-subj", "/CN=ovpnd-lab-ca",
			"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
	}
	for i, name := range []string{"server", "client"} {
		ext := filepath.Join(dir, name+".ext")
		if err := os.WriteFile(ext, []byte(exts[name]), 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", ext, err)
		}
		csr := filepath.Join(dir, name+".csr")
		steps = append(steps,
			append(append([]string{"openssl", "req", "-new"}, ec...),
				"-keyout", filepath.Join(dir, name+".key"), "-out", csr, "-subj", "/CN="+name),
			[]string{"openssl", "x509", "-req", "-in", csr, "-CA", p.CACert, "-CAkey", caKey,
				"-set_serial", fmt.Sprint(i + 2), "-days", "30", "-extfile", ext,
				"-out", filepath.Join(dir, name+".crt")},
		)
	}
	steps = append(steps,
		[]string{"openvpn", "--genkey", "tls-auth", p.TLSAuthKey},
		[]string{"openvpn", "--genkey", "tls-crypt", p.TLSCryptKey},
		[]string{"openvpn", "--genkey", "tls-crypt-v2-server", p.TLSCryptV2Server},
		[]string{"openvpn", "--tls-crypt-v2", p.TLSCryptV2Server, "--genkey", "tls-crypt-v2-client", p.TLSCryptV2Client},
	)
	for _, args := range steps {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("generating PKI (%s): %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return p, nil
}
