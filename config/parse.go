package config

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Opener reads a file a directive names. Parse hands it the path exactly as written; Load's
// opener resolves relative paths against the configuration file's folder.
type Opener func(path string) ([]byte, error)

// Load reads and parses the configuration file at path. Relative paths inside it resolve
// against the file's own folder, never the working directory. Warnings are returned even when
// the error is non-nil; the error joins one *Error per problem.
func Load(path string) (*Config, []Warning, error) {
	return LoadWith(path, LoadOptions{})
}

// LoadOptions adjust Load.
type LoadOptions struct {
	// Passphrase is asked for the passphrase of an encrypted private key or PKCS#12 bundle
	// when the profile's askpass names no file. nil makes such keys an error.
	Passphrase Passphrase
}

// LoadWith is Load with options.
func LoadWith(path string, o LoadOptions) (*Config, []Warning, error) {
	data, err := readLimited(path, MaxConfigSize)
	if err != nil {
		return nil, nil, &Error{File: path, Msg: err.Error()}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, nil, &Error{File: path, Msg: err.Error()}
	}
	return parse(path, data, func(p string) ([]byte, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return readLimited(p, MaxMaterialSize)
	}, dir, o.Passphrase)
}

// FSOpener returns an Opener reading from fsys (paths are cleaned and must stay inside it).
func FSOpener(fsys fs.FS) Opener {
	return func(p string) ([]byte, error) {
		name := filepath.ToSlash(filepath.Clean(p))
		if !fs.ValidPath(name) {
			return nil, fmt.Errorf("%s: path leaves the configuration folder", p)
		}
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readAllLimited(f, MaxMaterialSize, p)
	}
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, limit, path)
}

func readAllLimited(f fs.File, limit int64, name string) ([]byte, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b.Bytes(), nil
}

// Parse parses a configuration held in memory. name labels errors and warnings; open reads the
// files directives name (nil refuses every file reference, like ParseInline).
func Parse(name string, data []byte, open Opener) (*Config, []Warning, error) {
	return parse(name, data, open, "", nil)
}

// parse is Parse; dir, when not empty, is the absolute folder of a profile read from disk,
// against which the files that ovpnd keeps watching (crl-verify) are resolved.
func parse(name string, data []byte, open Opener, dir string, pass Passphrase) (*Config, []Warning, error) {
	p := &parser{dir: dir, passphrase: pass, name: name, open: open, seen: map[string]seenVal{}, attempted: map[string]bool{}, overriddenDir: KeyDirBidi}
	if len(data) > MaxConfigSize {
		return nil, nil, &Error{File: name, Msg: fmt.Sprintf("configuration is larger than %d bytes", MaxConfigSize)}
	}
	p.cfg = newConfig()
	p.global = &scope{seen: p.seen}
	items := lex(data, 0, p.errf)
	lexFailed := len(p.errs) > 0
	p.run(items, p.global)
	if lexFailed {
		// A broken block hides what follows it; reporting "missing" directives would mislead.
		return nil, p.warns, errors.Join(p.errs...)
	}
	p.finish()
	if len(p.errs) > 0 {
		return nil, p.warns, errors.Join(p.errs...)
	}
	return p.cfg, p.warns, nil
}

// ParseInline parses a self-contained profile, such as the one ovpnctl check --print writes.
// Any directive that names a file instead of carrying an inline block is an error: the daemon
// uses this and never opens a user's files.
func ParseInline(name string, data []byte) (*Config, []Warning, error) {
	return Parse(name, data, nil)
}

func newConfig() *Config {
	return &Config{
		Dev:           "tun",
		DataCiphers:   slices.Clone(defaultDataCiphers),
		Auth:          "SHA1",
		TLSWrap:       TLSWrap{Direction: KeyDirBidi},
		RenegInterval: 3600 * time.Second,
		HandWindow:    60 * time.Second,
		TranWindow:    3600 * time.Second,
		TLSTimeout:    2 * time.Second,
		ReplayWindow:  64,
		ReplayTime:    15 * time.Second,
		ResolvRetry:   ResolvRetryInfinite,
		TunMTU:        1500,
		MSSFix:        1492,
		MSSFixDefault: true,
		Verb:          1,
		TLSVersionMin: TLSVersion{Version: tls.VersionTLS12},
		Net:           NetSettings{Topology: TopologyNet30},
	}
}

