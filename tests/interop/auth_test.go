package interop

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// The server side of every way a server asks the user to prove who they are, against
// Debian's OpenVPN 2.6: auth-user-pass-verify scripts for the static and the dynamic (CRV1)
// challenge, and management-client-auth for pending authentication (web login, CR_TEXT).
// Each runs `ovpnd run` in a terminal (a pty) and answers the prompts by typing, once right
// and once wrong.

// startOvpndTTY runs `ovpnd run` in a terminal in the client namespace.
func startOvpndTTY(t *testing.T, l *lab.Lab, configPath string) *lab.Process {
	skipWithoutOvpnd(t)
	resolv := l.WriteFile("resolv.conf", "nameserver 198.18.0.1\n")
	return l.StartClientProcessTTY(ovpndBinary(), "run", "--name", "lab", "--state-dir", filepath.Join(l.Dir, "state"),
		"--dns-mode", "resolv.conf", "--resolv-conf", resolv, configPath)
}

// authClient is one client of an authentication scenario: how it is started and how the
// test talks to its prompts, so the scenarios run through `ovpnd run` and `ovpnctl up` alike.
type authClient interface {
	// Answer waits for the prompt text on the terminal, then types answer and a newline.
	Answer(ctx context.Context, prompt, answer string) error
	WaitOutput(ctx context.Context, s string) error
	Output() string
	// Connected waits for the tunnel address.
	Connected(ctx context.Context) error
	// Refused waits for the client to give up with an authentication failure.
	Refused(ctx context.Context) error
	Stop() error
}

type startAuthClient func(t *testing.T, l *lab.Lab, srv *lab.Server, profile string) authClient

// runClient is `ovpnd run` in a terminal.
type runClient struct {
	t   *testing.T
	l   *lab.Lab
	srv *lab.Server
	p   *lab.Process
}

func startRunClient(t *testing.T, l *lab.Lab, srv *lab.Server, profile string) authClient {
	return &runClient{t: t, l: l, srv: srv, p: startOvpndTTY(t, l, profile)}
}

func (c *runClient) Answer(ctx context.Context, prompt, answer string) error {
	// ovpnd run asks as OpenVPN does; the text alone also appears in log lines.
	if err := c.p.WaitOutput(ctx, "CHALLENGE: "+prompt); err != nil {
		return err
	}
	// The prompt is printed after echo is switched off, so typing now tests the echo setting.
	return c.p.Type(answer + "\n")
}

func (c *runClient) WaitOutput(ctx context.Context, s string) error { return c.p.WaitOutput(ctx, s) }
func (c *runClient) Output() string                                 { return c.p.Output() }

func (c *runClient) Connected(ctx context.Context) error {
	_, err := c.l.WaitTunnel(ctx, c.p, c.srv.ClientTunnelAddr())
	return err
}

func (c *runClient) Refused(ctx context.Context) error {
	select {
	case <-c.p.Done():
	case <-ctx.Done():
		return fmt.Errorf("ovpnd still running after the refusal: %w", ctx.Err())
	}
	// 77 is ovpnd's exit status for an authentication failure (EX_NOPERM).
	if code := c.p.ExitCode(); code != 77 {
		return fmt.Errorf("ovpnd exit code %d, want 77 (authentication failed)", code)
	}
	return nil
}

func (c *runClient) Stop() error { return c.p.Stop(15 * time.Second) }

// authProfile is the lab server's client profile plus the given lines; with a password it
// also writes an auth-user-pass file for alice.
func authProfile(l *lab.Lab, srv *lab.Server, password string, extra ...string) string {
	if password != "" {
		creds := l.WriteFile(fmt.Sprintf("creds-%d.txt", time.Now().UnixNano()), "alice\n"+password+"\n")
		extra = append(extra, "auth-user-pass "+creds)
	}
	return l.WriteFile(fmt.Sprintf("client-%d.conf", time.Now().UnixNano()), srv.ClientConfig(lab.ClientOptions{Extra: extra}))
}

