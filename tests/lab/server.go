package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ServerOptions describe the OpenVPN server. The zero value is Debian's OpenVPN 2.6 as a UDP,
// topology subnet server on port 1194 without control-channel wrapping, with OpenVPN's default
// data ciphers.
type ServerOptions struct {
	// Version selects the server: "" or "2.6" is Debian's openvpn, "2.7" the OpenVPN 2.7.6
	// peer (RequireOpenVPN27; the test skips where it is missing).
	Version string
	// Proto is udp (default), tcp, udp6 or tcp6; the "6" forms make clients use the IPv6 underlay.
	Proto string
	// Port defaults to 1194.
	Port int
	// Topology is subnet (default) or net30.
	Topology string
	// Wrap is none (default), tls-auth, tls-crypt or tls-crypt-v2.
	Wrap string
	// DataCiphers is the server's data-ciphers list; empty keeps OpenVPN's default.
	DataCiphers []string
	// Cipher sets `cipher` (the fallback for clients without NCP).
	Cipher string
	// Auth sets `auth` (HMAC for CBC data channels and tls-auth).
	Auth string
	// CompLZO enables `comp-lzo yes` and `allow-compression yes`: the server compresses what it sends.
	CompLZO bool
	// RenegSec sets reneg-sec (server-initiated rekeys every N seconds); zero keeps the default.
	RenegSec int
	// UserPass turns on username/password authentication with auth-gen-token.
	UserPass *UserPass
	// AuthScript, when set, is the body of an auth-user-pass-verify script (via-file: $1 holds
	// the username and password lines; $auth_failed_reason_file is where a refusal's reason
	// goes). The server runs it with script-security 2 in its namespace; no auth-gen-token.
	AuthScript string
	// ManagementClientAuth opens the management interface on a unix socket with
	// management-client-auth: every client waits until the test decides through Management.
	ManagementClientAuth bool
	// Management opens the management interface on its unix socket without
	// management-client-auth (for commands such as OpenVPN 2.7's push-update-broad).
	Management bool
	// IPv6 adds `server-ipv6 fd00:8::/64`.
	IPv6 bool
	// Push lines are pushed verbatim (`push "LINE"`).
	Push []string
	// Keepalive is `keepalive A B`; zero means 10 60, negative values leave it out (the server
	// then pushes no ping options of its own).
	Keepalive [2]int
	// ExplicitExitNotify is the server's explicit-exit-notify count (UDP only); zero means 1,
	// negative leaves it out. On restart the server then tells clients to reconnect at once.
	ExplicitExitNotify int
	// Verb defaults to 3, which logs every line the lab waits for.
	Verb int
	// Extra lines are appended to the config as they are.
	Extra []string
}

// UserPass is the account the server's auth-user-pass-verify script accepts.
type UserPass struct {
	User, Pass string
	// SingleUse makes the script accept the password only once, so any later handshake must
	// present the auth-token the server generated.
	SingleUse bool
}

// Server is an OpenVPN server running in the lab's server namespace.
type Server struct {
	lab    *Lab
	opts   ServerOptions
	binary string
	// ConfigPath is the server config file.
	ConfigPath string
	dir        string

	mu      sync.Mutex
	proc    *Process
	oldLogs strings.Builder
}

