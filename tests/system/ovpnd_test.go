package system

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }

// debPath returns the package under test: $OVPND_DEB (make test builds it with `make deb`,
// which also runs lintian), or one built now from this tree.
func debPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OVPND_DEB"); p != "" {
		return p
	}
	out, err := exec.Command("../../packaging/deb/build.sh", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("building the package: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// instanceProfile turns a lab client config into an /etc/ovpnd profile: the credentials come
// from the unit (LoadCredential) or from `ovpnctl auth`, never from a lab path.
func instanceProfile(cfg string) string {
	re := regexp.MustCompile(`(?m)^auth-user-pass .*$`)
	return re.ReplaceAllString(cfg, "auth-user-pass")
}

// netState is what a tunnel must leave as it found: routes of both families, addresses and
// resolved's view of every link.
func netState(t *testing.T, m *Machine) string {
	t.Helper()
	return m.MustSh(t, `ip -4 route show table all; ip -6 route show table all | grep -v -e '^local' -e '^multicast' -e 'fe80::/64'; ip -br addr | grep -v '^tun'; resolvectl status --no-pager | grep -v -e 'Current DNS Server' `)
}

// waitUnit polls systemctl until the unit's ActiveState is want.
func waitUnit(t *testing.T, m *Machine, unit, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		last = strings.TrimSpace(m.MustSh(t, "systemctl show -P ActiveState "+unit))
		if last == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: ActiveState %s, want %s\n%s", unit, last, want, m.MustSh(t, "systemctl status --no-pager -l "+unit+" || true; journalctl --no-pager -n 50 -u "+unit))
}

const (
	user = "vpnuser"
	pass = "s3cret-pass"
)

// TestSystem installs the package into a booted Debian 12 and checks it as an administrator
// and as users would, against an OpenVPN 2.6 server in the lab. The steps share one machine
// (booting costs seconds, not minutes) and run in order; the package's removal is last.
func TestSystem(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{
		Wrap:     "tls-crypt",
		UserPass: &lab.UserPass{User: user, Pass: pass},
		Push:     []string{"redirect-gateway def1", "dhcp-option DNS 10.8.0.53", "dhcp-option DOMAIN corp.example"},
	})
	deb := debPath(t)
	m := Boot(t, Options{NetNS: l.ClientNS})

	before := netState(t, m)
	t.Logf("install:\n%s", m.InstallDeb(t, deb))
	if after := netState(t, m); after != before {
		t.Fatalf("installing changed the network:\n%s\n---\n%s", before, after)
	}
	profile := instanceProfile(srv.ClientConfig(lab.ClientOptions{}))

	t.Run("Installed", func(t *testing.T) {
		out := m.MustSh(t, `getent group ovpnd; stat -c '%a %U' /etc/ovpnd; command -v ovpnd ovpnctl;
			ls /lib/systemd/system/ovpnd.service /lib/systemd/system/ovpnd@.service /usr/share/dbus-1/system.d/net.ovpnd1.conf \
			   /usr/share/dbus-1/system-services/net.ovpnd1.service /usr/share/polkit-1/actions/net.ovpnd1.policy;
			pkaction --action-id net.ovpnd1.start; systemd-analyze verify --man=no ovpnd.service ovpnd@x.service 2>&1`)
		for _, want := range []string{"ovpnd:x:", "700 root", "/usr/sbin/ovpnd", "/usr/bin/ovpnctl", "net.ovpnd1.start"} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in:\n%s", want, out)
			}
		}
	})

	writeInstance := func(t *testing.T, name, password, extra string) {
		t.Helper()
		if err := m.WriteFile("/etc/ovpnd/"+name+".conf", []byte(profile), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := m.WriteFile("/etc/ovpnd/"+name+".auth", []byte(user+"\n"+password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		dropIn := fmt.Sprintf("[Service]\nLoadCredential=auth-user-pass:/etc/ovpnd/%s.auth\n%s", name, extra)
		if err := m.WriteFile("/etc/systemd/system/ovpnd@"+name+".service.d/test.conf", []byte(dropIn), 0o644); err != nil {
			t.Fatal(err)
		}
		m.MustSh(t, "systemctl daemon-reload")
	}

	t.Run("InstanceUpAndDown", func(t *testing.T) {
		writeInstance(t, "work", pass, "WatchdogSec=4s\n")
		// Type=notify: start returns once the tunnel is up, so no waiting here.
		out := m.MustSh(t, `systemctl start ovpnd@work && ip -br addr show type tun && ping -c1 -W5 `+lab.ServerTunnel4+` && ip route get 198.51.100.1`)
		if !strings.Contains(out, "10.8.0.") || !strings.Contains(out, "1 received") || !strings.Contains(out, "dev tun") {
			t.Fatalf("after systemctl start:\n%s", out)
		}
		dns := m.MustSh(t, `resolvectl dns $(ip -br link show type tun | cut -d' ' -f1); resolvectl domain $(ip -br link show type tun | cut -d' ' -f1)`)
		if !strings.Contains(dns, "10.8.0.53") || !strings.Contains(dns, "corp.example") {
			t.Errorf("resolved on the tun link:\n%s", dns)
		}
		show := m.MustSh(t, "systemctl show -p StatusText -p WatchdogUSec -p NRestarts ovpnd@work")
		if !strings.Contains(show, "StatusText=connected") || !strings.Contains(show, "WatchdogUSec=4s") {
			t.Errorf("unit properties:\n%s", show)
		}
		// Two watchdog periods: the unit stays up only if ovpnd sends WATCHDOG=1.
		time.Sleep(9 * time.Second)
		show = m.MustSh(t, "systemctl show -p ActiveState -p NRestarts -p ExecMainPID ovpnd@work")
		if !strings.Contains(show, "ActiveState=active") || !strings.Contains(show, "NRestarts=0") {
			t.Errorf("after two watchdog periods:\n%s\n%s", show, m.MustSh(t, "journalctl --no-pager -u ovpnd@work"))
		}
		m.MustSh(t, "systemctl stop ovpnd@work")
		if after := netState(t, m); after != before {
			t.Errorf("stop did not restore the network:\n%s\n---\n%s", before, after)
		}
		logs := m.MustSh(t, "journalctl --no-pager -o cat -u ovpnd@work")
		if strings.Contains(logs, "Receive failed") || regexp.MustCompile(`\d\d:\d\d:\d\d \[?\w*\]? ?cleanup`).MatchString(logs) {
			t.Errorf("stop logged an error or cleanup printed its own timestamp:\n%s", logs)
		}
	})

	t.Run("AuthFailureStopsRetrying", func(t *testing.T) {
		writeInstance(t, "bad", "wrong-password", "RestartSec=1s\n")
		refusals := strings.Count(srv.Log(), "Auth Username/Password verification failed")
		out, err := m.Sh("systemctl start ovpnd@bad")
		if err == nil {
			t.Fatalf("systemctl start succeeded with a wrong password:\n%s", out)
		}
		waitUnit(t, m, "ovpnd@bad", "failed", 30*time.Second)
		// Three restart periods: a retry would have happened by now.
		time.Sleep(3 * time.Second)
		show := m.MustSh(t, "systemctl show -p ActiveState -p NRestarts -p ExecMainStatus -p StatusText ovpnd@bad")
		for _, want := range []string{"ActiveState=failed", "NRestarts=0", "ExecMainStatus=77", "StatusText=authentication failed: the server refused the credentials"} {
			if !strings.Contains(show, want) {
				t.Errorf("want %s in:\n%s", want, show)
			}
		}
		if n := strings.Count(srv.Log(), "Auth Username/Password verification failed") - refusals; n != 1 {
			t.Errorf("the server checked the password %d times, want once", n)
		}
		status, _ := m.Sh("systemctl status --no-pager -l ovpnd@bad")
		if strings.Contains(status, "Error: 1") || strings.Contains(status, "authentication failed: authentication failed") ||
			!strings.Contains(status, "status=77/NOPERM") {
			t.Errorf("systemctl status:\n%s", status)
		}
		if after := netState(t, m); after != before {
			t.Errorf("failed instance changed the network:\n%s\n---\n%s", before, after)
		}
		m.MustSh(t, "systemctl reset-failed ovpnd@bad")
	})

	// An instance without a credential waits, says so in its status, and root answers it.
	t.Run("InstanceWaitsForCredentials", func(t *testing.T) {
		if err := m.WriteFile("/etc/ovpnd/ask.conf", []byte(profile), 0o600); err != nil {
			t.Fatal(err)
		}
		m.MustSh(t, "systemctl start --no-block ovpnd@ask")
		defer m.Sh("systemctl stop ovpnd@ask") // also when the test fails
		deadline := time.Now().Add(30 * time.Second)
		var status string
		for time.Now().Before(deadline) {
			status = m.MustSh(t, "systemctl show -P StatusText ovpnd@ask")
			if strings.Contains(status, "waiting for credentials") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(status, "waiting for credentials (ovpnctl auth ask)") {
			t.Fatalf("status while waiting: %q", status)
		}
		out := m.MustSh(t, "printf '%s\\n%s\\n' "+user+" "+pass+" | ovpnctl auth ask")
		if !strings.Contains(out, "ask: answered") {
			t.Errorf("ovpnctl auth: %s", out)
		}
		waitUnit(t, m, "ovpnd@ask", "active", 30*time.Second)
		if s := m.MustSh(t, "systemctl show -P StatusText ovpnd@ask"); !strings.HasPrefix(s, "connected") {
			t.Errorf("status after answering: %q", s)
		}
	})

	// A server that is not there is reported by the first attempt, not after its timeout.
	t.Run("UnreachableServerLogged", func(t *testing.T) {
		gone := regexp.MustCompile(`(?m)^remote (\S+) \d+$`).ReplaceAllString(profile, "remote $1 9")
		if err := m.WriteFile("/etc/ovpnd/gone.conf", []byte(gone), 0o600); err != nil {
			t.Fatal(err)
		}
		m.MustSh(t, "systemctl start --no-block ovpnd@gone")
		defer m.Sh("systemctl stop ovpnd@gone")
		deadline := time.Now().Add(50 * time.Second)
		var logs string
		for time.Now().Before(deadline) {
			logs = m.MustSh(t, "journalctl --no-pager -o cat -u ovpnd@gone")
			if strings.Contains(logs, "connection refused") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		i := strings.Index(logs, "connection refused")
		if i < 0 {
			t.Fatalf("no refusal logged:\n%s", logs)
		}
		if r := strings.Index(logs, "restarting in"); r >= 0 && r < i {
			t.Errorf("the refusal was logged only after the first attempt ended:\n%s", logs)
		}
	})

	t.Run("CrashThenStopLeavesNothing", func(t *testing.T) {
		m.MustSh(t, "systemctl start ovpnd@work")
		m.MustSh(t, "systemctl kill -s KILL ovpnd@work")
		waitUnit(t, m, "ovpnd@work", "activating", 10*time.Second) // auto-restart pending
		m.MustSh(t, "systemctl stop ovpnd@work")
		if after := netState(t, m); after != before {
			t.Errorf("crash + stop left changes:\n%s\n---\n%s", before, after)
		}
		if out := m.MustSh(t, "ls -A /run/ovpnd 2>/dev/null; ip -br link show type tun"); strings.TrimSpace(out) != "" {
			t.Errorf("left behind:\n%s", out)
		}
	})

	// Users: alice and bob, each with a profile and credentials file of their own.
	m.MustSh(t, "useradd -m alice && useradd -m bob")
	userProfile := srv.ClientConfig(lab.ClientOptions{})
	for _, u := range []string{"alice", "bob"} {
		home := "/home/" + u
		cfg := regexp.MustCompile(`(?m)^auth-user-pass .*$`).ReplaceAllString(userProfile, "auth-user-pass "+home+"/work.auth")
		if err := m.WriteFile(home+"/work.conf", []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := m.WriteFile(home+"/work.auth", []byte(user+"\n"+pass+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m.MustSh(t, "chown "+u+": "+home+"/work.conf "+home+"/work.auth")
	}
	// local runs CMD as USER in an active local session (logind seat0), as at a desktop;
	// remote in a plain su session, which polkit sees as neither local nor active.
	local := func(u, cmd string) (string, error) {
		return m.Sh("XDG_SEAT=seat0 su - " + u + " -c '" + cmd + "' 2>&1")
	}
	remote := func(u, cmd string) (string, error) { return m.Sh("su - " + u + " -c '" + cmd + "' 2>&1") }

	t.Run("UserSession", func(t *testing.T) {
		if out := m.MustSh(t, "systemctl is-active ovpnd.service || true"); strings.TrimSpace(out) == "active" {
			t.Fatalf("ovpnd.service runs before anyone asked for it")
		}
		out, err := local("alice", "ovpnctl up work.conf")
		if err != nil || !strings.Contains(out, "connected") {
			t.Fatalf("ovpnctl up at a local session: %v\n%s\n%s", err, out, m.MustSh(t, "journalctl --no-pager -n 40"))
		}
		if out := m.MustSh(t, "systemctl is-active ovpnd.service; ping -c1 -W5 "+lab.ServerTunnel4); !strings.Contains(out, "active") || !strings.Contains(out, "1 received") {
			t.Errorf("after ovpnctl up (D-Bus activation, tunnel):\n%s", out)
		}
		if out, err := local("alice", "ovpnctl list"); err != nil || !regexp.MustCompile(`work\s+alice\s+connected`).MatchString(out) {
			t.Errorf("alice's list (owners by name): %v\n%s", err, out)
		}
		if out, _ := local("bob", "ovpnctl list"); strings.Contains(out, "work") {
			t.Errorf("bob sees alice's session:\n%s", out)
		}
		if out, err := local("bob", "ovpnctl down work"); err == nil {
			t.Errorf("bob stopped alice's session:\n%s", out)
		}
		if out, err := remote("bob", "ovpnctl up --name bobwork work.conf"); err == nil || !strings.Contains(out, "denied") && !strings.Contains(out, "not authorized") {
			t.Errorf("ovpnctl up from a non-local session: err %v\n%s", err, out)
		}
		// A daemon restart (or upgrade) and a crash bring the session back by itself.
		for _, how := range []string{"systemctl restart ovpnd.service", "systemctl kill -s KILL ovpnd.service"} {
			m.MustSh(t, how)
			deadline := time.Now().Add(60 * time.Second)
			var list string
			for time.Now().Before(deadline) {
				list, _ = local("alice", "ovpnctl list")
				if regexp.MustCompile(`work\s+alice\s+connected`).MatchString(list) {
					break
				}
				time.Sleep(300 * time.Millisecond)
			}
			if !regexp.MustCompile(`work\s+alice\s+connected`).MatchString(list) {
				t.Fatalf("after %s:\n%s\n%s", how, list, m.MustSh(t, "journalctl --no-pager -n 40 -u ovpnd"))
			}
			if out := m.MustSh(t, "ping -c1 -W5 "+lab.ServerTunnel4+"; journalctl --no-pager -o cat -u ovpnd"); !strings.Contains(out, "1 received") || !strings.Contains(out, "restored after a daemon restart") {
				t.Errorf("after %s:\n%s", how, out)
			}
		}
		// The owner may stop her session from any login, here a non-local one.
		if out, err := remote("alice", "ovpnctl down work"); err != nil {
			t.Errorf("alice ovpnctl down from a non-local session: %v\n%s", err, out)
		}
		if after := netState(t, m); after != before {
			t.Errorf("down did not restore the network:\n%s\n---\n%s", before, after)
		}
	})

	// An administrator logged in remotely (not an active local session) may start a session
	// after typing her password into the agent ovpnctl starts on her terminal.
	t.Run("InteractiveAuthorization", func(t *testing.T) {
		m.MustSh(t, `useradd -m -G sudo carol && echo 'carol:carols-pw' | chpasswd &&
			cp /home/alice/work.conf /home/alice/work.auth /home/carol/ && sed -i 's|/home/alice/|/home/carol/|' /home/carol/work.conf &&
			chown carol: /home/carol/work.*`)
		// Without a terminal there is no agent: refused, with the way out in the message.
		if out, err := remote("carol", "ovpnctl up work.conf </dev/null"); err == nil || !strings.Contains(out, "on a terminal to authenticate") {
			t.Errorf("ovpnctl up without a terminal: %v\n%s", err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// su -c drops the controlling terminal; --pty gives the login one, as ssh would.
		out, err := m.Converse(ctx, "su --pty - carol -c 'ovpnctl up work.conf'", []Exchange{{Expect: "Password:", Send: "carols-pw\n"}})
		if err != nil || !strings.Contains(out, "work: connected") {
			t.Fatalf("ovpnctl up after authentication: %v\n%s\njournal:\n%s", err, out, m.MustSh(t, "journalctl --no-pager -n 30 -u polkit -u ovpnd"))
		}
		if !strings.Contains(out, "net.ovpnd1.start") {
			t.Errorf("the agent did not name the action:\n%s", out)
		}
		if out, err := remote("carol", "ovpnctl down work"); err != nil {
			t.Errorf("carol ovpnctl down: %v\n%s", err, out)
		}
	})

	t.Run("UserWrongPassword", func(t *testing.T) {
		m.MustSh(t, `sed 's/^`+pass+`$/wrong-pass/' /home/alice/work.auth > /home/alice/bad.auth && sed 's/work.auth/bad.auth/' /home/alice/work.conf > /home/alice/bad.conf && chown alice: /home/alice/bad.*`)
		out, err := m.Sh("XDG_SEAT=seat0 su - alice -c 'ovpnctl up bad.conf' 2>&1; echo exit=$?")
		if err != nil || !strings.Contains(out, "bad: failed: authentication failed: the server refused the credentials") || !strings.Contains(out, "exit=6") {
			t.Errorf("ovpnctl up with a wrong password: %v\n%s", err, out)
		}
		if strings.Count(out, "refused the credentials") != 1 {
			t.Errorf("the reason is not printed exactly once:\n%s", out)
		}
	})

	// A password typed at `ovpnctl up` is not kept, but the server's auth-token is: after a
	// daemon restart the session logs in with the token instead of waiting for its owner.
	t.Run("TokenSurvivesRestart", func(t *testing.T) {
		m.MustSh(t, `sed 's|^auth-user-pass .*|auth-user-pass|' /home/alice/work.conf > /home/alice/typed.conf && chown alice: /home/alice/typed.conf`)
		if out, err := local("alice", `printf "%s\\n%s\\n" `+user+` `+pass+` | ovpnctl up typed.conf`); err != nil || !strings.Contains(out, "typed: connected") {
			t.Fatalf("ovpnctl up with a typed password: %v\n%s", err, out)
		}
		defer local("alice", "ovpnctl down typed")
		m.MustSh(t, "systemctl restart ovpnd.service")
		deadline := time.Now().Add(60 * time.Second)
		var list string
		for time.Now().Before(deadline) {
			list, _ = local("alice", "ovpnctl list")
			if regexp.MustCompile(`typed\s+alice\s+connected`).MatchString(list) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if !regexp.MustCompile(`typed\s+alice\s+connected`).MatchString(list) {
			t.Fatalf("after a daemon restart:\n%s\n%s", list, m.MustSh(t, "journalctl --no-pager -n 30 -o cat -u ovpnd"))
		}
	})

	// A profile stored with the daemon starts by name, without the user's files.
	t.Run("StoredProfiles", func(t *testing.T) {
		if out, err := local("alice", "ovpnctl import --name office work.conf"); err != nil || !strings.Contains(out, "office: stored") {
			t.Fatalf("ovpnctl import: %v\n%s", err, out)
		}
		// The daemon keeps its own root-only copy: the user's files may go.
		m.MustSh(t, "mkdir /root/alice-files && mv /home/alice/work.conf /home/alice/work.auth /root/alice-files/")
		defer m.Sh("mv /root/alice-files/* /home/alice/")
		if out := m.MustSh(t, "stat -c '%a %U' /var/lib/ovpnd /var/lib/ovpnd/profiles /var/lib/ovpnd/profiles/*/office.conf"); strings.Count(out, "700 root") != 2 || !strings.Contains(out, "600 root") {
			t.Errorf("storage is not root-only:\n%s", out)
		}
		if out, _ := local("alice", "ovpnctl list --profiles"); strings.TrimSpace(out) != "office" {
			t.Errorf("alice's profiles: %q", out)
		}
		if out, _ := local("bob", "ovpnctl list --profiles"); strings.Contains(out, "office") {
			t.Errorf("bob sees alice's profile: %q", out)
		}
		if out, err := local("alice", "ovpnctl up office"); err != nil || !strings.Contains(out, "office: connected") {
			t.Fatalf("ovpnctl up office: %v\n%s", err, out)
		}
		if out, err := local("alice", "ovpnctl down office && ovpnctl remove office && ovpnctl list --profiles"); err != nil || !strings.Contains(out, "no stored profiles") {
			t.Errorf("down, remove: %v\n%s", err, out)
		}
		if out, err := local("alice", "ovpnctl up office"); err == nil {
			t.Errorf("a removed profile started:\n%s", out)
		}
	})

	t.Run("PurgeLeavesNothing", func(t *testing.T) {
		files := m.MustSh(t, "dpkg -L ovpnd")
		// What the administrator added for the tests goes first, as it would.
		m.MustSh(t, "userdel -r alice; userdel -r bob; userdel -r carol; rm -rf /etc/ovpnd/work.* /etc/ovpnd/bad.* /etc/ovpnd/ask.* /etc/ovpnd/gone.* /etc/systemd/system/ovpnd@*.service.d && systemctl daemon-reload")
		t.Logf("purge:\n%s", m.MustSh(t, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q ovpnd 2>&1"))
		var left []string
		var check strings.Builder
		for _, f := range strings.Split(strings.TrimSpace(files), "\n") {
			// Every path of the package names ovpn (shared directories such as /usr/share don't).
			if strings.Contains(filepath.Base(f), "ovpn") {
				fmt.Fprintf(&check, "test -e '%s' && echo '%s'; ", f, f)
			}
		}
		if out := m.MustSh(t, check.String()+"true"); strings.TrimSpace(out) != "" {
			left = append(left, out)
		}
		out := m.MustSh(t, `ls -d /etc/ovpnd /run/ovpnd /var/lib/ovpnd 2>/dev/null; getent group ovpnd; systemctl list-units --all --no-legend 'ovpnd*'; systemctl list-unit-files --no-legend 'ovpnd*'; true`)
		if strings.TrimSpace(out) != "" {
			left = append(left, out)
		}
		if len(left) > 0 {
			t.Errorf("purge left:\n%s", strings.Join(left, "\n"))
		}
		if after := netState(t, m); after != before {
			t.Errorf("network after purge:\n%s\n---\n%s", before, after)
		}
	})
}
