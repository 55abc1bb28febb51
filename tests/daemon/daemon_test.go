package daemon

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/tests/lab"
)

const (
	labUser = "alice"
	labPass = "s3cret-pass"
)

// promptingConfig is the lab's client config with credentials left to be asked for.
func promptingConfig(srv *lab.Server) string {
	cfg := srv.ClientConfig(lab.ClientOptions{})
	return regexp.MustCompile(`(?m)^auth-user-pass .*$`).ReplaceAllString(cfg, "auth-user-pass")
}

// writeOwned writes a file only u can read.
func writeOwned(t *testing.T, dir, name, content string, u testUser) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDaemon runs `ovpnd daemon` on a private bus inside the client namespace of a lab and
// drives it with ovpnctl as two unprivileged users and as root.
func TestDaemon(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", UserPass: &lab.UserPass{User: labUser, Pass: labPass}})
	before := l.ClientNetState()

	shared := sharedDir(t)
	ovpnd := copyExecutable(t, repoPath(t, "bin/ovpnd"), shared)
	ovpnctl := copyExecutable(t, repoPath(t, "bin/ovpnctl"), shared)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := copyExecutable(t, self, shared)
	addr := startBus(t, shared)
	alice, bob := addUser(t, "a"), addUser(t, "b")
	pk := startPolkit(t, addr, map[uint32]map[string]bool{
		uint32(alice.uid): {api.ActionStart: true},
		// Bob may not start any session.
		uint32(bob.uid): {},
	})
	notify := listenNotify(t, shared)
	d := startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + notify.path}, ovpnd, "daemon", "--bus", addr, "--state-dir", filepath.Join(l.Dir, "state"))
	notify.wait(t, "READY=1", 10*time.Second)

	userDir := sharedDir(t)
	aliceCfg := writeOwned(t, userDir, "work.conf", promptingConfig(srv), alice)
	call := func(u *testUser, dest, path, method string, args ...string) string {
		t.Helper()
		out, stderr, code := runAs(t, u, addr, []string{helperEnv + "=" + dest + "|" + path + "|" + method}, "", append([]string{helper}, args...)...)
		if code != 0 {
			t.Fatalf("helper: %s %s", out, stderr)
		}
		return strings.TrimSpace(out)
	}

	t.Run("up as user with prompted credentials", func(t *testing.T) {
		out, stderr, code := runAs(t, &alice, addr, nil, labUser+"\n"+labPass+"\n", ovpnctl, "up", "--name", "work", aliceCfg)
		if code != 0 {
			t.Fatalf("ovpnctl up: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
		}
		if !strings.Contains(out, "connected") || !strings.Contains(out, srv.ClientTunnelAddr()) {
			t.Errorf("ovpnctl up printed %q, want the tunnel address %s", out, srv.ClientTunnelAddr())
		}
		if !strings.Contains(stderr, "Auth Password") {
			t.Errorf("no password prompt in %q", stderr)
		}
		if strings.Contains(out+stderr, labPass) {
			t.Error("the password was echoed")
		}
	})
	// Session paths are opaque: ask the manager (as root, who sees every session).
	var path string
	func() {
		c, err := dbus.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var p dbus.ObjectPath
		if err := c.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Lookup", 0, "work").Store(&p); err != nil {
			t.Fatalf("Lookup(work) as root: %v", err)
		}
		path = string(p)
	}()

	t.Run("status as owner", func(t *testing.T) {
		out, stderr, code := runAs(t, &alice, addr, nil, "", ovpnctl, "status", "--json", "work")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var info struct {
			Name    string   `json:"name"`
			Owner   int      `json:"owner"`
			State   string   `json:"state"`
			Addrs   []string `json:"tunnel_addresses"`
			Device  string   `json:"device"`
			Cipher  string   `json:"cipher"`
			BytesIn uint64   `json:"bytes_in"`
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if info.Name != "work" || info.Owner != alice.uid || info.State != api.StateConnected || info.Device == "" || info.Cipher != "AES-256-GCM" || len(info.Addrs) == 0 || !strings.HasPrefix(info.Addrs[0], srv.ClientTunnelAddr()+"/") {
			t.Errorf("status %+v", info)
		}
		if out, _, code := runAs(t, &alice, addr, nil, "", ovpnctl, "log", "work"); code != 0 || !strings.Contains(out, "Initialization Sequence Completed") {
			t.Errorf("ovpnctl log: exit %d: %s", code, out)
		}
		if out, _, code := runAs(t, &alice, addr, nil, "", ovpnctl, "stats", "--json", "work"); code != 0 || !strings.Contains(out, "bytes_in") {
			t.Errorf("ovpnctl stats: exit %d: %s", code, out)
		}
		if out, _, code := runAs(t, nil, addr, nil, "", ovpnctl, "list"); code != 0 || !strings.Contains(out, "work") || !strings.Contains(out, alice.name) {
			t.Errorf("root ovpnctl list: exit %d: %s", code, out)
		}
	})

	t.Run("another user is shut out", func(t *testing.T) {
		for _, c := range []struct {
			method string
			args   []string
		}{
			{api.SessionInterface + ".Disconnect", nil},
			{api.SessionInterface + ".Restart", nil},
			{api.SessionInterface + ".LogHistory", nil},
			{api.SessionInterface + ".PendingInput", nil},
			{api.SessionInterface + ".ProvideInput", []string{"u:1", "s:guess"}},
			{api.SessionInterface + ".Subscribe", nil},
			{api.PropertiesInterface + ".GetAll", []string{"s:" + api.SessionInterface}},
		} {
			if got := call(&bob, api.BusName, path, c.method, c.args...); got != api.ErrNotFound {
				t.Errorf("%s by another user: %s, want %s", c.method, got, api.ErrNotFound)
			}
		}
		if _, _, code := runAs(t, &bob, addr, nil, "", ovpnctl, "down", "work"); code != 3 {
			t.Errorf("ovpnctl down of another user's session: exit %d, want 3 (not found)", code)
		}
		bobCfg := writeOwned(t, userDir, "bob.conf", promptingConfig(srv), bob)
		_, stderr, code := runAs(t, &bob, addr, nil, "", ovpnctl, "up", bobCfg)
		if code != 4 || !strings.Contains(stderr, "polkit") {
			t.Errorf("ovpnctl up without net.ovpnd1.start: exit %d, want 4: %s", code, stderr)
		}
		// The session is still up.
		out, _, _ := runAs(t, &alice, addr, nil, "", ovpnctl, "status", "--json", "work")
		if !strings.Contains(out, `"connected"`) {
			t.Errorf("session disturbed: %s", out)
		}
	})

	t.Run("profile naming files is refused unread", func(t *testing.T) {
		watched := sharedDir(t)
		secret := filepath.Join(watched, "secret.pem")
		if err := os.WriteFile(secret, []byte("not a key\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if _, err := unix.InotifyAddWatch(fd, watched, unix.IN_OPEN|unix.IN_ACCESS); err != nil {
			t.Fatal(err)
		}
		for _, profile := range []string{
			"client\nremote 192.0.2.1 1194\nca " + secret + "\ncert /etc/shadow\nkey /etc/shadow\n",
			"client\nremote 192.0.2.1 1194\nauth-user-pass " + secret + "\n<ca>\n</ca>\n",
		} {
			got := call(&alice, api.BusName, api.ManagerPath, api.ManagerInterface+".Start", "s:files", "s:"+profile, "a{sv}")
			if got != api.ErrInvalidProfile {
				t.Errorf("Start with file references: %s, want %s", got, api.ErrInvalidProfile)
			}
		}
		buf := make([]byte, 4096)
		if n, _ := unix.Read(fd, buf); n > 0 {
			t.Errorf("something opened a file in %s (%d bytes of inotify events)", watched, n)
		}
	})

	t.Run("introspection matches the XML", func(t *testing.T) {
		c, err := dbus.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var want introspect.Node
		if err := xml.Unmarshal([]byte(api.Introspection), &want); err != nil {
			t.Fatal(err)
		}
		got := map[string]introspect.Interface{}
		for _, p := range []string{api.ManagerPath, path} {
			var text string
			if err := c.Object(api.BusName, dbus.ObjectPath(p)).Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&text); err != nil {
				t.Fatal(err)
			}
			var n introspect.Node
			if err := xml.Unmarshal([]byte(text), &n); err != nil {
				t.Fatal(err)
			}
			for _, i := range n.Interfaces {
				if strings.HasPrefix(i.Name, "net.ovpnd1.") {
					got[i.Name] = i
				}
			}
		}
		for _, w := range want.Interfaces {
			if diff := cmp.Diff(w, got[w.Name]); diff != "" {
				t.Errorf("%s differs from dbus/net.ovpnd1.xml (-xml +live):\n%s", w.Name, diff)
			}
		}
		// A property read proves the handlers behind the description answer.
		v, err := c.Object(api.BusName, api.ManagerPath).GetProperty(api.ManagerInterface + ".Version")
		if err != nil || v.Value() != api.Version {
			t.Errorf("Version = %v, %v", v, err)
		}
	})

	t.Run("owner disconnects", func(t *testing.T) {
		out, stderr, code := runAs(t, &alice, addr, nil, "", ovpnctl, "down", "work")
		if code != 0 || !strings.Contains(out, "disconnected") {
			t.Fatalf("ovpnctl down: exit %d: %s %s", code, out, stderr)
		}
		// Owners stop their own sessions without polkit (from any login).
		if pkAsked(pk, fmt.Sprintf("%d:net.ovpnd1.manage", alice.uid)) {
			t.Error("polkit was asked whether the owner may stop her own session")
		}
	})

	t.Run("up as user with an encrypted key", func(t *testing.T) {
		// ovpnctl decrypts the key as alice, asking for its passphrase; the daemon gets the
		// decrypted key inline and never sees the passphrase or the file.
		const keyPass = "alice key passphrase"
		encKey := filepath.Join(userDir, "enc.key")
		if out, err := exec.Command("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", l.PKI().ClientKey,
			"-passout", "pass:"+keyPass, "-out", encKey).CombinedOutput(); err != nil {
			t.Fatalf("openssl pkcs8: %v\n%s", err, out)
		}
		if err := os.Chown(encKey, alice.uid, alice.gid); err != nil {
			t.Fatal(err)
		}
		cfg := writeOwned(t, userDir, "enc.conf", promptingConfig(srv)+"key enc.key\n", alice)
		out, stderr, code := runAs(t, &alice, addr, nil, keyPass+"\n"+labUser+"\n"+labPass+"\n", ovpnctl, "up", "--name", "enc", cfg)
		if code != 0 {
			t.Fatalf("ovpnctl up: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
		}
		if !strings.Contains(out, "connected") || !strings.Contains(out, srv.ClientTunnelAddr()) {
			t.Errorf("ovpnctl up printed %q, want the tunnel address %s", out, srv.ClientTunnelAddr())
		}
		if !strings.Contains(stderr, "Enter Private Key Password for private key enc.key") {
			t.Errorf("no passphrase prompt in %q", stderr)
		}
		if strings.Contains(out+stderr+d.out.String(), keyPass) {
			t.Error("the passphrase was echoed or reached the daemon's log")
		}
		if out, stderr, code := runAs(t, &alice, addr, nil, "", ovpnctl, "down", "enc"); code != 0 {
			t.Errorf("ovpnctl down: exit %d: %s %s", code, out, stderr)
		}
	})

	t.Run("crl-verify reaches the daemon inline and is enforced", func(t *testing.T) {
		// A CRL from the lab's CA revoking the server's certificate, made with openssl ca.
		dir := t.TempDir()
		cnf := filepath.Join(dir, "ca.cnf")
		files := map[string]string{"index.txt": "", "crlnumber": "1000\n",
			"ca.cnf": "[ca]\ndefault_ca = lab\n[lab]\ndatabase = " + filepath.Join(dir, "index.txt") +
				"\ncrlnumber = " + filepath.Join(dir, "crlnumber") + "\ndefault_md = sha256\ndefault_crl_days = 1\n"}
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		pki := l.PKI()
		caArgs := []string{"-config", cnf, "-cert", pki.CACert, "-keyfile", filepath.Join(pki.Dir, "ca.key")}
		crl := filepath.Join(userDir, "crl.pem")
		for _, args := range [][]string{append([]string{"ca", "-revoke", pki.ServerCert}, caArgs...), append([]string{"ca", "-gencrl", "-out", crl}, caArgs...)} {
			if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl %v: %v\n%s", args, err, out)
			}
		}
		if err := os.Chown(crl, alice.uid, alice.gid); err != nil {
			t.Fatal(err)
		}
		cfg := writeOwned(t, userDir, "crl.conf", promptingConfig(srv)+"crl-verify crl.pem\n", alice)
		out, stderr, code := runAs(t, &alice, addr, nil, labUser+"\n"+labPass+"\n", ovpnctl, "up", "--name", "crl", "--timeout", "6s", "--verbose", cfg)
		if code == 0 {
			t.Fatalf("ovpnctl up connected to a revoked server:\n%s\n%s", out, stderr)
		}
		if !strings.Contains(stderr, `crl-verify: certificate "server" (chain depth 0): revoked (serial 2`) {
			t.Errorf("the session log does not say the server is revoked:\n%s", stderr)
		}
	})

	t.Run("SIGTERM stops sessions cleanly", func(t *testing.T) {
		rootCfg := l.WriteFile("root.conf", promptingConfig(srv))
		out, stderr, code := runAs(t, nil, addr, nil, labUser+"\n"+labPass+"\n", ovpnctl, "up", "--name", "rootvpn", rootCfg)
		if code != 0 {
			t.Fatalf("root ovpnctl up: exit %d: %s %s", code, out, stderr)
		}
		if code := d.stop(t, 20*time.Second); code != 0 {
			t.Errorf("ovpnd daemon exit status %d after SIGTERM", code)
		}
		notify.wait(t, "STOPPING=1", time.Second)
		if after := l.ClientNetState(); after.String() != before.String() {
			t.Errorf("client namespace changed:\nbefore: %s\nafter:  %s", before, after)
		}
		if !strings.Contains(d.out.String(), "rootvpn") {
			t.Errorf("daemon log lacks the session name:\n%s", d.out.String())
		}
	})
}