// checkEcho fails when a secret answer appeared on the terminal or an echoed one did not.
func checkEcho(t *testing.T, out, answer string, echo bool) {
	t.Helper()
	if got := strings.Contains(out, answer); got != echo {
		t.Errorf("answer %q shown on the terminal: %v, want %v\n%s", answer, got, echo, out)
	}
}

func authScenarioCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testStaticChallenge(t *testing.T, version string, start startAuthClient) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Version: version, Wrap: "tls-crypt", AuthScript: lab.StaticChallengeScript})
	for _, tc := range []struct {
		name, code string
		ok         bool
	}{{"right", "123456", true}, {"wrong", "999999", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := authScenarioCtx(t)
			c := start(t, l, srv, authProfile(l, srv, "s3cret", `static-challenge "Enter the code from your token" 0`))
			dumpOnFailure(t, c, srv)
			if err := c.Answer(ctx, "Enter the code from your token", tc.code); err != nil {
				t.Fatal(err)
			}
			if tc.ok {
				if err := c.Connected(ctx); err != nil {
					t.Fatal(err)
				}
				checkTraffic(t, l, srv.TunnelAddr())
				if err := c.Stop(); err != nil {
					t.Errorf("stopping: %v", err)
				}
			} else {
				if err := c.Refused(ctx); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(c.Output(), "wrong one-time code") {
					t.Errorf("the server's reason is not shown")
				}
			}
			checkEcho(t, c.Output(), tc.code, false)
		})
	}
}

func testDynamicChallenge(t *testing.T, version string, start startAuthClient) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Version: version, Wrap: "tls-crypt", AuthScript: lab.CRV1Script})
	for _, tc := range []struct {
		name, pin string
		ok        bool
	}{{"right", "2468", true}, {"wrong", "1357", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := authScenarioCtx(t)
			c := start(t, l, srv, authProfile(l, srv, "s3cret"))
			dumpOnFailure(t, c, srv)
			if err := c.Answer(ctx, "Enter the PIN: sent by SMS", tc.pin); err != nil {
				t.Fatal(err)
			}
			if tc.ok {
				if err := c.Connected(ctx); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(srv.Log(), "alice@lab") {
					t.Errorf("the server never saw the challenge's username")
				}
				if err := c.Stop(); err != nil {
					t.Errorf("stopping: %v", err)
				}
			} else if err := c.Refused(ctx); err != nil {
				t.Fatal(err)
			}
			checkEcho(t, c.Output(), tc.pin, false)
		})
	}
}

// pendingClient waits for the client's CONNECT on the management interface, checks that it
// announced every pending-auth method, and returns its client and key ids.
func pendingClient(ctx context.Context, t *testing.T, m *lab.Management) (cid, kid string) {
	t.Helper()
	line, err := m.Next(ctx, ">CLIENT:CONNECT,")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(strings.TrimPrefix(line, ">CLIENT:CONNECT,"), ",")
	if len(f) < 2 {
		t.Fatalf("management: %q", line)
	}
	if _, err := m.Next(ctx, ">CLIENT:ENV,IV_SSO=webauth,openurl,crtext"); err != nil {
		t.Fatalf("client did not announce IV_SSO=webauth,openurl,crtext: %v", err)
	}
	return f[0], f[1]
}

