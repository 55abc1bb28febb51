package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// crlCA issues certificates and revocation lists from the lab's CA with `openssl ca`, the
// way an administrator keeps a CRL.
type crlCA struct {
	t        *testing.T
	pki      *lab.PKI
	dir, cnf string
}

func newCRLCA(t *testing.T, l *lab.Lab) *crlCA {
	dir := filepath.Join(l.Dir, "crlca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &crlCA{t: t, pki: l.PKI(), dir: dir, cnf: filepath.Join(dir, "ca.cnf")}
	cnf := "[ca]\ndefault_ca = lab\n[lab]\ndatabase = " + filepath.Join(dir, "index.txt") +
		"\ncrlnumber = " + filepath.Join(dir, "crlnumber") + "\ndefault_md = sha256\ndefault_crl_days = 1\n"
	for name, data := range map[string]string{"ca.cnf": cnf, "index.txt": "", "crlnumber": "1000\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *crlCA) run(args ...string) {
	c.t.Helper()
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		c.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (c *crlCA) caArgs() []string {
	return []string{"-config", c.cnf, "-cert", c.pki.CACert, "-keyfile", filepath.Join(c.pki.Dir, "ca.key")}
}

// issueServer makes a server certificate with the given serial; it returns cert and key paths.
func (c *crlCA) issueServer(name string, serial int) (string, string) {
	crt, key, csr := filepath.Join(c.dir, name+".crt"), filepath.Join(c.dir, name+".key"), filepath.Join(c.dir, name+".csr")
	c.run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", key, "-out", csr, "-subj", "/CN=server") // the lab's clients check verify-x509-name server
	c.run("x509", "-req", "-in", csr, "-CA", c.pki.CACert, "-CAkey", filepath.Join(c.pki.Dir, "ca.key"),
		"-set_serial", strconv.Itoa(serial), "-days", "2", "-extfile", filepath.Join(c.pki.Dir, "server.ext"), "-out", crt)
	return crt, key
}

func (c *crlCA) revoke(crt string) { c.run(append([]string{"ca", "-revoke", crt}, c.caArgs()...)...) }

func (c *crlCA) genCRL(out string) {
	c.run(append([]string{"ca", "-gencrl", "-out", out}, c.caArgs()...)...)
}

// TestOvpndCRLVerify: with crl-verify, ovpnd accepts a server whose certificate the CA's list
// does not name, re-reads the list when the CA updates it, and refuses the same server at the
// next handshake once its certificate is revoked, saying so.
func TestOvpndCRLVerify(t *testing.T) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	ca := newCRLCA(t, l)
	crt, key := ca.issueServer("crl-server", 77)
	crl := filepath.Join(l.Dir, "crl.pem")
	ca.genCRL(crl) // nothing revoked yet

	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", Extra: []string{"cert " + crt, "key " + key}})
	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{Extra: []string{"crl-verify " + crl}}))
	client := startOvpnd(t, l, cfg)
	dumpOnFailure(t, client, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr()); err != nil {
		t.Fatalf("certificate not on the CRL: %v", err)
	}
	if _, err := l.Ping(srv.TunnelAddr(), 3, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	ca.revoke(crt)
	ca.genCRL(crl)
	srv.Restart() // the client reconnects, and the new handshake must consult the new list
	if err := client.WaitOutput(ctx, "revoked (serial 77"); err != nil {
		t.Fatalf("revoked server certificate not refused: %v", err)
	}
	if !strings.Contains(client.Output(), `crl-verify: certificate "server" (chain depth 0)`) {
		t.Errorf("the refusal does not name the certificate")
	}
	if err := client.Stop(10 * time.Second); err != nil {
		t.Errorf("ovpnd exit: %v", err)
	}
}