func pkAsked(p *fakePolkit, what string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.asked {
		if a == what {
			return true
		}
	}
	return false
}

// TestInstance runs `ovpnd instance` as ovpnd@NAME.service would: credentials from
// $CREDENTIALS_DIRECTORY, READY=1 only once the tunnel is up, listed by ovpnctl.
func TestInstance(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", UserPass: &lab.UserPass{User: labUser, Pass: labPass}})
	shared := sharedDir(t)
	ovpnd := copyExecutable(t, repoPath(t, "bin/ovpnd"), shared)
	ovpnctl := copyExecutable(t, repoPath(t, "bin/ovpnctl"), shared)
	addr := startBus(t, shared)
	notify := listenNotify(t, shared)
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "auth-user-pass"), []byte(labUser+"\n"+labPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The client key is encrypted; its passphrase comes from the systemd credential askpass
	// (LoadCredential=askpass:FILE), as ovpnd@NAME has no terminal to ask on.
	const keyPass = "instance key passphrase"
	encKey := filepath.Join(l.Dir, "inst-enc.key")
	if out, err := exec.Command("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", l.PKI().ClientKey,
		"-passout", "pass:"+keyPass, "-out", encKey).CombinedOutput(); err != nil {
		t.Fatalf("openssl pkcs8: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(creds, "askpass"), []byte(keyPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := l.WriteFile("inst.conf", promptingConfig(srv)+"key "+encKey+"\n")
	d := startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + notify.path, "CREDENTIALS_DIRECTORY=" + creds, "WATCHDOG_USEC=400000"},
		ovpnd, "instance", "--config", cfg, "--bus", addr, "--state-dir", filepath.Join(l.Dir, "state"), "lab-1")
	notify.wait(t, "STATUS=connecting*", 10*time.Second)
	for _, line := range notify.lines() {
		if line == "READY=1" {
			t.Fatal("READY=1 before the tunnel was up")
		}
	}
	notify.wait(t, "READY=1", 20*time.Second)
	notify.wait(t, "STATUS=connected to *", time.Second)
	notify.wait(t, "WATCHDOG=1", 2*time.Second)

	out, stderr, code := runAs(t, nil, addr, nil, "", ovpnctl, "status", "lab-1")
	if code != 0 || !strings.Contains(out, "connected") || !strings.Contains(out, "ovpnd@lab-1.service") {
		t.Errorf("ovpnctl status of an instance: exit %d: %s %s", code, out, stderr)
	}
	if out, _, _ := runAs(t, nil, addr, nil, "", ovpnctl, "list"); !strings.Contains(out, "lab-1") {
		t.Errorf("ovpnctl list lacks the instance: %s", out)
	}
	if code := d.stop(t, 15*time.Second); code != 0 {
		t.Errorf("instance exit status %d after SIGTERM", code)
	}
	notify.wait(t, "STOPPING=1", time.Second)
}

// TestSystemdUnits checks the units with systemd-analyze verify when it is installed.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (apt package systemd)")
	}
	dir := t.TempDir()
	bin, err := filepath.Abs(repoPath(t, "bin/ovpnd"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("bin/ovpnd not built: %v", err)
	}
	for _, u := range []string{"ovpnd.service", "ovpnd@.service"} {
		data, err := os.ReadFile(repoPath(t, "systemd/"+u))
		if err != nil {
			t.Fatal(err)
		}
		// verify checks that ExecStart binaries exist; point them at this checkout's.
		text := strings.ReplaceAll(string(data), "/usr/sbin/ovpnd", bin)
		if err := os.WriteFile(filepath.Join(dir, u), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "ovpnd.service", "ovpnd@lab.service")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