// StartServer writes the config, starts openvpn and waits for "Initialization Sequence
// Completed" (at most 20 s).
func (l *Lab) StartServer(opts ServerOptions) *Server {
	l.tb.Helper()
	opts = opts.withDefaults()
	binary := "openvpn"
	switch opts.Version {
	case "2.6":
	case "2.7":
		binary = RequireOpenVPN27(l.tb)
	default:
		l.tb.Fatalf("lab: unknown server version %q", opts.Version)
	}
	dir := filepath.Join(l.Dir, fmt.Sprintf("server%d", l.fileSeq.Add(1)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	s := &Server{lab: l, opts: opts, binary: binary, dir: dir, ConfigPath: filepath.Join(dir, "server.conf")}
	conf, err := s.config()
	if err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	if err := os.WriteFile(s.ConfigPath, []byte(conf), 0o600); err != nil {
		l.tb.Fatalf("lab: writing server config: %v", err)
	}
	if err := s.start(); err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	l.tb.Cleanup(func() { s.Stop() })
	return s
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.Version == "" {
		o.Version = "2.6"
	}
	if o.Proto == "" {
		o.Proto = "udp"
	}
	if o.Port == 0 {
		o.Port = 1194
	}
	if o.Topology == "" {
		o.Topology = "subnet"
	}
	if o.Wrap == "" {
		o.Wrap = "none"
	}
	if o.Keepalive == [2]int{} {
		o.Keepalive = [2]int{10, 60}
	}
	if o.ExplicitExitNotify == 0 {
		o.ExplicitExitNotify = 1
	}
	if o.Verb == 0 {
		o.Verb = 3
	}
	return o
}

// Options returns the options the server runs with (defaults filled in).
func (s *Server) Options() ServerOptions { return s.opts }

func (s *Server) isUDP() bool { return strings.HasPrefix(s.opts.Proto, "udp") }

// UnderlayAddr is the address clients connect to: the IPv6 underlay for udp6/tcp6.
func (s *Server) UnderlayAddr() string {
	if strings.HasSuffix(s.opts.Proto, "6") {
		return ServerUnderlay6
	}
	return ServerUnderlay4
}

// TunnelAddr is the server's IPv4 address inside the tunnel.
func (s *Server) TunnelAddr() string { return ServerTunnel4 }

// ClientTunnelAddr is the IPv4 address the server gives its first client: .2 with topology
// subnet, .6 (the second /30) with net30.
func (s *Server) ClientTunnelAddr() string {
	if s.opts.Topology == "net30" {
		return "10.8.0.6"
	}
	return "10.8.0.2"
}

func (s *Server) config() (string, error) {
	o := s.opts
	p := s.lab.pki
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# generated by ovpnd tests/lab")
	w("dev tun")
	w("proto %s", o.Proto)
	w("port %d", o.Port)
	w("topology %s", o.Topology)
	w("server 10.8.0.0 255.255.255.0")
	if o.IPv6 {
		w("server-ipv6 %s", tunnelNet6)
	}
	w("ca %s", p.CACert)
	w("cert %s", p.ServerCert)
	w("key %s", p.ServerKey)
	w("dh none")
	switch o.Wrap {
	case "none":
	case "tls-auth":
		w("tls-auth %s 0", p.TLSAuthKey)
	case "tls-crypt":
		w("tls-crypt %s", p.TLSCryptKey)
	case "tls-crypt-v2":
		w("tls-crypt-v2 %s", p.TLSCryptV2Server)
	default:
		return "", fmt.Errorf("unknown wrap %q", o.Wrap)
	}
	if len(o.DataCiphers) > 0 {
		w("data-ciphers %s", strings.Join(o.DataCiphers, ":"))
	}
	if o.Cipher != "" {
		w("cipher %s", o.Cipher)
	}
	if o.Auth != "" {
		w("auth %s", o.Auth)
	}
	if o.CompLZO {
		w("allow-compression yes")
		w("comp-lzo yes")
	}
	if o.RenegSec > 0 {
		w("reneg-sec %d", o.RenegSec)
	}
	if up := o.UserPass; up != nil {
		script, err := s.writeAuthScript(up)
		if err != nil {
			return "", err
		}
		w("script-security 2")
		w("auth-user-pass-verify %s via-file", script)
		w("tmp-dir %s", s.dir)
		if o.RenegSec > 0 && o.RenegSec < 120 {
			// The token renewal period defaults to reneg-sec, and OpenVPN insists on at least
			// twice hand-window (2 x 60 s); the token stays valid across the short rekeys anyway.
			w("auth-gen-token 0 120")
		} else {
			w("auth-gen-token")
		}
	}
	if o.AuthScript != "" {
		path := filepath.Join(s.dir, "auth-script.sh")
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+o.AuthScript), 0o700); err != nil {
			return "", fmt.Errorf("writing auth script: %w", err)
		}
		w("script-security 2")
		w("auth-user-pass-verify %s via-file", path)
		w("tmp-dir %s", s.dir)
	}
	if o.ManagementClientAuth || o.Management {
		w("management %s unix", s.ManagementSocket())
	}
	if o.ManagementClientAuth {
		w("management-client-auth")
		// Pending authentication needs no password from the client.
		w("auth-user-pass-optional")
	}
	for _, line := range o.Push {
		w("push %q", line)
	}
	if o.Keepalive[0] >= 0 && o.Keepalive[1] >= 0 {
		w("keepalive %d %d", o.Keepalive[0], o.Keepalive[1])
	}
	if s.isUDP() && o.ExplicitExitNotify > 0 {
		w("explicit-exit-notify %d", o.ExplicitExitNotify)
	}
	w("verb %d", o.Verb)
	for _, line := range o.Extra {
		w("%s", line)
	}
	return b.String(), nil
}

// writeAuthScript writes the auth-user-pass-verify script. OpenVPN passes a file whose first
// line is the username and second the password; exit 0 accepts. Each accepted call is logged
// to auth-calls so tests can count how often the password itself was checked.
func (s *Server) writeAuthScript(up *UserPass) (string, error) {
	for _, v := range []string{up.User, up.Pass} {
		if v == "" || strings.ContainsAny(v, "'\n\\") {
			return "", fmt.Errorf("username/password %q unusable in the lab's shell script", v)
		}
	}
	single := ""
	if up.SingleUse {
		single = fmt.Sprintf("mkdir '%s' 2>/dev/null || exit 1\n", filepath.Join(s.dir, "password-used"))
	}
	script := fmt.Sprintf(`#!/bin/sh
# Lab auth check: accepts exactly one account.
user=$(sed -n 1p "$1")
pass=$(sed -n 2p "$1")
[ "$user" = '%s' ] && [ "$pass" = '%s' ] || exit 1
%secho "$user" >> '%s'
exit 0
`, up.User, up.Pass, single, filepath.Join(s.dir, "auth-calls"))
	path := filepath.Join(s.dir, "auth-check.sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		return "", fmt.Errorf("writing auth script: %w", err)
	}
	return path, nil
}

