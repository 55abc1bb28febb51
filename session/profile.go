package session

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/statickey"
)

// Version is the IV_VER ovpnd reports; servers gate features on it, so it names
// the OpenVPN release whose protocol ovpnd implements.
const Version = "2.7.6"

// engineConfig translates a loaded profile and the connection being tried into
// the engine's configuration. creds, when non-nil, are the credentials to use
// (asked for earlier, or kept with an auth-token across reconnects).
func engineConfig(c *config.Config, conn *config.Connection, ipv6 bool, creds *credentials, rnd io.Reader) (*engine.Config, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	ec := &engine.Config{
		RootCAs:             c.CA,
		Certificate:         c.Cert,
		RemoteCertTLSServer: c.RemoteCertTLS == "server",
		RemoteCertEKU:       c.RemoteCertEKU,
		PeerFingerprints:    c.PeerFingerprints,
		DataCiphers:         c.DataCiphers,
		DataCiphersFallback: c.DataCiphersFallback,
		Auth:                c.Auth,
		AuthNoCache:         c.AuthNoCache,
		TLSTimeout:          c.TLSTimeout,
		HandWindow:          c.HandWindow,
		TranWindow:          c.TranWindow,
		RenegInterval:       c.RenegInterval,
		Ping:                c.Ping,
		ReplayWindow:        c.ReplayWindow,
		IPv6:                ipv6,
		TunMTU:              c.TunMTU,
		TunMaxMTU:           maxTunMTU(c),
		Rand:                rnd,
		IVVer:               Version,
		KeyDirection:        int(c.TLSWrap.Direction),
		PushPolicy:          c.PushPolicy(),
	}
	if c.RenegInterval == 0 {
		ec.RenegInterval = -1 // reneg-sec 0 disables; the engine's zero means default
	}
	if c.RenegBytes > 0 {
		ec.RenegBytes = uint64(c.RenegBytes)
	}
	if c.RenegPkts > 0 {
		ec.RenegPackets = uint64(c.RenegPkts)
	}
	if c.DataCiphersFallback == "" && c.Cipher != "" && len(c.DataCiphers) == 0 {
		ec.DataCiphersFallback = c.Cipher
	}
	switch c.PingTimeoutAction {
	case config.PingExit:
		ec.PingExit = c.PingTimeout
	default:
		ec.PingRestart = c.PingTimeout
	}
	if conn != nil {
		ec.ExplicitExitNotify = conn.ExplicitExitNotify
		if conn.Proto == config.ProtoTCP {
			ec.Proto = engine.ProtoTCP
		}
	}
	if v := c.VerifyX509Name; v != nil {
		ec.VerifyX509Name = v.Name
		switch v.Type {
		case "name":
			ec.VerifyX509Type = engine.VerifyX509Name
		case "name-prefix":
			ec.VerifyX509Type = engine.VerifyX509NamePrefix
		default:
			ec.VerifyX509Type = engine.VerifyX509Subject
		}
	}
	ec.TLSVersionMin = c.TLSVersionMin.Version
	if ec.TLSVersionMin < tls.VersionTLS12 {
		ec.TLSVersionMin = tls.VersionTLS12 // crypto/tls and OpenVPN 2.6 servers agree on 1.2+
	}
	if c.TLSVersionMin.OrHighest && ec.TLSVersionMin > tls.VersionTLS13 {
		ec.TLSVersionMin = tls.VersionTLS13
	}
	if err := tlsOptions(ec, c); err != nil {
		return nil, err
	}
	ec.TLSVersionMax = c.TLSVersionMax.Version
	if ec.TLSVersionMax != 0 && ec.TLSVersionMax < ec.TLSVersionMin {
		return nil, fmt.Errorf("tls-version-max %#x is below tls-version-min %#x", ec.TLSVersionMax, ec.TLSVersionMin)
	}

	switch c.TLSWrap.Mode {
	case config.WrapTLSAuth, config.WrapTLSCrypt:
		k, err := statickey.FromBytes(c.TLSWrap.Key)
		if err != nil {
			return nil, fmt.Errorf("loading %v key: %w", c.TLSWrap.Mode, err)
		}
		ec.WrapKey = k
		ec.Wrap = engine.WrapTLSAuth
		if c.TLSWrap.Mode == config.WrapTLSCrypt {
			ec.Wrap = engine.WrapTLSCrypt
		}
	case config.WrapTLSCryptV2:
		k, err := statickey.FromBytes(c.TLSWrap.Key)
		if err != nil {
			return nil, fmt.Errorf("loading tls-crypt-v2 client key: %w", err)
		}
		ec.Wrap = engine.WrapTLSCryptV2
		ec.TLSCryptV2 = &statickey.TLSCryptV2ClientKey{Key: *k, WKc: c.TLSWrap.WKc}
	}

	comp, err := compression(c.Compression.Mode)
	if err != nil {
		return nil, err
	}
	ec.Compression = comp

	if c.AuthUserPass != nil {
		ec.AuthUserPass = true
		ec.Username = c.AuthUserPass.Username
		ec.Password = c.AuthUserPass.Password
		if c.AuthUserPass.Ask || c.AuthUserPass.PasswordMissing {
			ec.Password = ""
		}
	}
	if creds != nil {
		if creds.user != "" {
			ec.Username, ec.Password = creds.user, creds.pass
		}
		ec.AuthToken, ec.AuthTokenUser = creds.token, creds.tokenUser
		ec.Challenge = creds.challenge
	}
	if sc := c.StaticChallenge; sc != nil && c.AuthUserPass != nil {
		ec.StaticChallenge = &engine.StaticChallenge{Text: sc.Text, Echo: sc.Echo, Concat: sc.Concat}
	}
	return ec, nil
}

