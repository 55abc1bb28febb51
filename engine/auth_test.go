package engine

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Golden strings: what OpenVPN 2.6/2.7 itself puts on the wire (misc.c get_user_pass_cr,
// init.c management_callback_send_cc_message), worked out by hand from its source.
func TestChallengeEncodings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{EncodeSCRV1("secret", "123456"), "SCRV1:c2VjcmV0:MTIzNDU2"},
		{EncodeSCRV1("pässword", ""), "SCRV1:cMOkc3N3b3Jk:"},
		{EncodeCRV1("Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l", "8812"), "CRV1::Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l::8812"},
		{EncodeCRV1("st", ""), "CRV1::st::"},
		{EncodeCRResponse("123456"), "CR_RESPONSE,MTIzNDU2"},
		{EncodeCRResponse("what a day"), "CR_RESPONSE,d2hhdCBhIGRheQ=="},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseCRV1(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *Challenge
		err  string
	}{
		// The example of OpenVPN's management-notes.txt.
		{in: "CRV1:R,E:Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l:Y3Ix:Please enter token PIN",
			want: &Challenge{StateID: "Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l", Username: "cr1", Text: "Please enter token PIN", Echo: true, ResponseRequired: true}},
		{in: "CRV1:R:abc:YWxpY2U=:Code: from the app: please",
			want: &Challenge{StateID: "abc", Username: "alice", Text: "Code: from the app: please", ResponseRequired: true}},
		{in: "CRV1::abc:YWxpY2U=:",
			want: &Challenge{StateID: "abc", Username: "alice"}},
		{in: "CRV1:R:abc:YWxpY2U=:evil\x1b[2Jtext", want: &Challenge{StateID: "abc", Username: "alice", Text: "evil [2Jtext", ResponseRequired: true}},
		{in: "CRV1:R:abc:YWxpY2U=", err: "fewer than five"},
		{in: "CRV2:R:abc:YWxpY2U=:x", err: "not a CRV1"},
		{in: "CRV1:R::YWxpY2U=:x", err: "empty state id"},
		{in: "CRV1:R:abc:!!!:x", err: "not base64"},
		{in: "CRV1:R:a\x01b:YWxpY2U=:x", err: "control characters"},
		{in: "CRV1:R:abc:" + base64.StdEncoding.EncodeToString([]byte("al\nice")) + ":x", err: "control characters"},
		{in: "CRV1:R:" + strings.Repeat("s", 2000) + ":YWxpY2U=:x", err: "longer than"},
	} {
		got, err := ParseCRV1(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCRV1(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCRV1(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseCRV1(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestParsePendingInfo(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want PendingInfo
		err  string
	}{
		{in: "WEB_AUTH::https://sso.example.com/login?s=1", ok: true,
			want: PendingInfo{Method: "webauth", Prompt: Prompt{Kind: PromptWebLogin, URL: "https://sso.example.com/login?s=1"}}},
		{in: "WEB_AUTH:external,hidden:http://10.8.0.1:8080/a", ok: true,
			want: PendingInfo{Method: "webauth", Flags: "external,hidden", Prompt: Prompt{Kind: PromptWebLogin, URL: "http://10.8.0.1:8080/a"}}},
		{in: "OPEN_URL:https://sso.example.com/x", ok: true,
			want: PendingInfo{Method: "openurl", Prompt: Prompt{Kind: PromptWebLogin, URL: "https://sso.example.com/x"}}},
		{in: "CR_TEXT:R,E:Enter your code: now", ok: true,
			want: PendingInfo{Method: "crtext", Flags: "R,E", Prompt: Prompt{Kind: PromptCRText, Text: "Enter your code: now", Echo: true}}},
		{in: "CR_TEXT:R:Enter PIN", ok: true,
			want: PendingInfo{Method: "crtext", Flags: "R", Prompt: Prompt{Kind: PromptCRText, Text: "Enter PIN"}}},
		{in: "hello there"},
		{in: "WEB_AUTHX"},
		{in: "WEB_AUTH:https", ok: true, err: "without a URL"},
		{in: "WEB_AUTH::javascript:alert(1)", ok: true, err: "not http or https"},
		{in: "WEB_AUTH::file:///etc/shadow", ok: true, err: "not http or https"},
		{in: "OPEN_URL:--help", ok: true, err: "not http or https"},
		{in: "OPEN_URL:https://a b", ok: true, err: "spaces"},
		{in: "OPEN_URL:https://a\x1b", ok: true, err: "control"},
		{in: "OPEN_URL:", ok: true, err: "empty"},
		{in: "OPEN_URL:https://" + strings.Repeat("a", 1100), ok: true, err: "longer than"},
		{in: "WEB_AUTH:proxy=1.2.3.4;8080;;,external:https://x", ok: true, err: "proxy"},
		{in: "CR_TEXT:R", ok: true, err: "without challenge text"},
	} {
		got, ok, err := ParsePendingInfo(tc.in)
		if ok != tc.ok {
			t.Errorf("ParsePendingInfo(%q) ok %v", tc.in, ok)
			continue
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePendingInfo(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePendingInfo(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParsePendingInfo(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func (l *link) prompts() [][]Prompt {
	var out [][]Prompt
	for _, e := range l.events {
		if n, ok := e.(EventNeedCredentials); ok {
			out = append(out, n.Prompts)
		}
	}
	return out
}

func TestStaticChallenge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		user     string
		concat   bool
		echo     bool
		wantPass string
		prompts  []Prompt
	}{
		{name: "scrv1", user: "alice", wantPass: "SCRV1:c2VjcmV0:OTg3NjU0",
			prompts: []Prompt{{Kind: PromptStaticChallenge, Text: "Enter OTP"}}},
		{name: "concat echo", user: "alice", concat: true, echo: true, wantPass: "secret987654",
			prompts: []Prompt{{Kind: PromptStaticChallenge, Text: "Enter OTP", Echo: true}}},
		{name: "ask password too", wantPass: "SCRV1:c2VjcmV0:OTg3NjU0",
			prompts: []Prompt{{Kind: PromptPassword}, {Kind: PromptStaticChallenge, Text: "Enter OTP"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			cfg.AuthUserPass = true
			if tc.user != "" {
				cfg.Username, cfg.Password = tc.user, "secret"
			}
			cfg.StaticChallenge = &StaticChallenge{Text: "Enter OTP", Echo: tc.echo, Concat: tc.concat}
			l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
			l.c.Start(l.now)
			l.advance(2 * time.Second)
			if d := cmp.Diff([][]Prompt{tc.prompts}, l.prompts()); d != "" {
				t.Fatalf("prompts (-want +got):\n%s", d)
			}
			if tc.user == "" {
				l.c.SetCredentials("alice", "secret")
				l.advance(time.Second)
				if l.s.Cur.KM2 {
					t.Fatal("key-method 2 record sent before the challenge was answered")
				}
			}
			l.c.SetResponse("987654")
			l.advance(2 * time.Second)
			if !l.has(StateConnected) || l.s.User != "alice" || l.s.Pass != tc.wantPass {
				t.Fatalf("connected=%v user %q pass %q, want %q", l.has(StateConnected), l.s.User, l.s.Pass, tc.wantPass)
			}
		})
	}
}

func TestDynamicChallenge(t *testing.T) {
	auth := func(u, p string) string {
		switch {
		case u == "alice" && p == "secret":
			return "AUTH_FAILED,CRV1:R:st-42:" + base64.StdEncoding.EncodeToString([]byte("alice@corp")) + ":Enter the PIN: sent by SMS"
		case u == "alice@corp" && p == "CRV1::st-42::4321":
			return ""
		}
		return "AUTH_FAILED,nope"
	}
	cfg := testConfig(t, testPKI(t))
	cfg.AuthUserPass, cfg.Username, cfg.Password = true, "alice", "secret"
	l := newLink(t, WrapNone, cfg, serverOpts{Push: []string{basicPush}, EKM: true, Auth: auth})
	l.c.Start(l.now)
	l.advance(3 * time.Second)
	var ch *Challenge
	for _, e := range l.events {
		if c, ok := e.(EventAuthChallenge); ok {
			ch = c.Challenge
		}
	}
	want := &Challenge{StateID: "st-42", Username: "alice@corp", Text: "Enter the PIN: sent by SMS", ResponseRequired: true}
	if d := cmp.Diff(want, ch); d != "" {
		t.Fatalf("challenge (-want +got):\n%s", d)
	}
	if st := l.lastState(); st.State != StateReconnecting || st.Reason != "auth-challenge" {
		t.Fatalf("state %+v, want reconnecting auth-challenge", st)
	}
	if len(l.authFail) != 0 {
		t.Errorf("a challenge reported as an auth failure: %v", l.authFail)
	}

	// The next connection answers it.
	cfg2 := testConfig(t, testPKI(t))
	cfg2.AuthUserPass, cfg2.Username, cfg2.Password = true, "alice", "secret"
	cfg2.Challenge = ch
	l2 := newLink(t, WrapNone, cfg2, serverOpts{Push: []string{basicPush}, EKM: true, Auth: auth})
	l2.c.Start(l2.now)
	l2.advance(2 * time.Second)
	if d := cmp.Diff([][]Prompt{{{Kind: PromptChallenge, Text: want.Text}}}, l2.prompts()); d != "" {
		t.Fatalf("prompts (-want +got):\n%s", d)
	}
	l2.c.SetResponse("4321")
	l2.advance(2 * time.Second)
	if !l2.has(StateConnected) || l2.s.User != "alice@corp" || l2.s.Pass != "CRV1::st-42::4321" {
		t.Fatalf("connected=%v user %q pass %q", l2.has(StateConnected), l2.s.User, l2.s.Pass)
	}

	// Without the R flag nothing is asked and the response is empty.
	cfg3 := testConfig(t, testPKI(t))
	cfg3.AuthUserPass = true
	cfg3.Challenge = &Challenge{StateID: "st-7", Username: "bob"}
	l3 := newLink(t, WrapNone, cfg3, serverOpts{Push: []string{basicPush}, EKM: true})
	l3.c.Start(l3.now)
	l3.advance(2 * time.Second)
	if !l3.has(StateConnected) || l3.s.User != "bob" || l3.s.Pass != "CRV1::st-7::" || len(l3.prompts()) != 0 {
		t.Fatalf("connected=%v user %q pass %q prompts %v", l3.has(StateConnected), l3.s.User, l3.s.Pass, l3.prompts())
	}
}

func authPrompts(l *link) []EventAuthPrompt {
	var out []EventAuthPrompt
	for _, e := range l.events {
		if p, ok := e.(EventAuthPrompt); ok {
			out = append(out, p)
		}
	}
	return out
}

func TestPendingAuth(t *testing.T) {
	pending := func(u, p string) string { return "AUTH_PENDING,timeout 120" }
	t.Run("cr-text", func(t *testing.T) {
		l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true, Auth: pending})
		l.c.Start(l.now)
		l.advance(2 * time.Second)
		l.s.SendControlNow(l.now, "INFO_PRE,CR_TEXT:R:Enter the code from your app")
		l.advance(70 * time.Second) // past hand-window: the server's timeout holds
		want := []EventAuthPrompt{{Method: "crtext", Flags: "R", Prompt: Prompt{Kind: PromptCRText, Text: "Enter the code from your app"}}}
		if d := cmp.Diff(want, authPrompts(l)); d != "" {
			t.Fatalf("auth prompts (-want +got):\n%s", d)
		}
		if l.has(StateReconnecting) {
			t.Fatalf("gave up while pending: %v %v", l.states, l.errs)
		}
		l.c.SetResponse("424242")
		l.advance(time.Second)
		if !slices.Contains(l.s.Msgs, "CR_RESPONSE,NDI0MjQy") {
			t.Fatalf("server got %q, want CR_RESPONSE,NDI0MjQy", l.s.Msgs)
		}
		l.s.SendControlNow(l.now, "PUSH_REPLY,"+basicPush)
		l.advance(time.Second)
		if !l.has(StateConnected) {
			t.Fatalf("not connected after the server completed: %v %v", l.states, l.errs)
		}
	})
	t.Run("web-login", func(t *testing.T) {
		l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true, Auth: pending})
		l.c.Start(l.now)
		l.advance(2 * time.Second)
		l.s.SendControlNow(l.now, "INFO_PRE,WEB_AUTH::https://sso.example.com/auth?state=9")
		l.advance(time.Second)
		want := []EventAuthPrompt{{Method: "webauth", Prompt: Prompt{Kind: PromptWebLogin, URL: "https://sso.example.com/auth?state=9"}}}
		if d := cmp.Diff(want, authPrompts(l)); d != "" {
			t.Fatalf("auth prompts (-want +got):\n%s", d)
		}
		// A response without an open CR_TEXT is not sent anywhere.
		l.c.SetResponse("stray")
		l.advance(time.Second)
		for _, m := range l.s.Msgs {
			if strings.HasPrefix(m, "CR_RESPONSE") {
				t.Fatalf("sent %q without a CR_TEXT", m)
			}
		}
		// The server's timeout expires: the client gives up and reconnects.
		l.advance(125 * time.Second)
		if st := l.lastState(); st.State != StateReconnecting || st.Reason != "push-failed" {
			t.Fatalf("state %+v after the pending timeout, want reconnecting push-failed", st)
		}
	})
	t.Run("bad url ignored", func(t *testing.T) {
		l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true, Auth: pending})
		l.c.Start(l.now)
		l.advance(2 * time.Second)
		l.s.SendControlNow(l.now, "INFO_PRE,OPEN_URL:file:///etc/passwd")
		l.advance(time.Second)
		if len(authPrompts(l)) != 0 || len(l.errs) == 0 {
			t.Fatalf("prompts %v errors %v, want none and a warning", authPrompts(l), l.errs)
		}
	})
}

func TestPeerInfoAnnouncesSSO(t *testing.T) {
	l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true})
	l.connect()
	if !strings.Contains(l.s.PeerInfo, "\nIV_SSO=webauth,openurl,crtext\n") {
		t.Fatalf("peer-info lacks IV_SSO:\n%s", l.s.PeerInfo)
	}
}