// AuthScriptCalls counts how often the auth script accepted the password.
func (s *Server) AuthScriptCalls() int {
	b, err := os.ReadFile(filepath.Join(s.dir, "auth-calls"))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

func (s *Server) start() error {
	proc, err := startProcess(s.lab.ServerNS, s.binary, "--cd", s.dir, "--config", s.ConfigPath)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := proc.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
		proc.Kill()
		return fmt.Errorf("starting openvpn %s server: %w\n--- server log ---\n%s", s.opts.Version, err, proc.Output())
	}
	return nil
}

// PID is the running openvpn server's process id (0 when stopped).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return 0
	}
	return s.proc.PID()
}

// Log returns the server's output, including that of earlier runs before a Restart.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := ""
	if s.proc != nil {
		cur = s.proc.Output()
	}
	return s.oldLogs.String() + cur
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s) and returns the exit error.
func (s *Server) Stop() error {
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.Stop(10 * time.Second)
}

// Restart stops the server and starts it again with the same config, as an admin restarting
// the service would; connected clients must reconnect.
func (s *Server) Restart() {
	s.lab.tb.Helper()
	if err := s.Stop(); err != nil {
		s.lab.tb.Logf("lab: server stop before restart: %v", err)
	}
	s.mu.Lock()
	if s.proc != nil {
		s.oldLogs.WriteString(s.proc.Output())
		s.oldLogs.WriteString("\n===== lab: server restarted =====\n")
	}
	s.mu.Unlock()
	if err := s.start(); err != nil {
		s.lab.tb.Fatalf("lab: restarting server: %v", err)
	}
}

// ClientOptions shape the client config produced by Server.ClientConfig.
type ClientOptions struct {
	// Files references key material by absolute path instead of inlining it as <ca>...</ca>.
	Files bool
	// Verb defaults to 3.
	Verb int
	// Proto overrides the server's proto (for example to test a mismatch).
	Proto string
	// Remote overrides the address to connect to.
	Remote string
	// Password overrides the password written to the credentials file.
	Password string
	// Extra lines are appended as they are.
	Extra []string
}

// defaultDataCiphers is OpenVPN 2.6's client default; a client config only needs data-ciphers
// when the server insists on something outside it.
var defaultDataCiphers = []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}

// ClientConfig returns a client config for this server in OpenVPN syntax, valid for both
// `openvpn --config` and `ovpnd run`. With UserPass it writes the credentials file into the lab
// dir and references it.
func (s *Server) ClientConfig(co ClientOptions) string {
	s.lab.tb.Helper()
	o := s.opts
	p := s.lab.pki
	if co.Verb == 0 {
		co.Verb = 3
	}
	proto := o.Proto
	if co.Proto != "" {
		proto = co.Proto
	}
	remote := s.UnderlayAddr()
	if co.Remote != "" {
		remote = co.Remote
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# generated by ovpnd tests/lab")
	w("client")
	w("dev tun")
	w("proto %s", proto)
	w("remote %s %d", remote, o.Port)
	w("nobind")
	w("remote-cert-tls server")
	w("verify-x509-name server name")
	// Reconnects after a server restart should not wait for OpenVPN's 300 s back-off cap.
	w("connect-retry 1 5")
	key := func(tag, path string) {
		if co.Files {
			w("%s %s", tag, path)
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			s.lab.tb.Fatalf("lab: reading %s: %v", path, err)
		}
		w("<%s>\n%s</%s>", tag, strings.TrimRight(string(data), "\n")+"\n", tag)
	}
	key("ca", p.CACert)
	key("cert", p.ClientCert)
	key("key", p.ClientKey)
	switch o.Wrap {
	case "tls-auth":
		if co.Files {
			w("tls-auth %s 1", p.TLSAuthKey)
		} else {
			w("key-direction 1")
			key("tls-auth", p.TLSAuthKey)
		}
	case "tls-crypt":
		key("tls-crypt", p.TLSCryptKey)
	case "tls-crypt-v2":
		key("tls-crypt-v2", p.TLSCryptV2Client)
	}
	for _, c := range o.DataCiphers {
		if !slices.Contains(defaultDataCiphers, c) {
			w("data-ciphers %s", strings.Join(o.DataCiphers, ":"))
			break
		}
	}
	if o.Auth != "" {
		w("auth %s", o.Auth)
	}
	if o.CompLZO {
		// The server frames every packet with the comp-lzo byte; the client must expect it.
		w("comp-lzo")
	}
	if up := o.UserPass; up != nil {
		pass := up.Pass
		if co.Password != "" {
			pass = co.Password
		}
		path := s.lab.WriteFile(fmt.Sprintf("credentials%d.txt", s.lab.fileSeq.Add(1)), up.User+"\n"+pass+"\n")
		w("auth-user-pass %s", path)
	}
	w("verb %d", co.Verb)
	for _, line := range co.Extra {
		w("%s", line)
	}
	return b.String()
}
