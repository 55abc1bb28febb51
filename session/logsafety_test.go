package session

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine/push"
)

// TestApplyPushDoesNotLogToken: the PUSH_REPLY is logged at verbosity 3, and an auth-token in
// it is a credential.
func TestApplyPushDoesNotLogToken(t *testing.T) {
	const secret = "S3CRETTOKEN"
	r, _, logs := newTestRunner(t, &config.Config{TunMTU: 1500})
	lines := append(append([]string(nil), labPush...), "auth-token "+secret, "auth-token-user "+"dXNlcg==")
	if err := applyPushLines(r, lines, netip.MustParseAddr("198.18.0.1")); err != nil {
		t.Fatalf("applyPush: %v", err)
	}
	if r.creds.token != secret {
		t.Fatalf("token not kept for reconnects: %q", r.creds.token)
	}
	out := logs()
	if !strings.Contains(out, "PUSH_REPLY: ") {
		t.Fatalf("PUSH_REPLY not logged at verbosity 4:\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, "dXNlcg==") {
		t.Errorf("log carries the auth-token:\n%s", out)
	}
	if !strings.Contains(out, "auth-token "+push.Redacted) {
		t.Errorf("log lacks the redacted auth-token:\n%s", out)
	}
}

// TestLogLinesAreSanitized: server-supplied text (AUTH_FAILED reasons, INFO, pushed option
// names in warnings) reaches the journal, stderr and D-Bus through logf and setState; it must
// not forge lines, carry terminal escapes, or be invalid UTF-8 (which the bus refuses).
func TestLogLinesAreSanitized(t *testing.T) {
	r, _, logs := newTestRunner(t, &config.Config{TunMTU: 1500})
	s := r.s
	events := make(chan Event, 16)
	s.mu.Lock()
	s.subs[events] = struct{}{}
	s.mu.Unlock()
	hostile := "denied\n2024-01-01 00:00:00 [other] forged line\x1b[2J\x07\r\xff\xfe\u009b31m"
	s.logf(0, "authentication failed: %s", hostile)
	s.setState(StateReconnecting, "authentication failed: "+hostile)
	out := strings.TrimSuffix(logs(), "\n")
	check := func(what, text string) {
		t.Helper()
		if !utf8.ValidString(text) {
			t.Errorf("%s is not valid UTF-8: %q", what, text)
		}
		for _, c := range text {
			if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
				t.Errorf("%s carries control character %U: %q", what, c, text)
				return
			}
		}
	}
	for _, line := range strings.Split(out, "\n") {
		check("log line", line)
	}
	if n := strings.Count(out, "\n") + 1; n != 2 {
		t.Errorf("two log calls produced %d lines:\n%s", n, out)
	}
	close(events)
	for e := range events {
		check("event message", e.Message)
	}
	if st := s.Status(); true {
		check("status reason", st.Reason)
	}
}