type seenVal struct {
	it  *item
	val string
}

// scope is the global profile or one <connection> block.
type scope struct {
	seen    map[string]seenVal
	conn    []*item // connection-level directives in file order
	remotes []*item
	blockLn int
	isBlock bool
}

type parser struct {
	name   string
	open   Opener
	errs   []error
	warns  []Warning
	cfg    *Config
	seen   map[string]seenVal
	global *scope
	blocks []*scope

	dir string // see parse
	// passphrase asks for the passphrase of an encrypted key when askpass gave none.
	passphrase Passphrase
	askpass    []byte
	// encKey and encP12 are an encrypted key and a password-protected bundle waiting for
	// their passphrase (finish decrypts them).
	encKey, encP12 []byte

	ignoreUnknown map[string]bool
	// attempted records directives that appeared, even if they failed, so that a failed
	// directive is not reported a second time as missing.
	attempted map[string]bool

	// Material gathered while reading, checked together in finish.
	caItem, certItem, keyItem, p12Item, extraItem *item
	caCerts, certChain, extra                     []*x509.Certificate
	key                                           crypto.Signer
	keyPEM                                        []byte
	p12Key                                        crypto.Signer
	p12Cert                                       *x509.Certificate
	p12CAs                                        []*x509.Certificate
	wrapItem                                      *item
	wrapDir                                       KeyDirection
	overriddenDir                                 KeyDirection
	keyDirItem                                    *item
	cipherItem, compItem                          *item
	remoteCertTLSItem                             *item
	fragmentItem                                  *item
	proxy                                         proxyState
}

