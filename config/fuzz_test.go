package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary profiles to ParseInline. Nothing may panic, and whatever parses
// must print to a fixpoint.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/valid/*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(base))
	f.Add([]byte("client\ndev tun\n<connection>\nremote a 1 tcp\n</connection>\npeer-fingerprint " +
		"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\nauth-user-pass\n"))
	f.Add([]byte("\xef\xbb\xbfclient\r\ndev tun\r\nremote 'a b' \"c\\\"\"\r\n<ca>\r\nx\r\n</ca>\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := ParseInline("fuzz", data)
		if err != nil {
			for _, e := range Errors(err) {
				if _, ok := e.(*Error); !ok {
					t.Fatalf("error %v is %T", e, e)
				}
			}
			return
		}
		out := c.Format()
		c2, _, err := ParseInline("printed", out)
		if err != nil {
			t.Fatalf("printed profile does not parse: %v\n%s", err, out)
		}
		if out2 := c2.Format(); !bytes.Equal(out, out2) {
			t.Fatalf("not a fixpoint:\n%s\n---\n%s", out, out2)
		}
	})
}

// FuzzParsePushReply feeds arbitrary control messages to the push parser.
func FuzzParsePushReply(f *testing.F) {
	f.Add("PUSH_REPLY,route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 120,ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM")
	f.Add("PUSH_REPLY,route-ipv6 2001:db8::/32,dhcp-option DNS6 2001:db8::1,dns server 0 address [::1]:53,auth-token-user Ym9i,redirect-gateway def1 ipv6")
	f.Add("PUSH_REPLY,dev tap,remote x,up /bin/sh,\"unterminated,push-continuation 2\x00")
	f.Fuzz(func(t *testing.T, msg string) {
		p, w, err := ParsePushReply(msg)
		if err != nil {
			return
		}
		if p == nil {
			t.Fatal("nil Pushed without error")
		}
		for _, x := range w {
			if x.File != PushSource {
				t.Fatalf("warning from %q", x.File)
			}
		}
	})
}
