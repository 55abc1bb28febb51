package session

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ovpnd/ovpnd/engine/enginetest"
)

// TestRunLoopChallenge: a CRV1 challenge is asked through Respond with its text and echo flag,
// the session logs in again at once as the challenge's user with CRV1::STATE::ANSWER, and the
// profile's password is not asked again.
func TestRunLoopChallenge(t *testing.T) {
	challenge := "AUTH_FAILED,CRV1:R,E:st-9:" + base64.StdEncoding.EncodeToString([]byte("alice@corp")) + ":Enter the PIN"
	var mu sync.Mutex
	var logins []string
	u := startUDPServer(t, enginetest.Options{Push: []string{runloopPush}, EKM: true,
		Auth: func(user, pass string) string {
			mu.Lock()
			logins = append(logins, user+"/"+pass)
			mu.Unlock()
			switch {
			case user == "alice" && pass == "s3cret":
				return challenge
			case user == "alice@corp" && pass == "CRV1::st-9::4321":
				return ""
			}
			return "AUTH_FAILED,wrong"
		}})
	var prompts []Prompt
	respond := func(ctx context.Context, p Prompt) (string, error) {
		mu.Lock()
		prompts = append(prompts, p)
		mu.Unlock()
		return "4321", nil
	}
	var logs strings.Builder
	logf := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(&logs, format+"\n", args...)
		mu.Unlock()
	}
	st := startSession(t, runloopProfile(t, u, "<auth-user-pass>\nalice\ns3cret\n</auth-user-pass>\n"), Options{Respond: respond, Verb: 9, Logf: logf})
	st.waitState(t, StateConnected)
	mu.Lock()
	want := []string{"alice/s3cret", "alice@corp/CRV1::st-9::4321"}
	if !slices.Equal(logins, want) {
		t.Errorf("logins %q, want %q", logins, want)
	}
	if len(prompts) != 1 || prompts[0].Kind != PromptChallenge || prompts[0].Text != "Enter the PIN" || !prompts[0].Echo {
		t.Errorf("prompts %+v", prompts)
	}
	// Nothing the user entered reaches the log, even at the highest verbosity.
	if out := logs.String(); !strings.Contains(out, "the server asks a challenge: Enter the PIN") {
		t.Errorf("the challenge is not logged:\n%s", out)
	} else if strings.Contains(out, "4321") || strings.Contains(out, "s3cret") {
		t.Errorf("the log carries an answer or the password:\n%s", out)
	}
	mu.Unlock()
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunLoopWebLogin: AUTH_PENDING and a WEB_AUTH URL put the session in auth-pending with
// the URL in its status until the server completes the login; the URL goes with the state.
func TestRunLoopWebLogin(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{Push: []string{runloopPush}, EKM: true,
		Auth: func(user, pass string) string { return "AUTH_PENDING,timeout 60" }})
	st := startSession(t, runloopProfile(t, u, ""), Options{})
	st.waitState(t, StateAuthPending)
	u.sendControl("INFO_PRE,WEB_AUTH::https://sso.example.com/l?s=1")
	st.wait(t, "web login URL", func(s Status) bool { return s.WebLogin == "https://sso.example.com/l?s=1" })
	u.sendControl("PUSH_REPLY," + runloopPush)
	st.waitState(t, StateConnected)
	if w := st.s.Status().WebLogin; w != "" {
		t.Errorf("web login %q still in the status once connected", w)
	}
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
