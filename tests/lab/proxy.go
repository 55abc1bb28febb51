package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ProxyAddr is where the lab's proxies listen: an address on the server namespace's loopback
// that the client reaches through its default gateway (the server's veth address), so a
// tunnel that routed everything through itself would cut the client off from its proxy unless
// the proxy's address is kept out of the tunnel.
const ProxyAddr = "192.0.2.10"

// Proxy is squid or dante running in the server namespace.
type Proxy struct {
	lab  *Lab
	proc *Process
	// Port is the port it listens on at ProxyAddr.
	Port int
	log  string
}

// Log is the proxy's own log: squid's access.log, dante's log file.
func (p *Proxy) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// CredsFile writes a proxy credentials file (username line, password line) and returns its path.
func (p *Proxy) CredsFile(user, pass string) string {
	return p.lab.WriteFile(fmt.Sprintf("proxy-creds%d.txt", p.lab.fileSeq.Add(1)), user+"\n"+pass+"\n")
}

// Output is what the process wrote to stdout and stderr.
func (p *Proxy) Output() string { return p.proc.Output() }

// addProxyAddr puts ProxyAddr on the server's loopback once per lab.
func (l *Lab) addProxyAddr() {
	l.tb.Helper()
	if out, _ := exec.Command("ip", "-n", l.ServerNS, "-o", "addr", "show", "dev", "lo").Output(); strings.Contains(string(out), ProxyAddr+"/") {
		return
	}
	l.AddServerUnderlayAddr(ProxyAddr+"/32", "lo")
}

// proxyDir makes a directory the proxies' unprivileged users can use: squid and dante drop
// root after binding, and the lab's own directory is private.
func (l *Lab) proxyDir(name string) string {
	l.tb.Helper()
	dir, err := os.MkdirTemp("", l.ServerNS+"-"+name+"-")
	if err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	l.tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	return dir
}

// StartSquid runs squid as an HTTP proxy on ProxyAddr that allows CONNECT from the client
// namespace. With users (name → password) it requires Basic authentication, checked by squid's
// basic_ncsa_auth against an htpasswd file made with `openssl passwd -apr1`.
func (l *Lab) StartSquid(users map[string]string) *Proxy {
	l.tb.Helper()
	for _, p := range []string{"/usr/sbin/squid", "/usr/lib/squid/basic_ncsa_auth"} {
		if _, err := os.Stat(p); err != nil {
			l.tb.Skipf("squid is not installed (run .ci/install-deps): %v", err)
		}
	}
	l.addProxyAddr()
	dir := l.proxyDir("squid")
	port := l.nextPort()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("http_port %s:%d", ProxyAddr, port)
	w("pid_filename %s/squid.pid", dir)
	w("access_log stdio:%s/access.log", dir)
	w("cache_log %s/cache.log", dir)
	w("cache_store_log none")
	w("coredump_dir %s", dir)
	w("cache deny all")
	w("shutdown_lifetime 0 seconds")
	w("dns_nameservers 127.0.0.1")
	w("acl lab src %s/24", ClientUnderlay4)
	w("acl CONNECT method CONNECT")
	if len(users) > 0 {
		var pw strings.Builder
		for u, p := range users {
			out, err := exec.Command("openssl", "passwd", "-apr1", p).Output()
			if err != nil {
				l.tb.Fatalf("lab: openssl passwd: %v", err)
			}
			fmt.Fprintf(&pw, "%s:%s\n", u, strings.TrimSpace(string(out)))
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(pw.String()), 0o644); err != nil {
			l.tb.Fatalf("lab: %v", err)
		}
		w("auth_param basic program /usr/lib/squid/basic_ncsa_auth %s", htpasswd)
		w("auth_param basic realm ovpnd-lab")
		w("acl authed proxy_auth REQUIRED")
		w("http_access allow CONNECT lab authed")
	} else {
		w("http_access allow CONNECT lab")
	}
	w("http_access deny all")
	conf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	p := &Proxy{lab: l, Port: port, log: filepath.Join(dir, "access.log")}
	p.proc = l.StartServerProcess("/usr/sbin/squid", "-N", "-d", "1", "-f", conf)
	if err := l.waitListening(strconv.Itoa(port), p.proc, 20*time.Second); err != nil {
		cache, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
		l.tb.Fatalf("lab: squid: %v\n%s", err, cache)
	}
	return p
}

// StartDante runs dante's danted as a SOCKS5 proxy on ProxyAddr that lets the client namespace
// CONNECT and UDP ASSOCIATE to the server namespace. It sends from the server's underlay
// address: OpenVPN answers a UDP datagram from the address the kernel picks for the reply,
// which must be the one the relay sent to. Without a user it needs no authentication; with
// one it requires RFC 1929 username/password, which dante checks against the system's user
// database, so a system user with that password exists while the test runs (removed by a
// cleanup).
func (l *Lab) StartDante(user, pass string) *Proxy {
	l.tb.Helper()
	if _, err := os.Stat("/usr/sbin/danted"); err != nil {
		l.tb.Skipf("dante-server is not installed (run .ci/install-deps): %v", err)
	}
	method := "none"
	if user != "" {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user).CombinedOutput(); err != nil {
			l.tb.Skipf("lab: useradd %s: %v: %s", user, err, out)
		}
		l.tb.Cleanup(func() { exec.Command("userdel", user).Run() })
		cmd := exec.Command("chpasswd")
		cmd.Stdin = strings.NewReader(user + ":" + pass + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			l.tb.Fatalf("lab: chpasswd: %v: %s", err, out)
		}
		method = "username"
	}
	l.addProxyAddr()
	dir := l.proxyDir("dante")
	port := l.nextPort()
	logPath := filepath.Join(dir, "danted.log")
	conf := fmt.Sprintf(`logoutput: %s
internal: %s port = %d
external: %s
socksmethod: %s
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
	from: %s/24 to: 0.0.0.0/0
	log: connect disconnect error
}
socks pass {
	from: %s/24 to: 0.0.0.0/0
	command: connect udpassociate
	log: connect disconnect error
}
socks pass {
	from: 0.0.0.0/0 to: %s/24
	command: udpreply
	log: connect disconnect error
}
`, logPath, ProxyAddr, port, ServerUnderlay4, method, ClientUnderlay4, ClientUnderlay4, ClientUnderlay4)
	confPath := filepath.Join(dir, "danted.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	p := &Proxy{lab: l, Port: port, log: logPath}
	p.proc = l.StartServerProcess("/usr/sbin/danted", "-f", confPath, "-p", filepath.Join(dir, "danted.pid"), "-N", "1")
	if err := l.waitListening(strconv.Itoa(port), p.proc, 20*time.Second); err != nil {
		log, _ := os.ReadFile(logPath)
		l.tb.Fatalf("lab: danted: %v\n%s%s", err, log, p.proc.Output())
	}
	return p
}

// WaitLog waits until the proxy's log contains substr.
func (p *Proxy) WaitLog(ctx context.Context, substr string) error {
	for !strings.Contains(p.Log(), substr) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy log has no %q: %w\n%s", substr, ctx.Err(), p.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
