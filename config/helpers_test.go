package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

const keyDir = "testdata/key files"

// material maps the file names unit tests use to the test key files.
func material(t testing.TB) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, n := range []string{"ca.crt", "client.crt", "client.key", "other.key", "rsa-client.crt", "rsa-client.key",
		"ta.key", "tc2-client.key", "tc2-server.key", "client.p12", "client-pw.p12", "user.txt",
		"client-pkcs8-enc.key", "client-scrypt-enc.key", "client-legacy-enc.key", "askpass.txt"} {
		data, err := os.ReadFile(filepath.Join(keyDir, n))
		if err != nil {
			t.Fatal(err)
		}
		fsys[n] = &fstest.MapFile{Data: data}
	}
	return fsys
}

func readKey(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(keyDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

const base = "client\ndev tun\nremote vpn.example.com 1194\nca ca.crt\nauth-user-pass\n"

// parseText parses text with the test material available by file name.
func parseText(t testing.TB, text string) (*Config, []Warning, error) {
	t.Helper()
	return Parse("test.conf", []byte(text), FSOpener(material(t)))
}

func errText(err error) string {
	var parts []string
	for _, e := range Errors(err) {
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "\n")
}

func warnText(ws []Warning) string {
	var parts []string
	for _, w := range ws {
		parts = append(parts, w.String())
	}
	return strings.Join(parts, "\n")
}