func testWebLogin(t *testing.T, version string, start startAuthClient) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Version: version, Wrap: "tls-crypt", ManagementClientAuth: true})
	m := srv.Management()
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"approved", true}, {"denied", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := authScenarioCtx(t)
			url := "https://sso.lab.test/login?session=" + tc.name
			c := start(t, l, srv, authProfile(l, srv, ""))
			dumpOnFailure(t, c, srv)
			cid, kid := pendingClient(ctx, t, m)
			if _, err := m.Command(fmt.Sprintf("client-pending-auth %s %s \"WEB_AUTH::%s\" 120", cid, kid, url)); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitOutput(ctx, url); err != nil {
				t.Fatalf("web login URL not shown: %v", err)
			}
			if tc.ok {
				if _, err := m.Command(fmt.Sprintf("client-auth-nt %s %s", cid, kid)); err != nil {
					t.Fatal(err)
				}
				if err := c.Connected(ctx); err != nil {
					t.Fatal(err)
				}
				if err := c.Stop(); err != nil {
					t.Errorf("stopping: %v", err)
				}
				return
			}
			if _, err := m.Command(fmt.Sprintf("client-deny %s %s \"sso refused\" \"single sign-on refused\"", cid, kid)); err != nil {
				t.Fatal(err)
			}
			if err := c.Refused(ctx); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.Output(), "single sign-on refused") {
				t.Errorf("the server's reason is not shown")
			}
		})
	}
}

func testCRText(t *testing.T, version string, start startAuthClient) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Version: version, Wrap: "tls-crypt", ManagementClientAuth: true})
	m := srv.Management()
	for _, tc := range []struct {
		name, code string
		ok         bool
	}{{"right", "24680", true}, {"wrong", "11111", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := authScenarioCtx(t)
			c := start(t, l, srv, authProfile(l, srv, ""))
			dumpOnFailure(t, c, srv)
			cid, kid := pendingClient(ctx, t, m)
			if _, err := m.Command(fmt.Sprintf("client-pending-auth %s %s \"CR_TEXT:R,E:Enter the code from the app\" 120", cid, kid)); err != nil {
				t.Fatal(err)
			}
			if err := c.Answer(ctx, "Enter the code from the app", tc.code); err != nil {
				t.Fatal(err)
			}
			line, err := m.Next(ctx, ">CLIENT:CR_RESPONSE,")
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Split(strings.TrimPrefix(line, ">CLIENT:CR_RESPONSE,"), ",")
			resp, err := base64.StdEncoding.DecodeString(f[len(f)-1])
			if err != nil || f[0] != cid {
				t.Fatalf("management: %q (%v)", line, err)
			}
			if string(resp) != "24680" {
				if tc.ok {
					t.Fatalf("server got response %q", resp)
				}
				if _, err := m.Command(fmt.Sprintf("client-deny %s %s \"wrong code\" \"wrong code\"", cid, kid)); err != nil {
					t.Fatal(err)
				}
				if err := c.Refused(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				if !tc.ok {
					t.Fatalf("wrong answer arrived as %q", resp)
				}
				if _, err := m.Command(fmt.Sprintf("client-auth-nt %s %s", cid, kid)); err != nil {
					t.Fatal(err)
				}
				if err := c.Connected(ctx); err != nil {
					t.Fatal(err)
				}
				if err := c.Stop(); err != nil {
					t.Errorf("stopping: %v", err)
				}
			}
			// The E flag: this answer is echoed.
			checkEcho(t, c.Output(), tc.code, true)
		})
	}
}

// TestOvpndAuth runs every authentication scenario through `ovpnd run` in a terminal, against
// Debian's OpenVPN 2.6 and OpenVPN 2.7.6 (skipped, saying so, where that peer is missing).
func TestOvpndAuth(t *testing.T) {
	skipWithoutOvpnd(t)
	for _, v := range []string{"2.6", "2.7"} {
		t.Run("openvpn-"+v, func(t *testing.T) {
			t.Run("static-challenge", func(t *testing.T) { testStaticChallenge(t, v, startRunClient) })
			t.Run("crv1", func(t *testing.T) { testDynamicChallenge(t, v, startRunClient) })
			t.Run("web-login", func(t *testing.T) { testWebLogin(t, v, startRunClient) })
			t.Run("cr-text", func(t *testing.T) { testCRText(t, v, startRunClient) })
		})
	}
}
