package daemon

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/tests/lab"
)

// authEnv is the daemon on a private bus in a lab's client namespace and an unprivileged user
// who runs `ovpnctl up` in a terminal (a pty) with a graphical session whose xdg-open only
// records what it was asked to open.
type authEnv struct {
	l       *lab.Lab
	addr    string
	user    testUser
	ovpnctl string
	userDir string
	opened  string // the file the fake xdg-open appends its argument to
	fakeBin string
	seq     int
}

func newAuthEnv(t *testing.T) *authEnv {
	l := lab.New(t, lab.Options{})
	shared := sharedDir(t)
	ovpnd := copyExecutable(t, repoPath(t, "bin/ovpnd"), shared)
	e := &authEnv{l: l, ovpnctl: copyExecutable(t, repoPath(t, "bin/ovpnctl"), shared)}
	e.addr = startBus(t, shared)
	e.user = addUser(t, "c")
	startPolkit(t, e.addr, map[uint32]map[string]bool{uint32(e.user.uid): {api.ActionStart: true}})
	notify := listenNotify(t, shared)
	startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + notify.path}, ovpnd, "daemon", "--bus", e.addr, "--state-dir", filepath.Join(l.Dir, "state"))
	notify.wait(t, "READY=1", 10*time.Second)

	e.userDir = sharedDir(t)
	if err := os.Chown(e.userDir, e.user.uid, e.user.gid); err != nil {
		t.Fatal(err)
	}
	e.fakeBin = filepath.Join(shared, "bin")
	if err := os.Mkdir(e.fakeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	e.opened = filepath.Join(e.userDir, "opened")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + e.opened + "'\n"
	if err := os.WriteFile(filepath.Join(e.fakeBin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// ctlClient is `ovpnctl up` in a terminal, run by the test user.
type ctlClient struct {
	e    *authEnv
	t    *testing.T
	name string
	p    *lab.Process
}

// up starts `ovpnctl up` for profile text (written as the user's file) with extra flags.
func (e *authEnv) up(t *testing.T, profile string, flags ...string) *ctlClient {
	e.seq++
	name := fmt.Sprintf("auth%d", e.seq)
	path := writeOwned(t, e.userDir, name+".conf", profile, e.user)
	args := []string{"setpriv", "--reuid", strconv.Itoa(e.user.uid), "--regid", strconv.Itoa(e.user.gid), "--init-groups",
		e.ovpnctl, "up", "--name", name}
	args = append(append(args, flags...), path)
	env := []string{"DBUS_SYSTEM_BUS_ADDRESS=" + e.addr, "DISPLAY=:7", "PATH=" + e.fakeBin + ":/usr/sbin:/usr/bin:/sbin:/bin"}
	c := &ctlClient{e: e, t: t, name: name, p: e.l.StartClientProcessTTYEnv(env, args...)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- ovpnctl up output ---\n%s", c.p.Output())
		}
		runAs(t, &e.user, e.addr, nil, "", e.ovpnctl, "down", name)
	})
	return c
}

func (c *ctlClient) Answer(ctx context.Context, prompt, answer string) error {
	if err := c.p.WaitOutput(ctx, "CHALLENGE: "+prompt); err != nil {
		return err
	}
	return c.p.Type(answer + "\n")
}

func (c *ctlClient) exit(ctx context.Context) (int, error) {
	select {
	case <-c.p.Done():
		return c.p.ExitCode(), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ovpnctl up still running: %w", ctx.Err())
	}
}

func (c *ctlClient) Connected(ctx context.Context) error {
	code, err := c.exit(ctx)
	if err != nil {
		return err
	}
	if code != 0 || !strings.Contains(c.p.Output(), "connected to") {
		return fmt.Errorf("ovpnctl up exit %d without connecting", code)
	}
	return nil
}

func (c *ctlClient) Refused(ctx context.Context) error {
	code, err := c.exit(ctx)
	if err != nil {
		return err
	}
	if code == 0 || strings.Contains(c.p.Output(), "connected to") || !strings.Contains(c.p.Output(), "authentication failed") {
		return fmt.Errorf("ovpnctl up exit %d, want an authentication failure", code)
	}
	return nil
}

func checkEcho(t *testing.T, out, answer string, echo bool) {
	t.Helper()
	if got := strings.Contains(out, answer); got != echo {
		t.Errorf("answer %q shown on the terminal: %v, want %v\n%s", answer, got, echo, out)
	}
}

// profile is the server's client profile with alice's credentials inline when pass is set.
func authProfile(srv *lab.Server, pass string, extra ...string) string {
	if pass != "" {
		extra = append(extra, "<auth-user-pass>\nalice\n"+pass+"\n</auth-user-pass>")
	}
	return srv.ClientConfig(lab.ClientOptions{Extra: extra})
}

// TestOvpnctlAuth: every way a server asks the user to prove who they are, through `ovpnctl
// up` in a terminal and the daemon, against Debian's OpenVPN 2.6 and OpenVPN 2.7.6 (one
// server at a time).
func TestOvpnctlAuth(t *testing.T) {
	e := newAuthEnv(t)
	for _, v := range []string{"2.6", "2.7"} {
		t.Run("openvpn-"+v, func(t *testing.T) { ctlScenarios(t, e, v) })
	}
}

// ctlScenarios runs the scenarios against one server version (2.7 skips where the peer is
// missing).
func ctlScenarios(t *testing.T, e *authEnv, version string) {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		t.Cleanup(cancel)
		return c
	}

	srv := e.l.StartServer(lab.ServerOptions{Version: version, Wrap: "tls-crypt", AuthScript: lab.StaticChallengeScript})
	for _, tc := range []struct {
		name, code string
		ok         bool
	}{{"static-challenge/right", "123456", true}, {"static-challenge/wrong", "999999", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctx(t)
			c := e.up(t, authProfile(srv, "s3cret", `static-challenge "Enter the code from your token" 0`))
			if err := c.Answer(ctx, "Enter the code from your token", tc.code); err != nil {
				t.Fatal(err)
			}
			if tc.ok {
				if err := c.Connected(ctx); err != nil {
					t.Fatal(err)
				}
			} else if err := c.Refused(ctx); err != nil {
				t.Fatal(err)
			}
			checkEcho(t, c.p.Output(), tc.code, false)
		})
	}
	srv.Stop()

	srv = e.l.StartServer(lab.ServerOptions{Version: version, Wrap: "tls-crypt", AuthScript: lab.CRV1Script})
	t.Run("crv1", func(t *testing.T) {
		ctx := ctx(t)
		c := e.up(t, authProfile(srv, "s3cret"))
		if err := c.Answer(ctx, "Enter the PIN: sent by SMS", "2468"); err != nil {
			t.Fatal(err)
		}
		if err := c.Connected(ctx); err != nil {
			t.Fatal(err)
		}
		checkEcho(t, c.p.Output(), "2468", false)
	})
	srv.Stop()

	srv = e.l.StartServer(lab.ServerOptions{Version: version, Wrap: "tls-crypt", ManagementClientAuth: true})
	m := srv.Management()
	connect := func(ctx context.Context, t *testing.T) (string, string) {
		line, err := m.Next(ctx, ">CLIENT:CONNECT,")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Split(strings.TrimPrefix(line, ">CLIENT:CONNECT,"), ",")
		return f[0], f[1]
	}
	t.Run("web-login/approved", func(t *testing.T) {
		ctx := ctx(t)
		url := "https://sso.lab.test/login?s=approved-" + version
		c := e.up(t, authProfile(srv, ""))
		cid, kid := connect(ctx, t)
		if _, err := m.Command(fmt.Sprintf(`client-pending-auth %s %s "WEB_AUTH::%s" 120`, cid, kid, url)); err != nil {
			t.Fatal(err)
		}
		if err := c.p.WaitOutput(ctx, "opened the login page in your browser"); err != nil {
			t.Fatal(err)
		}
		// ovpnctl says so once xdg-open has started; the fake records its argument a moment later.
		var b []byte
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if b, _ = os.ReadFile(e.opened); strings.Contains(string(b), url+"\n") {
				break
			}
		}
		if strings.Count(string(b), url+"\n") != 1 {
			t.Errorf("xdg-open was asked to open %q, want %q once", b, url)
		}
		if _, err := m.Command(fmt.Sprintf("client-auth-nt %s %s", cid, kid)); err != nil {
			t.Fatal(err)
		}
		if err := c.Connected(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("web-login/denied-no-browser", func(t *testing.T) {
		ctx := ctx(t)
		url := "https://sso.lab.test/login?s=denied-" + version
		c := e.up(t, authProfile(srv, ""), "--no-browser")
		cid, kid := connect(ctx, t)
		if _, err := m.Command(fmt.Sprintf(`client-pending-auth %s %s "WEB_AUTH::%s" 120`, cid, kid, url)); err != nil {
			t.Fatal(err)
		}
		if err := c.p.WaitOutput(ctx, "log in at "+url); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Command(fmt.Sprintf(`client-deny %s %s "sso refused" "single sign-on refused"`, cid, kid)); err != nil {
			t.Fatal(err)
		}
		if err := c.Refused(ctx); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(c.p.Output(), "single sign-on refused") {
			t.Error("the server's reason is not shown")
		}
		if b, _ := os.ReadFile(e.opened); strings.Contains(string(b), url) {
			t.Errorf("--no-browser still opened %s", url)
		}
	})
	t.Run("cr-text", func(t *testing.T) {
		ctx := ctx(t)
		c := e.up(t, authProfile(srv, ""))
		cid, kid := connect(ctx, t)
		if _, err := m.Command(fmt.Sprintf(`client-pending-auth %s %s "CR_TEXT:R:Enter the code from the app" 120`, cid, kid)); err != nil {
			t.Fatal(err)
		}
		if err := c.Answer(ctx, "Enter the code from the app", "24680"); err != nil {
			t.Fatal(err)
		}
		line, err := m.Next(ctx, ">CLIENT:CR_RESPONSE,")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Split(line, ",")
		if resp, err := base64.StdEncoding.DecodeString(f[len(f)-1]); err != nil || string(resp) != "24680" {
			t.Fatalf("server got %q (%v)", line, err)
		}
		if _, err := m.Command(fmt.Sprintf("client-auth-nt %s %s", cid, kid)); err != nil {
			t.Fatal(err)
		}
		if err := c.Connected(ctx); err != nil {
			t.Fatal(err)
		}
		checkEcho(t, c.p.Output(), "24680", false)
	})
	srv.Stop()
}

// TestInstanceChallenge: ovpnd@NAME with a static challenge says in its STATUS what it waits
// for, lists it over the bus, and takes the answer from root's `ovpnctl auth`.
func TestInstanceChallenge(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", AuthScript: lab.StaticChallengeScript})
	shared := sharedDir(t)
	ovpnd := copyExecutable(t, repoPath(t, "bin/ovpnd"), shared)
	ovpnctl := copyExecutable(t, repoPath(t, "bin/ovpnctl"), shared)
	addr := startBus(t, shared)
	notify := listenNotify(t, shared)
	cfg := l.WriteFile("inst.conf", authProfile(srv, "s3cret", `static-challenge "Enter OTP" 1`))
	d := startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + notify.path},
		ovpnd, "instance", "--config", cfg, "--bus", addr, "--state-dir", filepath.Join(l.Dir, "state"), "otp-1")
	notify.wait(t, "STATUS=waiting for an answer to the server's challenge*", 20*time.Second)

	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	obj := conn.Object(api.InstanceBusName("otp-1"), dbus.ObjectPath(api.SessionPath("otp-1")))
	var pending []struct {
		ID     uint32
		Kind   string
		Prompt string
		Secret bool
		URL    string
	}
	if err := obj.Call(api.SessionInterface+".PendingInput", 0).Store(&pending); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Kind != api.InputStaticChallenge || pending[0].Prompt != "Enter OTP" || pending[0].Secret {
		t.Fatalf("pending %+v", pending)
	}
	// Root answers with ovpnctl auth (the answer from stdin: no terminal here).
	out, stderr, code := runAs(t, nil, addr, nil, "123456\n", ovpnctl, "auth", "otp-1")
	if code != 0 || !strings.Contains(out, "answered") || !strings.Contains(stderr, "CHALLENGE: Enter OTP") {
		t.Fatalf("ovpnctl auth: exit %d: %s %s", code, out, stderr)
	}
	notify.wait(t, "READY=1", 20*time.Second)
	if code := d.stop(t, 15*time.Second); code != 0 {
		t.Errorf("instance exit status %d after SIGTERM", code)
	}
	if strings.Contains(d.out.String(), "123456") {
		t.Error("the answer appears in the instance's log")
	}
}

