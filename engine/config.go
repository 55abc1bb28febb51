package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/push"
	"github.com/ovpnd/ovpnd/engine/statickey"
)

// Proto is the transport the session runs the engine over. The engine itself never touches a
// socket; it needs the transport for the OCC options string and IV_PROTO/explicit-exit-notify
// behaviour.
type Proto int

// Transports.
const (
	ProtoUDP Proto = iota
	ProtoTCP
)

// WrapMode selects control-channel wrapping.
type WrapMode int

// Wrapping modes (--tls-auth, --tls-crypt, --tls-crypt-v2).
const (
	WrapNone WrapMode = iota
	WrapTLSAuth
	WrapTLSCrypt
	WrapTLSCryptV2
)

// VerifyX509Type is the type argument of --verify-x509-name.
type VerifyX509Type int

// verify-x509-name types. The zero value disables the check.
const (
	VerifyX509Off VerifyX509Type = iota
	// VerifyX509Subject compares the whole subject DN in OpenVPN's "C=.., O=.., CN=.." form.
	VerifyX509Subject
	// VerifyX509Name compares the common name exactly.
	VerifyX509Name
	// VerifyX509NamePrefix requires the common name to start with the given name.
	VerifyX509NamePrefix
)

// NSCertType is the purpose --ns-cert-type requires of the peer's certificate.
type NSCertType int

// ns-cert-type values.
const (
	NSCertNone NSCertType = iota
	NSCertServer
	NSCertClient
)

// KURequired as the first RemoteCertKU entry requires a key usage extension with any value
// (OpenVPN's OPENVPN_KU_REQUIRED; 0xFFFF is not a valid key usage).
const KURequired = 0xFFFF

// maxRemoteCertKU bounds RemoteCertKU (OpenVPN keeps at most MAX_PARMS values).
const maxRemoteCertKU = 64

// CertProfile is a --tls-cert-profile: which keys and signature algorithms the server's
// certificate chain may use.
type CertProfile int

// Certificate profiles. CertProfileInsecure and CertProfileNone accept whatever crypto/tls
// accepts; CertProfileLegacy adds RSA keys of at least 1024 bits; CertProfilePreferred
// requires SHA-2 signatures and RSA keys of at least 2048 bits; CertProfileSuiteB allows only
// ECDSA P-256/P-384 keys with ECDSA-SHA256/SHA384 signatures.
const (
	CertProfileNone CertProfile = iota
	CertProfileInsecure
	CertProfileLegacy
	CertProfilePreferred
	CertProfileSuiteB
)

// DefaultTLSGroups are the key-exchange groups offered without --tls-groups. crypto/tls's
// own default puts X25519MLKEM768 first, whose 1.2 KB key share makes the ClientHello two
// control packets; an OpenVPN 2.6 server drops the second when it arrives first, and the
// handshake then waits a whole tls-timeout. Classic groups keep it to one packet, as OpenVPN's
// client does; post-quantum key exchange stays available through --tls-groups.
var DefaultTLSGroups = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// Defaults from OpenVPN 2.6 (options.c, ssl.h).
const (
	DefaultTLSTimeout          = 2 * time.Second
	DefaultHandWindow          = 60 * time.Second
	DefaultTranWindow          = 3600 * time.Second
	DefaultRenegInterval       = 3600 * time.Second
	DefaultPushRequestInterval = 5 * time.Second
	DefaultTLSMTU              = 1250
	DefaultTunMTU              = 1500
	DefaultTunMaxMTU           = 1600
	DefaultReplayWindow        = 64
	// minTLSMTU and maxTLSMTU bound --tls-mtu as OpenVPN does (TLS_CHANNEL_MTU_MIN, 2048).
	minTLSMTU = 154
	maxTLSMTU = 2048
)

