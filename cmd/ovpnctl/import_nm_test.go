package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/internal/nmvpn"
)

// TestNMConnection: the connection import --nm creates keeps private keys and the password
// out of vpn.data, and the plugin's Join gives ovpnd back a profile that parses to the
// same configuration (credentials asked, answered from vpn.data/vpn.secrets).
func TestNMConnection(t *testing.T) {
	dir := t.TempDir()
	keys, _ := filepath.Abs(filepath.Join("..", "..", "config", "testdata", "key files"))
	read := func(n string) string {
		b, err := os.ReadFile(filepath.Join(keys, n))
		if err != nil {
			t.Skipf("test key material missing: %v", err)
		}
		return string(b)
	}
	for _, n := range []string{"ca.crt", "client.crt", "client.key"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(read(n)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Files next to the profile, as users have them: import inlines them.
	profile := "client\ndev tun\nremote 198.18.0.1 1194 udp\nremote-cert-tls server\nca ca.crt\ncert client.crt\nkey client.key\n" +
		"<tls-crypt>\n" + read("ta.key") + "</tls-crypt>\n<auth-user-pass>\nalice\ns3cret\n</auth-user-pass>\n"
	path := filepath.Join(dir, "work.ovpn")
	if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := nmConnection(cfg, "work")
	if err != nil {
		t.Fatal(err)
	}
	if c["connection"]["id"].Value() != "work" || c["connection"]["type"].Value() != "vpn" || len(c["connection"]["uuid"].Value().(string)) != 36 {
		t.Errorf("connection %v", c["connection"])
	}
	if c["vpn"]["service-type"].Value() != nmvpn.ServiceName {
		t.Errorf("service-type %v", c["vpn"]["service-type"])
	}
	data := c["vpn"]["data"].Value().(map[string]string)
	secrets := c["vpn"]["secrets"].Value().(map[string]string)
	if data[nmvpn.DataUsername] != "alice" || data[nmvpn.DataPasswordFlags] != "0" || secrets[nmvpn.SecretPassword] != "s3cret" {
		t.Errorf("credentials: data %q, password %q", data[nmvpn.DataUsername], secrets[nmvpn.SecretPassword])
	}
	keyPEM := strings.TrimSpace(read("client.key"))
	for k, v := range data {
		if strings.Contains(v, "s3cret") || strings.Contains(v, "PRIVATE KEY") || strings.Contains(v, "OpenVPN Static key") {
			t.Errorf("vpn.data %s carries secret material:\n%s", k, v)
		}
	}
	if !strings.Contains(secrets["inline-key"], keyPEM[len(keyPEM)-40:]) || secrets["inline-tls-crypt"] == "" {
		t.Errorf("secret blocks missing: %d entries", len(secrets))
	}
	joined, err := nmvpn.Join(data[nmvpn.DataProfile], secrets)
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := config.ParseInline("work", []byte(joined))
	if err != nil {
		t.Fatalf("the joined profile does not parse: %v\n%s", err, joined)
	}
	if back.AuthUserPass == nil || !back.AuthUserPass.Ask || back.Cert == nil || back.Connections[0].Remote != "198.18.0.1" {
		t.Errorf("joined profile: %+v", back)
	}

	// Without a password: asked every time, nothing stored.
	cfg.AuthUserPass = &config.AuthUserPass{Ask: true}
	c, err = nmConnection(cfg, "work")
	if err != nil {
		t.Fatal(err)
	}
	data = c["vpn"]["data"].Value().(map[string]string)
	if _, ok := c["vpn"]["secrets"].Value().(map[string]string)[nmvpn.SecretPassword]; ok || data[nmvpn.DataPasswordFlags] != "2" {
		t.Errorf("asked password: flags %q", data[nmvpn.DataPasswordFlags])
	}
}
