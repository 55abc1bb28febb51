package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// TestOvpndCipherNotInDataCiphers is OpenVPN's own t_server_null case 3b: a client whose
// explicit data-ciphers lacks its --cipher must not use that cipher. OpenVPN 2.6 and 2.7
// negotiate only from data-ciphers, so against a server that offers nothing else the
// connection must fail rather than settle on the excluded cipher.
func TestOvpndCipherNotInDataCiphers(t *testing.T) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", DataCiphers: []string{"AES-192-CBC"}})
	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{Extra: []string{"data-ciphers AES-128-CBC", "cipher AES-192-CBC"}}))
	client := startOvpnd(t, l, cfg)
	dumpOnFailure(t, client, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.WaitOutput(ctx, "--cipher set to 'AES-192-CBC' but missing in --data-ciphers (AES-128-CBC)"); err != nil {
		t.Fatalf("no warning about the ignored --cipher: %v", err)
	}
	// The server finds no common cipher and says so; ovpnd stops there.
	if err := client.WaitOutput(ctx, "cipher negotiation failed (no shared cipher)"); err != nil {
		t.Fatalf("the connection did not fail on the cipher: %v", err)
	}
	if want := "client supported ciphers 'AES-128-CBC'"; !strings.Contains(srv.Log(), want) {
		t.Errorf("server log lacks %q: ovpnd offered more than its data-ciphers", want)
	}
	if strings.Contains(srv.Log(), "Data Channel: cipher 'AES-192-CBC'") {
		t.Error("the server and ovpnd settled on AES-192-CBC, which the client's data-ciphers excludes")
	}
}