// TestInstanceWebLogin: ovpnd@NAME logs a web login's URL and says in its STATUS that it
// waits for it, then becomes ready when the server completes the login.
func TestInstanceWebLogin(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", ManagementClientAuth: true})
	m := srv.Management()
	shared := sharedDir(t)
	ovpnd := copyExecutable(t, repoPath(t, "bin/ovpnd"), shared)
	addr := startBus(t, shared)
	notify := listenNotify(t, shared)
	cfg := l.WriteFile("inst.conf", authProfile(srv, ""))
	d := startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + notify.path},
		ovpnd, "instance", "--config", cfg, "--bus", addr, "--state-dir", filepath.Join(l.Dir, "state"), "sso-1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	line, err := m.Next(ctx, ">CLIENT:CONNECT,")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(strings.TrimPrefix(line, ">CLIENT:CONNECT,"), ",")
	url := "https://sso.lab.test/login?instance=1"
	if _, err := m.Command(fmt.Sprintf(`client-pending-auth %s %s "WEB_AUTH::%s" 120`, f[0], f[1], url)); err != nil {
		t.Fatal(err)
	}
	notify.wait(t, "STATUS=waiting for web login at "+url+"*", 10*time.Second)
	if _, err := m.Command(fmt.Sprintf("client-auth-nt %s %s", f[0], f[1])); err != nil {
		t.Fatal(err)
	}
	notify.wait(t, "READY=1", 20*time.Second)
	if code := d.stop(t, 15*time.Second); code != 0 {
		t.Errorf("instance exit status %d after SIGTERM", code)
	}
	// Checked once the instance has exited and all its output is read.
	if !strings.Contains(d.out.String(), "web login required: open "+url) {
		t.Errorf("the instance's log lacks the URL:\n%s", d.out.String())
	}
}
