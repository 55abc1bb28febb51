package interop

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// TestOvpndEncryptedKey: `ovpnd run` with the client key encrypted the legacy OpenSSL way
// (Proc-Type: 4,ENCRYPTED) connects to OpenVPN 2.6, first with the passphrase in an askpass
// file, then typed at its terminal prompt. The profile also gives the key twice (inline, then
// the encrypted file), as bundles that ship both do: the later line wins.
func TestOvpndEncryptedKey(t *testing.T) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	const pass = "lab key passphrase"
	enc := filepath.Join(l.Dir, "client-enc.key")
	if out, err := exec.Command("openssl", "ec", "-in", l.PKI().ClientKey, "-aes256", "-passout", "pass:"+pass, "-out", enc).CombinedOutput(); err != nil {
		t.Fatalf("openssl ec: %v\n%s", err, out)
	}
	askpass := l.WriteFile("askpass.txt", pass+"\n")
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt"})
	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{Extra: []string{"key " + enc, "askpass " + askpass}}))
	client := startOvpnd(t, l, cfg)
	dumpOnFailure(t, client, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Ping(srv.TunnelAddr(), 3, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(client.Output(), "key "+enc+" overrides <key>") {
		t.Errorf("no warning about the overridden inline key")
	}
	if strings.Contains(client.Output(), pass) {
		t.Error("the passphrase appears in the log")
	}
	if err := client.Stop(10 * time.Second); err != nil {
		t.Errorf("ovpnd exit: %v", err)
	}

	// Without askpass, ovpnd run asks on its terminal, with echo off.
	cfg = l.WriteFile("client-ask.conf", srv.ClientConfig(lab.ClientOptions{Extra: []string{"key " + enc}}))
	resolv := l.WriteFile("resolv.conf", "nameserver 198.18.0.1\n")
	tty := l.StartClientProcessTTY(ovpndBinary(), "run", "--name", "lab", "--state-dir", filepath.Join(l.Dir, "state"),
		"--dns-mode", "resolv.conf", "--resolv-conf", resolv, cfg)
	if err := tty.WaitOutput(ctx, "Enter Private Key Password (private key "+enc+"): "); err != nil {
		t.Fatalf("no passphrase prompt: %v\n%s", err, tty.Output())
	}
	if err := tty.Type(pass + "\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitTunnel(ctx, tty, srv.ClientTunnelAddr()); err != nil {
		t.Fatalf("%v\n%s", err, tty.Output())
	}
	if strings.Contains(tty.Output(), pass) {
		t.Error("the passphrase was echoed on the terminal or logged")
	}
	if err := tty.Stop(10 * time.Second); err != nil {
		t.Errorf("ovpnd exit: %v", err)
	}
}
