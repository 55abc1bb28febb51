package session

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
)

func TestEngineConfig(t *testing.T) {
	key := make([]byte, 256)
	for i := range key {
		key[i] = byte(i)
	}
	base := func() *config.Config {
		return &config.Config{
			CA:               x509.NewCertPool(),
			DataCiphers:      []string{"AES-256-GCM"},
			Auth:             "SHA256",
			RemoteCertTLS:    "server",
			TLSVersionMin:    config.TLSVersion{Version: tls.VersionTLS12},
			RenegInterval:    time.Hour,
			Ping:             10 * time.Second,
			PingTimeout:      60 * time.Second,
			TunMTU:           1500,
			ReplayWindow:     64,
			TLSWrap:          config.TLSWrap{Direction: config.KeyDirBidi},
			Connections:      []config.Connection{{Remote: "vpn", Port: 1194}},
			PeerFingerprints: nil,
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(c *config.Config)
		conn  config.Connection
		creds *credentials
		check func(t *testing.T, ec *engine.Config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, ec *engine.Config) {
				if ec.Wrap != engine.WrapNone || ec.PingRestart != 60*time.Second || ec.PingExit != 0 ||
					!ec.RemoteCertTLSServer || ec.Proto != engine.ProtoUDP || ec.RenegInterval != time.Hour || ec.Rand == nil {
					t.Errorf("%+v", ec)
				}
			},
		},
		{
			name: "tls-cipher without a TLS 1.2 suite crypto/tls has means TLS 1.3 alone",
			edit: func(c *config.Config) { c.TLSCipher = "DHE-RSA-AES256-GCM-SHA384"; c.NSCertType = "server" },
			check: func(t *testing.T, ec *engine.Config) {
				if ec.TLSVersionMin != tls.VersionTLS13 || len(ec.TLSCipherSuites) != 0 || ec.NSCertType != engine.NSCertServer {
					t.Errorf("min %#x suites %v ns %v", ec.TLSVersionMin, ec.TLSCipherSuites, ec.NSCertType)
				}
			},
		},
		{
			name: "tls-auth key direction 1 over TCP with ping-exit",
			edit: func(c *config.Config) {
				c.TLSWrap = config.TLSWrap{Mode: config.WrapTLSAuth, Key: key, Direction: config.KeyDir1}
				c.PingTimeoutAction = config.PingExit
			},
			conn: config.Connection{Proto: config.ProtoTCP},
			check: func(t *testing.T, ec *engine.Config) {
				if ec.Wrap != engine.WrapTLSAuth || ec.KeyDirection != 1 || ec.WrapKey == nil || ec.Proto != engine.ProtoTCP ||
					ec.PingExit != 60*time.Second || ec.PingRestart != 0 {
					t.Errorf("%+v", ec)
				}
			},
		},
		{
			name: "tls-crypt-v2 and comp-lzo, reneg-sec 0",
			edit: func(c *config.Config) {
				wkc := make([]byte, 300)
				binary.BigEndian.PutUint16(wkc[298:], 300)
				c.TLSWrap = config.TLSWrap{Mode: config.WrapTLSCryptV2, Key: key, WKc: wkc}
				c.Compression = config.Compression{Mode: config.CompressCompLZO}
				c.RenegInterval = 0
			},
			check: func(t *testing.T, ec *engine.Config) {
				if ec.Wrap != engine.WrapTLSCryptV2 || ec.TLSCryptV2 == nil || len(ec.TLSCryptV2.WKc) != 300 ||
					ec.Compression != datachannel.CompLZO || ec.RenegInterval >= 0 {
					t.Errorf("%+v", ec)
				}
			},
		},
		{
			name:  "auth-user-pass with a remembered auth-token",
			edit:  func(c *config.Config) { c.AuthUserPass = &config.AuthUserPass{Username: "u", Password: "p"} },
			creds: &credentials{user: "u", pass: "p", token: "tok", tokenUser: "tu"},
			check: func(t *testing.T, ec *engine.Config) {
				if !ec.AuthUserPass || ec.Username != "u" || ec.Password != "p" || ec.AuthToken != "tok" || ec.AuthTokenUser != "tu" {
					t.Errorf("%+v", ec)
				}
			},
		},
		{
			name: "tls-cipher, tls-ciphersuites, tls-cert-profile, remote-cert-ku",
			edit: func(c *config.Config) {
				c.TLSCipher = "DHE-RSA-AES256-GCM-SHA384:TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
				c.TLSCipherSuites = "TLS_CHACHA20_POLY1305_SHA256"
				c.TLSCertProfile = "suiteb"
				c.TLSGroups = "X25519MLKEM768:X448:P-256"
				c.RemoteCertTLS = ""
				c.RemoteCertKU = []uint16{0xa0, 0x88}
			},
			check: func(t *testing.T, ec *engine.Config) {
				if diff := cmp.Diff([]tls.CurveID{tls.X25519MLKEM768, tls.CurveP256}, ec.TLSGroups); diff != "" {
					t.Errorf("tls-groups: %s", diff)
				}
				if diff := cmp.Diff([]uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, ec.TLSCipherSuites); diff != "" {
					t.Errorf("tls-cipher: %s", diff)
				}
				if diff := cmp.Diff([]uint16{tls.TLS_CHACHA20_POLY1305_SHA256}, ec.TLS13CipherSuites); diff != "" {
					t.Errorf("tls-ciphersuites: %s", diff)
				}
				if diff := cmp.Diff([]uint16{0xa0, 0x88}, ec.RemoteCertKU); diff != "" {
					t.Errorf("remote-cert-ku: %s", diff)
				}
				if ec.TLSCertProfile != engine.CertProfileSuiteB || ec.RemoteCertTLSServer || ec.RemoteCertEKU != "" {
					t.Errorf("%+v", ec)
				}
			},
		},
		{
			name: "remote-cert-tls client",
			edit: func(c *config.Config) { c.RemoteCertTLS = "client" },
			check: func(t *testing.T, ec *engine.Config) {
				if ec.RemoteCertTLSServer || ec.RemoteCertEKU != "1.3.6.1.5.5.7.3.2" || len(ec.RemoteCertKU) != 1 || ec.RemoteCertKU[0] != engine.KURequired {
					t.Errorf("server %v eku %q ku %v", ec.RemoteCertTLSServer, ec.RemoteCertEKU, ec.RemoteCertKU)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			if tc.edit != nil {
				tc.edit(c)
			}
			ec, err := engineConfig(c, &tc.conn, false, tc.creds, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ec)
			if _, err := engine.NewClient(ec); err != nil {
				t.Errorf("engine refuses the translated config: %v", err)
			}
		})
	}
	t.Run("bad tls-cert-profile", func(t *testing.T) {
		c := base()
		c.TLSCertProfile = "strong"
		if _, err := engineConfig(c, nil, false, nil, nil); err == nil {
			t.Error("unknown tls-cert-profile accepted")
		}
	})
	t.Run("bad wrap key", func(t *testing.T) {
		c := base()
		c.TLSWrap = config.TLSWrap{Mode: config.WrapTLSCrypt, Key: key[:10]}
		if _, err := engineConfig(c, nil, false, nil, nil); err == nil {
			t.Error("short tls-crypt key accepted")
		}
	})
}