// clientAuthOID is the extended key usage remote-cert-tls client asks for.
const clientAuthOID = "1.3.6.1.5.5.7.3.2"

// certProfiles maps tls-cert-profile names to the engine's profiles.
var certProfiles = map[string]engine.CertProfile{
	"":          engine.CertProfileNone,
	"insecure":  engine.CertProfileInsecure,
	"legacy":    engine.CertProfileLegacy,
	"preferred": engine.CertProfilePreferred,
	"suiteb":    engine.CertProfileSuiteB,
}

// tlsOptions carries the TLS suite lists, tls-cert-profile and the key usage checks into ec.
func tlsOptions(ec *engine.Config, c *config.Config) error {
	if c.TLSCipher != "" {
		ids, _, err := config.TLSCipherList(c.TLSCipher)
		if err != nil {
			return fmt.Errorf("tls-cipher: %w", err)
		}
		ec.TLSCipherSuites = ids
		if len(ids) == 0 {
			// Nothing in the list works below TLS 1.3 (the parser warned): TLS 1.3 alone.
			ec.TLSVersionMin = tls.VersionTLS13
		}
	}
	if c.TLSCipherSuites != "" {
		ids, _, err := config.TLS13CipherList(c.TLSCipherSuites)
		if err != nil {
			return fmt.Errorf("tls-ciphersuites: %w", err)
		}
		ec.TLS13CipherSuites = ids
	}
	if c.TLSGroups != "" {
		ids, _, err := config.TLSGroupList(c.TLSGroups)
		if err != nil {
			return fmt.Errorf("tls-groups: %w", err)
		}
		ec.TLSGroups = ids
	}
	p, ok := certProfiles[c.TLSCertProfile]
	if !ok {
		return fmt.Errorf("unknown tls-cert-profile %q", c.TLSCertProfile)
	}
	ec.TLSCertProfile = p
	ec.RemoteCertKU = append([]uint16(nil), c.RemoteCertKU...)
	switch c.NSCertType {
	case "server":
		ec.NSCertType = engine.NSCertServer
	case "client":
		ec.NSCertType = engine.NSCertClient
	}
	if c.RemoteCertTLS == "client" {
		// OpenVPN: remote-cert-tls is remote-cert-ku (extension required) plus the
		// matching remote-cert-eku; the engine's RemoteCertTLSServer covers only "server".
		ec.RemoteCertKU = []uint16{engine.KURequired}
		ec.RemoteCertEKU = clientAuthOID
	}
	return nil
}

func compression(m config.CompressMode) (datachannel.Compression, error) {
	switch m {
	case config.CompressOff:
		return datachannel.CompressNone, nil
	case config.CompressCompLZO:
		return datachannel.CompLZO, nil
	case config.CompressStub:
		return datachannel.CompressStub, nil
	case config.CompressStubV2:
		return datachannel.CompressStubV2, nil
	case config.CompressLZO:
		return datachannel.CompressLZO, nil
	case config.CompressLZ4:
		return datachannel.CompressLZ4, nil
	case config.CompressLZ4V2:
		return datachannel.CompressLZ4V2, nil
	}
	return 0, fmt.Errorf("unknown compression mode %d", m)
}

// credentials are what the session remembers between connection attempts.
type credentials struct {
	user, pass       string
	token, tokenUser string
	// challenge is the CRV1 challenge of the previous connection, answered by the next one.
	challenge *engine.Challenge
}