// Config is everything the protocol needs, already loaded: no file names, no sockets.
// Zero durations take OpenVPN's defaults; a zero Ping/PingRestart/PingExit/RenegBytes/
// RenegPackets disables that feature, RenegInterval < 0 disables time-based renegotiation.
type Config struct {
	// RootCAs verifies the server's chain (--ca). May be nil when PeerFingerprints is set.
	RootCAs *x509.CertPool
	// Certificate is the client certificate (--cert/--key, --pkcs12); nil for none.
	Certificate *tls.Certificate
	// VerifyX509Type and VerifyX509Name implement --verify-x509-name.
	VerifyX509Type VerifyX509Type
	VerifyX509Name string
	// RemoteCertTLSServer implements --remote-cert-tls server: the leaf must carry a key-usage
	// extension and the TLS Web Server Authentication extended key usage.
	RemoteCertTLSServer bool
	// RemoteCertEKU implements --remote-cert-eku: an OID ("1.3.6.1.5.5.7.3.1") or OpenSSL long
	// name ("TLS Web Server Authentication") the leaf's extended key usage must contain.
	RemoteCertEKU string
	// NSCertType implements the deprecated --ns-cert-type (NSCertNone = no check).
	NSCertType NSCertType
	// CRLs implements --crl-verify FILE: it returns the revocation lists in force and is
	// called once per TLS handshake (on the TLS goroutine), so a caller that re-reads a
	// changed file takes effect at the next handshake. nil = no revocation check.
	CRLs func() ([]*x509.RevocationList, error)
	// CRLDirRevoked implements --crl-verify DIR dir: whether DIR holds a file named by the
	// decimal serial number. nil = no such check.
	CRLDirRevoked func(serial string) (bool, error)
	// PeerFingerprints implements --peer-fingerprint: SHA-256 digests of acceptable leaves.
	PeerFingerprints [][32]byte
	// TLSVersionMin and TLSVersionMax are tls.VersionTLS12/13 (0 = 1.2 and 1.3).
	TLSVersionMin, TLSVersionMax uint16
	// TLSCipherSuites is --tls-cipher: the TLS 1.2 cipher suites offered, in order (crypto/tls
	// ids; nil = Go's defaults). It cannot name TLS 1.3 suites.
	TLSCipherSuites []uint16
	// TLS13CipherSuites is --tls-ciphersuites: the TLS 1.3 suites accepted (nil = any).
	// crypto/tls does not let a client choose what it offers for TLS 1.3, so the list is
	// enforced after the handshake instead: a session that negotiated another suite fails, and
	// the order of the list expresses no preference.
	TLS13CipherSuites []uint16
	// TLSGroups is --tls-groups: the key-exchange groups offered, most preferred first (nil =
	// DefaultTLSGroups). crypto/tls sends one key share, for the first group (two for a hybrid
	// post-quantum group: it adds X25519's), so the first group decides the ClientHello's size.
	TLSGroups []tls.CurveID
	// RemoteCertKU is --remote-cert-ku: the server certificate needs a key usage extension
	// whose OpenSSL-style value (digitalSignature = 0x80 ... encipherOnly = 0x01) contains
	// all bits of at least one entry. A first entry of KURequired only requires the
	// extension. nil disables the check.
	RemoteCertKU []uint16
	// TLSCertProfile is --tls-cert-profile, checked on the server's chain (CertProfileNone
	// leaves the chain to crypto/tls's own rules).
	TLSCertProfile CertProfile

	// Wrap selects control-channel wrapping; WrapKey is the tls-auth or tls-crypt key,
	// KeyDirection the tls-auth key direction (-1 none, 0, 1: set it explicitly, the zero
	// value means direction 0), TLSCryptV2 the client key.
	Wrap         WrapMode
	WrapKey      *statickey.Key
	KeyDirection int
	TLSCryptV2   *statickey.TLSCryptV2ClientKey

	// DataCiphers is --data-ciphers in preference order (default AES-256-GCM, AES-128-GCM,
	// CHACHA20-POLY1305); DataCiphersFallback is --data-ciphers-fallback (may be empty).
	DataCiphers         []string
	DataCiphersFallback string
	// Auth is --auth: the tls-auth HMAC digest and the CBC data-channel HMAC (default SHA1).
	Auth string
	// Compression is the configured compression framing (pushed compress/comp-lzo replace it).
	Compression datachannel.Compression

	// AuthUserPass enables --auth-user-pass. With Username and Password empty the engine asks
	// for them with EventNeedCredentials before the key-method 2 record goes out.
	AuthUserPass       bool
	Username, Password string
	// AuthNoCache forgets the password once it was sent (--auth-nocache).
	AuthNoCache bool
	// AuthToken and AuthTokenUser carry a token pushed on an earlier connection so that a
	// reconnect uses it instead of the password (OpenVPN keeps it across SIGUSR1 restarts).
	AuthToken, AuthTokenUser string
	// StaticChallenge is --static-challenge: a code asked with the password and sent with it.
	StaticChallenge *StaticChallenge
	// Challenge is the CRV1 challenge the server sent on the previous connection
	// (EventAuthChallenge): this connection logs in as its username with its answer.
	Challenge *Challenge

	TLSTimeout    time.Duration // --tls-timeout
	HandWindow    time.Duration // --hand-window
	TranWindow    time.Duration // --tran-window
	RenegInterval time.Duration // --reneg-sec (<0 disables)
	RenegBytes    uint64        // --reneg-bytes
	RenegPackets  uint64        // --reneg-pkts
	Ping          time.Duration // --ping
	PingRestart   time.Duration // --ping-restart
	PingExit      time.Duration // --ping-exit
	// PathRTT and PathRTTVar are an earlier connection's measurement of the round trip to the
	// same server (Client.RTT): the control channel's retransmission timing starts from them
	// instead of a 1 s first retransmission, as TCP seeds a new connection from its per-
	// destination metrics. Zero: none.
	PathRTT, PathRTTVar time.Duration
	// PushPolicy is the profile's pull-filter rules and route-nopull, applied to the push.
	PushPolicy push.Policy
	// PushRequestInterval is how often PUSH_REQUEST is repeated until a reply arrives.
	PushRequestInterval time.Duration
	// ExplicitExitNotify is --explicit-exit-notify N (0 = off).
	ExplicitExitNotify int
	// ReplayWindow is the data-channel --replay-window size in packets.
	ReplayWindow int

	Proto Proto
	// IPv6 reports whether the transport runs over IPv6 (OCC proto string).
	IPv6 bool
	// TunMTU is --tun-mtu; TunMaxMTU is --tun-max-mtu (sent as IV_MTU).
	TunMTU, TunMaxMTU int
	// TLSMTU is --tls-mtu, the largest control packet the engine emits.
	TLSMTU int
	// Fragment turns on OpenVPN's fragmentation layer (--fragment, UDP only):
	// the largest data packet, in bytes of UDP payload, after taking off the
	// outer IP and UDP headers (--fragment N mtu) and a SOCKS relay's UDP
	// header. Zero means no fragmentation layer.
	Fragment int

	// Rand supplies all randomness (session ids, key material, TLS).
	Rand io.Reader
	// IVVer and IVGUIVer are the IV_VER and IV_GUI_VER peer-info values (IVGUIVer may be empty).
	IVVer, IVGUIVer string
}