func (p *parser) errf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(line int, format string, args ...any) {
	p.warns = append(p.warns, Warning{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// describe renders a directive as the user wrote it, for messages.
func describe(it *item) string {
	if it.isInline {
		return "<" + it.name + ">"
	}
	if len(it.args) == 0 {
		return it.name
	}
	return it.name + " " + strings.Join(it.args, " ")
}

// once applies OpenVPN's repeat rule. The same setting twice is harmless (false: nothing to
// apply). A single-valued directive given again with a different value overrides the earlier
// one, as in OpenVPN, with a warning naming both lines. Two different directives that share a
// setting (key) override each other the same way when laterWins lists the key; otherwise
// OpenVPN refuses the pair too (tls-auth with tls-crypt, ping-restart with ping-exit,
// keepalive with ping), and so does once, naming both lines. It reports whether the caller
// should apply it.
func (p *parser) once(s *scope, it *item, key, val string) bool {
	prev, ok := s.seen[key]
	if !ok {
		s.seen[key] = seenVal{it, val}
		return true
	}
	if prev.val == val {
		return false
	}
	if prev.it.name == it.name || laterWins[key] {
		p.overrideWarning(it, prev.it)
		s.seen[key] = seenVal{it, val}
		return true
	}
	p.errf(it.line, "%s conflicts with %s on line %d", describe(it), describe(prev.it), prev.it.line)
	return false
}

// laterWins are the settings shared by different directives that OpenVPN lets override each
// other (the later line wins).
var laterWins = map[string]bool{
	"compression":     true, // comp-lzo and compress set the same algorithm
	"connect-timeout": true, // server-poll-timeout is its other name
	"bind":            true, // bind and nobind
	"data-ciphers":    true, // ncp-ciphers is its old name
}

// overrideWarning says that a later line replaced an earlier one (once per pair of lines:
// keepalive sets two settings).
func (p *parser) overrideWarning(it, prev *item) {
	msg := fmt.Sprintf("%s overrides %s on line %d (the later line wins, as in OpenVPN)", describe(it), describe(prev), prev.line)
	if n := len(p.warns); n > 0 && p.warns[n-1].Line == it.line && p.warns[n-1].Msg == msg {
		return
	}
	p.warnf(it.line, "%s", msg)
}

// materialDirectives load a file or inline block. When one is given again, OpenVPN keeps only
// the last and never opens the files of the earlier ones; overridden finds those.
var materialDirectives = map[string]bool{
	"ca": true, "cert": true, "key": true, "extra-certs": true, "pkcs12": true,
	"auth-user-pass": true, "tls-auth": true, "tls-crypt": true, "tls-crypt-v2": true,
	"crl-verify": true, "askpass": true,
}

// overridden maps each material directive that a later one of the same name replaces to
// that later one.
func overridden(items []*item) map[*item]*item {
	last := map[string]*item{}
	out := map[*item]*item{}
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		if !materialDirectives[it.name] {
			continue
		}
		if l := last[it.name]; l != nil {
			out[it] = l
		} else {
			last[it.name] = it
		}
	}
	return out
}

func (p *parser) run(items []*item, s *scope) {
	later := overridden(items)
	for _, it := range items {
		d := table[it.name]
		p.attempted[it.name] = true
		if d == nil {
			if p.ignoreUnknown[it.name] {
				p.warnf(it.line, "ignoring unknown directive %q (listed in ignore-unknown-option)", it.name)
				continue
			}
			p.errf(it.line, "unknown directive %q", it.name)
			continue
		}
		switch d.status {
		case ignored:
			p.warnf(it.line, "ignoring %s: %s", it.name, d.doc)
			continue
		case refused:
			if d.removed && p.ignoreUnknown[it.name] {
				// OpenVPN 2.6 no longer knows it either, so ignore-unknown-option covers it.
				p.warnf(it.line, "ignoring %s (listed in ignore-unknown-option): %s", it.name, d.doc)
				continue
			}
			p.errf(it.line, "%s is not supported: %s", it.name, d.doc)
			continue
		case pushOnly:
			p.errf(it.line, "%s is only valid in a server's PUSH_REPLY, not in a profile", it.name)
			continue
		}
		if s.isBlock && !d.conn {
			p.errf(it.line, "%s is not allowed inside <connection>", it.name)
			continue
		}
		if it.isInline && !d.inline {
			p.errf(it.line, "%s cannot be given as an inline block", it.name)
			continue
		}
		if !it.isInline || len(it.args) > 0 {
			n := len(it.args)
			if n < d.min || (d.max >= 0 && n > d.max) {
				p.errf(it.line, "%s: wrong number of arguments; usage: %s", it.name, d.syntax)
				continue
			}
		}
		if l := later[it]; l != nil {
			p.overrideWarning(l, it)
			if it.name == "tls-auth" {
				// OpenVPN keeps a key direction given on an overridden tls-auth line unless
				// the later line gives its own.
				p.noteOverriddenDirection(it)
			}
			continue
		}
		if err := d.apply(p, s, it); err != nil {
			p.errf(it.line, "%s: %v", it.name, err)
		}
	}
}

// material returns a directive's inline block, or the contents of the file it names.
func (p *parser) material(it *item) ([]byte, error) {
	if it.isInline {
		if it.inline == nil {
			return nil, errors.New("missing inline block")
		}
		return it.inline, nil
	}
	if len(it.args) == 0 {
		return nil, errors.New("needs a file name or an inline block")
	}
	path := it.args[0]
	if p.open == nil {
		return nil, fmt.Errorf("names the file %q; only inline blocks are accepted here (ovpnctl check --print writes a self-contained profile)", path)
	}
	data, err := p.open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, stripPathErr(err))
	}
	if len(data) > MaxMaterialSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxMaterialSize)
	}
	return data, nil
}

// materialErr names the file (or inline block) a material problem comes from.
func materialErr(it *item, err error) error {
	if it.isInline {
		return fmt.Errorf("inline <%s> block (line %d): %w", it.name, it.blockLine, err)
	}
	return fmt.Errorf("%s: %w", it.args[0], err)
}

func stripPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func parseUint(s string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%q is not a number between 0 and %d", s, max)
	}
	return n, nil
}

func parseSeconds(s string) (time.Duration, error) {
	n, err := parseUint(s, 1<<31-1)
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * time.Second, nil
}

func parseInt(s string, max int) (int, error) {
	n, err := parseUint(s, uint64(max))
	return int(n), err
}

// finish checks what depends on several directives and fills in derived settings.
func (p *parser) finish() {
	c := p.cfg
	if !c.TLSClient {
		p.errf(0, "not a client profile: add \"client\" (or \"tls-client\" and \"pull\")")
	} else if !c.Pull {
		// Without pull, OpenVPN runs a peer-to-peer TLS tunnel configured only by the profile;
		// ovpnd always asks the server for its settings.
		p.errf(0, "tls-client without pull (peer-to-peer TLS mode) is not supported: add \"pull\", or use \"client\"")
	}
	// Without dev, OpenVPN 2.7 uses dev tun (options.c init_options), and so does ovpnd.
	if d := p.cfg.Dev; p.attempted["dev"] && p.seen["dev-type"].it == nil && !strings.HasPrefix(d, "tun") && d != "null" {
		p.errf(p.seen["dev"].it.line, "cannot tell the type of device %q: add \"dev-type tun\"", d)
	}
	p.finishMaterial()
	p.finishWrap()
	p.finishConnections()
	p.finishFragment()
	p.finishProxy()
	if c.Cipher != "" && c.Cipher != "none" && !containsFold(c.DataCiphers, c.Cipher) {
		// OpenVPN 2.6 and 2.7 negotiate only from data-ciphers, the default list as much as
		// an explicit one: --cipher is never appended (checked with both: their options
		// dump keeps ncp_ciphers unchanged). They say so in these words.
		where := " (the default)"
		if dc := p.seen["data-ciphers"].it; dc != nil {
			where = fmt.Sprintf(" on line %d", dc.line)
		}
		p.warnf(p.cipherItem.line, "DEPRECATED OPTION: --cipher set to '%s' but missing in --data-ciphers (%s)%s. OpenVPN ignores --cipher for cipher negotiations, and so does ovpnd; for a server that cannot negotiate, use data-ciphers-fallback.", c.Cipher, strings.Join(c.DataCiphers, ":"), where)
	}
	if it := p.seen["tls-cipher"].it; it != nil && c.TLSVersionMax.Version != 0 && c.TLSVersionMax.Version < tls.VersionTLS13 {
		if ids, _, err := TLSCipherList(c.TLSCipher); err == nil && len(ids) == 0 {
			p.errf(it.line, "tls-cipher leaves no suite for TLS 1.2 and below, and tls-version-max %s rules out TLS 1.3", tlsVersionName(c.TLSVersionMax.Version))
		}
	}
	if it := p.seen["crl-verify"].it; it != nil && c.CRL != nil && c.CA == nil {
		p.errf(it.line, "crl-verify needs ca: the revocation lists are checked against the server's chain")
	}
	if c.Pull && c.PingTimeout == 0 && p.seen["ping-timeout"].it == nil {
		// OpenVPN's default for pulling clients until the server pushes its own value.
		c.PingTimeout, c.PingTimeoutAction = 120*time.Second, PingRestart
	}
	if c.Compression.Allow == AllowNo && compresses(c.Compression) {
		// OpenVPN refuses the same combination ("--allow-compression no conflicts with enabling
		// compression").
		p.errf(p.compItem.line, "%s conflicts with allow-compression no", describe(p.compItem))
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (p *parser) finishMaterial() {
	c := p.cfg
	p.decryptPending()
	if p.p12Item != nil {
		if p.certItem != nil {
			p.errf(p.certItem.line, "cert conflicts with pkcs12 on line %d (the bundle already holds the certificate)", p.p12Item.line)
		}
		if p.keyItem != nil {
			p.errf(p.keyItem.line, "key conflicts with pkcs12 on line %d (the bundle already holds the key)", p.p12Item.line)
		}
		if p.p12Cert != nil {
			p.certChain = []*x509.Certificate{p.p12Cert}
			p.key = p.p12Key
			p.keyPEM, _ = encodeKey(p.p12Key)
			if p.caItem == nil && len(p.p12CAs) > 0 {
				// Like OpenVPN, the bundle's CA certificates are used only without --ca.
				p.caCerts = p.p12CAs
			}
		}
	} else {
		if p.certItem != nil && p.keyItem == nil {
			p.errf(p.certItem.line, "cert given without key")
		}
		if p.keyItem != nil && p.certItem == nil {
			p.errf(p.keyItem.line, "key given without cert")
		}
		if p.certChain != nil && p.key != nil && !keyMatches(p.certChain[0], p.key) {
			p.errf(p.keyItem.line, "key %s does not match the certificate %s on line %d", materialName(p.keyItem), materialName(p.certItem), p.certItem.line)
			p.key = nil
		}
	}
	if len(p.caCerts) > 0 {
		c.CACerts = p.caCerts
		c.CA = x509.NewCertPool()
		for _, x := range p.caCerts {
			c.CA.AddCert(x)
		}
		c.src.ca = encodeCerts(p.caCerts)
	} else if len(c.PeerFingerprints) == 0 && c.TLSClient && !p.attempted["ca"] && !p.attempted["pkcs12"] && !p.attempted["peer-fingerprint"] {
		p.errf(0, "no way to authenticate the server: add ca or peer-fingerprint")
	}
	c.ExtraCerts = p.extra
	if p.extra != nil {
		c.src.extraCerts = encodeCerts(p.extra)
	}
	if p.certChain != nil && p.key != nil {
		c.Cert = buildCert(p.certChain, p.extra, p.key)
		c.src.cert = encodeCerts(p.certChain)
		c.src.key = p.keyPEM
	}
	if c.Cert == nil && c.AuthUserPass == nil && c.TLSClient && !p.attempted["cert"] && !p.attempted["key"] && !p.attempted["pkcs12"] && !p.attempted["auth-user-pass"] {
		p.errf(0, "no client credentials: add cert and key, pkcs12, or auth-user-pass")
	}
}

// decryptPending decrypts an encrypted key or PKCS#12 bundle with the passphrase from askpass
// or the caller.
func (p *parser) decryptPending() {
	var it *item
	switch {
	case p.encKey != nil:
		it = p.keyItem
	case p.encP12 != nil:
		it = p.p12Item
	default:
		return
	}
	what := "private key " + materialName(it)
	if it == p.p12Item {
		what = "PKCS#12 bundle " + materialName(it)
	}
	var pass []byte
	switch {
	case p.askpass != nil:
		pass = p.askpass
	case p.passphrase != nil:
		var err error
		if pass, err = p.passphrase(what); err != nil {
			p.errf(it.line, "%s is encrypted: reading its passphrase: %v", what, err)
			return
		}
		// The passphrase is not needed once the key is decrypted; do not keep it around.
		defer clear(pass)
	default:
		p.errf(it.line, "%s is encrypted and there is no passphrase for it: ovpnctl up and ovpnd run ask for it; ovpnd instance reads askpass FILE or the systemd credential askpass", what)
		return
	}
	if p.encKey != nil {
		k, norm, err := parseKeyWith(p.encKey, pass)
		if err != nil {
			p.errf(it.line, "%s: %v", what, err)
			return
		}
		p.key, p.keyPEM = k, norm
		return
	}
	k, cert, cas, err := parsePKCS12With(p.encP12, string(pass))
	if err != nil {
		p.errf(it.line, "%s: %v", what, err)
		return
	}
	p.p12Key, p.p12Cert, p.p12CAs = k, cert, cas
}

func materialName(it *item) string {
	if it.isInline {
		return fmt.Sprintf("(inline block on line %d)", it.blockLine)
	}
	return it.args[0]
}

func (p *parser) finishWrap() {
	w := &p.cfg.TLSWrap
	if p.keyDirItem != nil {
		kd := KeyDirection(p.keyDirItem.args[0][0] - '0')
		switch {
		case w.Mode == WrapTLSAuth && p.wrapDir != KeyDirBidi && p.wrapDir != kd:
			p.errf(p.keyDirItem.line, "key-direction %d conflicts with the direction %d given by tls-auth on line %d", kd, p.wrapDir, p.wrapItem.line)
		case w.Mode == WrapTLSAuth:
			w.Direction = kd
		case w.Mode == WrapTLSCrypt || w.Mode == WrapTLSCryptV2:
			p.warnf(p.keyDirItem.line, "key-direction has no effect with %s, whose directions are fixed", w.Mode)
		default:
			p.warnf(p.keyDirItem.line, "key-direction has no effect without tls-auth")
		}
	}
	if w.Mode == WrapTLSAuth && p.keyDirItem == nil {
		w.Direction = p.wrapDir
	}
	if w.Mode == WrapTLSAuth && w.Direction == KeyDirBidi {
		p.warnf(p.wrapItem.line, "tls-auth without a key direction uses the same keys both ways; servers normally use direction 0, so clients want \"key-direction 1\"")
	}
}

// finishConnections turns remotes and <connection> blocks into Connections.
func (p *parser) finishConnections() {
	g := p.global
	if len(p.blocks) > 0 && len(g.remotes) > 0 {
		p.errf(g.remotes[0].line, "remote outside <connection> conflicts with the <connection> block on line %d; put each remote in its own block", p.blocks[0].blockLn)
		return
	}
	if len(p.blocks) == 0 && len(g.remotes) == 0 && !p.attempted["remote"] && !p.attempted["connection"] {
		p.errf(0, "no remote: add \"remote HOST [PORT] [PROTO]\"")
		return
	}
	if len(p.blocks)+len(g.remotes) > MaxConnections {
		p.errf(0, "more than %d remotes", MaxConnections)
		return
	}
	if len(p.blocks) == 0 && len(g.remotes) == 0 {
		return
	}
	if len(p.blocks) == 0 {
		for _, r := range g.remotes {
			p.cfg.Connections = append(p.cfg.Connections, p.buildConn(g, nil, r))
		}
		return
	}
	for _, b := range p.blocks {
		if len(b.remotes) != 1 {
			p.errf(b.blockLn, "<connection> block must contain exactly one remote, found %d", len(b.remotes))
			continue
		}
		p.cfg.Connections = append(p.cfg.Connections, p.buildConn(g, b, b.remotes[0]))
	}
}

func (p *parser) buildConn(g, b *scope, remote *item) Connection {
	c := Connection{
		Port:                1194,
		ConnectRetry:        time.Second,
		ConnectRetryMaxWait: 300 * time.Second,
		ConnectTimeout:      120 * time.Second,
		Bind:                true,
		LocalPort:           1194,
	}
	var st connState
	apply := func(items []*item, withPort bool) {
		for _, it := range items {
			if (it.name == "port") == withPort {
				_ = applyConn(&c, &st, it)
			}
		}
	}
	apply(g.conn, true)
	apply(g.conn, false)
	if b != nil {
		apply(b.conn, true)
		apply(b.conn, false)
	}
	_ = applyConn(&c, &st, remote)
	// Like OpenVPN, a TCP client binds only when bind, lport or local asks for it; a UDP
	// client binds to 1194 unless the profile says nobind.
	if !st.bindSet && !st.lportSet && !st.localSet && c.Proto == ProtoTCP {
		c.Bind = false
	}
	if !c.Bind {
		c.LocalPort = 0
	}
	return c
}

// connState records which connection settings were given explicitly.
type connState struct {
	bindSet, lportSet, localSet, eenSet bool
}

// applyConn applies one connection-level directive. It is used twice: to validate while reading
// and to build each Connection in finish.
func applyConn(c *Connection, st *connState, it *item) error {
	a := it.args
	switch it.name {
	case "remote":
		if !validRemote(a[0]) {
			return fmt.Errorf("%q is not a host name or IP address", a[0])
		}
		c.Remote = a[0]
		if len(a) > 1 {
			n, err := parsePort(a[1])
			if err != nil {
				return err
			}
			c.Port = n
		}
		if len(a) > 2 {
			return parseProto(c, a[2])
		}
	case "proto":
		return parseProto(c, a[0])
	case "port":
		n, err := parsePort(a[0])
		if err != nil {
			return err
		}
		c.Port, c.LocalPort = n, n
	case "rport":
		n, err := parsePort(a[0])
		if err != nil {
			return err
		}
		c.Port = n
	case "lport":
		n, err := parsePort(a[0])
		if err != nil {
			return err
		}
		c.LocalPort, c.Bind, st.lportSet = n, true, true
	case "local":
		if !validRemote(a[0]) {
			return fmt.Errorf("%q is not a host name or IP address", a[0])
		}
		c.Local, c.Bind, st.localSet = a[0], true, true
	case "bind":
		if len(a) == 1 && a[0] != "ipv6only" {
			return fmt.Errorf("unknown flag %q (only ipv6only)", a[0])
		}
		c.Bind, st.bindSet = true, true
	case "nobind":
		c.Bind, st.bindSet = false, true
	case "connect-retry":
		d, err := parseSeconds(a[0])
		if err != nil {
			return err
		}
		c.ConnectRetry = d
		if len(a) > 1 {
			m, err := parseSeconds(a[1])
			if err != nil {
				return err
			}
			c.ConnectRetryMaxWait = m
		}
		if c.ConnectRetryMaxWait < c.ConnectRetry {
			c.ConnectRetryMaxWait = c.ConnectRetry
		}
	case "connect-retry-max":
		if a[0] == "unlimited" {
			c.ConnectRetryMax = 0
			return nil
		}
		n, err := parseInt(a[0], 1<<30)
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("must be at least 1 (or \"unlimited\")")
		}
		c.ConnectRetryMax = n
	case "connect-timeout", "server-poll-timeout":
		d, err := parseSeconds(a[0])
		if err != nil {
			return err
		}
		c.ConnectTimeout = d
	case "float":
		c.Float = true
	case "explicit-exit-notify":
		c.ExplicitExitNotify, st.eenSet = 1, true
		if len(a) > 0 {
			n, err := parseInt(a[0], 1000)
			if err != nil {
				return err
			}
			c.ExplicitExitNotify = n
		}
	default:
		return fmt.Errorf("internal: %s is not a connection directive", it.name)
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number between 0 and 65535", s)
	}
	return uint16(n), nil
}

func parseProto(c *Connection, s string) error {
	switch strings.ToLower(s) {
	case "udp":
		c.Proto, c.Family = ProtoUDP, FamilyAny
	case "udp4":
		c.Proto, c.Family = ProtoUDP, FamilyIPv4
	case "udp6":
		c.Proto, c.Family = ProtoUDP, FamilyIPv6
	case "tcp", "tcp-client":
		c.Proto, c.Family = ProtoTCP, FamilyAny
	case "tcp4", "tcp4-client":
		c.Proto, c.Family = ProtoTCP, FamilyIPv4
	case "tcp6", "tcp6-client":
		c.Proto, c.Family = ProtoTCP, FamilyIPv6
	case "tcp-server", "tcp4-server", "tcp6-server":
		return fmt.Errorf("%s is a server mode; ovpnd is a client", s)
	default:
		return fmt.Errorf("unknown protocol %q (want udp, udp4, udp6, tcp, tcp4, tcp6)", s)
	}
	return nil
}

// compresses reports whether c lets the server send compressed packets (a real algorithm,
// not just stub framing).
func compresses(c Compression) bool {
	switch c.Mode {
	case CompressOff, CompressStub, CompressStubV2:
		return false
	case CompressCompLZO:
		return c.CompLZO != "no"
	}
	return true
}