// checkSuites rejects a suite list crypto/tls cannot use: unknown ids, TLS 1.3 suites in the
// TLS 1.2 list, or TLS 1.2 suites in the TLS 1.3 list.
func checkSuites(ids []uint16, tls13 bool) error {
	if len(ids) > 64 {
		return fmt.Errorf("%d cipher suites (at most 64)", len(ids))
	}
	for _, id := range ids {
		s := suiteByID(id)
		if s == nil {
			return fmt.Errorf("cipher suite %#04x is not supported by crypto/tls", id)
		}
		is13 := len(s.SupportedVersions) == 1 && s.SupportedVersions[0] == tls.VersionTLS13
		if is13 != tls13 {
			return fmt.Errorf("cipher suite %s does not belong in this list", s.Name)
		}
	}
	return nil
}

// suiteByID finds a suite among crypto/tls's secure and insecure ones.
func suiteByID(id uint16) *tls.CipherSuite {
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, s := range list {
			if s.ID == id {
				return s
			}
		}
	}
	return nil
}

// defaultDataCiphers is OpenVPN 2.6's --data-ciphers default.
var defaultDataCiphers = []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}

// normalize returns a copy of c with defaults filled in, or an error for a config the engine
// cannot run.
func (c *Config) normalize() (Config, error) {
	n := *c
	if n.Rand == nil {
		return n, errors.New("engine: Config.Rand is nil")
	}
	if n.RootCAs == nil && len(n.PeerFingerprints) == 0 {
		return n, errors.New("engine: neither a CA nor peer fingerprints configured")
	}
	if n.TLSTimeout <= 0 {
		n.TLSTimeout = DefaultTLSTimeout
	}
	if n.HandWindow <= 0 {
		n.HandWindow = DefaultHandWindow
	}
	if n.TranWindow <= 0 {
		n.TranWindow = DefaultTranWindow
	}
	if n.RenegInterval == 0 {
		n.RenegInterval = DefaultRenegInterval
	}
	if n.PushRequestInterval <= 0 {
		n.PushRequestInterval = DefaultPushRequestInterval
	}
	if n.TLSMTU == 0 {
		n.TLSMTU = DefaultTLSMTU
	}
	if n.TLSMTU < minTLSMTU || n.TLSMTU > maxTLSMTU {
		return n, fmt.Errorf("engine: tls-mtu %d outside %d..%d", n.TLSMTU, minTLSMTU, maxTLSMTU)
	}
	if n.TunMTU <= 0 {
		n.TunMTU = DefaultTunMTU
	}
	if n.Fragment < 0 || n.Fragment > 0 && n.Proto == ProtoTCP {
		return n, errors.New("engine: fragment needs a UDP transport")
	}
	if n.TunMaxMTU <= 0 {
		n.TunMaxMTU = max(DefaultTunMaxMTU, n.TunMTU)
	}
	if n.ReplayWindow <= 0 {
		n.ReplayWindow = DefaultReplayWindow
	}
	if n.Auth == "" {
		n.Auth = "SHA1"
	}
	if len(n.DataCiphers) == 0 {
		n.DataCiphers = defaultDataCiphers
	}
	n.DataCiphers = append([]string(nil), n.DataCiphers...)
	for i, ci := range n.DataCiphers {
		n.DataCiphers[i] = strings.ToUpper(ci)
	}
	n.DataCiphersFallback = strings.ToUpper(n.DataCiphersFallback)
	n.TLSCipherSuites = append([]uint16(nil), n.TLSCipherSuites...)
	n.TLS13CipherSuites = append([]uint16(nil), n.TLS13CipherSuites...)
	n.RemoteCertKU = append([]uint16(nil), n.RemoteCertKU...)
	if len(n.TLSGroups) == 0 {
		n.TLSGroups = DefaultTLSGroups
	}
	n.TLSGroups = append([]tls.CurveID(nil), n.TLSGroups...)
	if n.TLSVersionMin == 0 {
		n.TLSVersionMin = tls.VersionTLS12
	}
	if n.TLSVersionMax == 0 {
		n.TLSVersionMax = tls.VersionTLS13
	}
	if n.TLSVersionMin > n.TLSVersionMax {
		return n, fmt.Errorf("engine: tls-version-min %#x above tls-version-max %#x", n.TLSVersionMin, n.TLSVersionMax)
	}
	if err := checkSuites(n.TLSCipherSuites, false); err != nil {
		return n, fmt.Errorf("engine: tls-cipher: %w", err)
	}
	if err := checkSuites(n.TLS13CipherSuites, true); err != nil {
		return n, fmt.Errorf("engine: tls-ciphersuites: %w", err)
	}
	if len(n.RemoteCertKU) > maxRemoteCertKU {
		return n, fmt.Errorf("engine: remote-cert-ku has %d values (at most %d)", len(n.RemoteCertKU), maxRemoteCertKU)
	}
	if n.NSCertType < NSCertNone || n.NSCertType > NSCertClient {
		return n, fmt.Errorf("engine: unknown ns-cert-type %d", n.NSCertType)
	}
	if n.TLSCertProfile < CertProfileNone || n.TLSCertProfile > CertProfileSuiteB {
		return n, fmt.Errorf("engine: unknown tls-cert-profile %d", n.TLSCertProfile)
	}
	switch n.Wrap {
	case WrapNone:
	case WrapTLSAuth, WrapTLSCrypt:
		if n.WrapKey == nil {
			return n, errors.New("engine: tls-auth/tls-crypt selected without a key")
		}
	case WrapTLSCryptV2:
		if n.TLSCryptV2 == nil {
			return n, errors.New("engine: tls-crypt-v2 selected without a client key")
		}
	default:
		return n, fmt.Errorf("engine: unknown wrap mode %d", n.Wrap)
	}
	if n.KeyDirection < -1 || n.KeyDirection > 1 {
		return n, fmt.Errorf("engine: key-direction %d not -1, 0 or 1", n.KeyDirection)
	}
	if n.IVVer == "" {
		n.IVVer = "2.7.6"
	}
	return n, nil
}
