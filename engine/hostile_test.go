package engine

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// checkServerText fails when a server's text reaches an event unbounded or unprintable.
func checkServerText(t *testing.T, what, s string) {
	t.Helper()
	if len(s) > maxServerText+8 {
		t.Errorf("%s is %d bytes, want at most about %d", what, len(s), maxServerText)
	}
	if !utf8.ValidString(s) {
		t.Errorf("%s is not valid UTF-8: %q", what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			t.Errorf("%s carries control character %U: %q", what, r, truncate(s, 80))
			return
		}
	}
}

// hostileText forges a log line, clears the terminal, carries invalid UTF-8 and a C1 CSI, and
// is far longer than any honest reason.
var hostileText = "no\n2024-01-01 ovpnd[1]: forged\x1b[2J\r\xff\u009b1m" + strings.Repeat("A", 6000)

// TestServerTextIsSanitized feeds each control message that carries server text straight to
// the control-message handler (in a connection each is one TLS record) and checks the events.
func TestServerTextIsSanitized(t *testing.T) {
	for _, msg := range []string{"AUTH_FAILED,", "AUTH_PENDING,timeout 30,", "INFO,", "INFO_PRE,", "HALT,", "RESTART,"} {
		t.Run(msg, func(t *testing.T) {
			c, err := NewClient(testConfig(t, testPKI(t)))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1700000000, 0)
			c.Start(now)
			c.handleControlMessage(now, nil, msg+hostileText)
			n := 0
			for e := c.NextEvent(); e != nil; e = c.NextEvent() {
				var text string
				switch e := e.(type) {
				case EventAuthFailed:
					text = e.Message
				case EventAuthPending:
					text = e.Method
				case EventInfo:
					text = e.Message
				default:
					continue
				}
				n++
				checkServerText(t, msg+" text", text)
				if !strings.Contains(text, "no 2024-01-01") {
					t.Errorf("text lost its content: %q", truncate(text, 40))
				}
			}
			if n == 0 {
				t.Fatal("no event carried the server's text")
			}
		})
	}
}

// TestPushReplyByteBound: a server sending push-continuation 2 with large options must not
// grow the client's memory beyond maxPushBytes; the push fails instead. The parts go straight
// to the control-message handler: each is one TLS record (≤ 16 KiB) in a real connection.
func TestPushReplyByteBound(t *testing.T) {
	c, err := NewClient(testConfig(t, testPKI(t)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	c.Start(now)
	big := "PUSH_REPLY,setenv X " + strings.Repeat("a", 15000) + ",push-continuation 2"
	parts := 0
	for ; parts < 2*maxPushBytes/len(big) && !c.dead; parts++ {
		c.handleControlMessage(now, nil, big)
	}
	if !c.dead {
		t.Fatalf("client still collecting after %d parts (%d bytes kept)", parts, c.pushParts.bytes)
	}
	if c.pushParts.bytes > maxPushBytes+len(big) || len(c.pushParts.opts) > maxPushBytes/15000+1 {
		t.Errorf("kept %d options (%d bytes)", len(c.pushParts.opts), c.pushParts.bytes)
	}
	found := false
	for e := c.NextEvent(); e != nil; e = c.NextEvent() {
		if ee, ok := e.(EventError); ok && ee.Fatal && strings.Contains(ee.Err.Error(), "larger than") {
			found = true
		}
	}
	if !found {
		t.Error("no fatal error names the size")
	}
}

// TestEndlessEmptyContinuations: "PUSH_REPLY,push-continuation 2" forever adds nothing, and
// the hand-window still ends the wait.
func TestEndlessEmptyContinuations(t *testing.T) {
	l := newLink(t, WrapNone, nil, serverOpts{Push: []string{"push-continuation 2"}})
	l.c.Start(l.now)
	l.advance(2 * time.Second)
	for range 10000 {
		l.c.handleControlMessage(l.now, nil, "PUSH_REPLY,push-continuation 2")
	}
	if len(l.c.pushParts.opts) != 0 || l.c.pushParts.bytes != 0 {
		t.Errorf("empty continuations kept %d options, %d bytes", len(l.c.pushParts.opts), l.c.pushParts.bytes)
	}
	l.advance(l.c.cfg.HandWindow + time.Second)
	if l.has(StateConnected) || !l.c.dead {
		t.Errorf("still waiting for the push after the hand-window; states %v", l.states)
	}
}

// TestControlMessageSplitAcrossRecords: a message is handled once its NUL arrives, whatever the
// TLS record boundaries, and an endless unterminated message ends the connection.
func TestControlMessageSplitAcrossRecords(t *testing.T) {
	c, err := NewClient(testConfig(t, testPKI(t)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	ks := &keyState{km2Sent: true, km2Recv: true}
	c.handleRecord(now, ks, []byte("INFO,hel"))
	c.handleRecord(now, ks, []byte("lo\x00INFO,sec"))
	c.handleRecord(now, ks, []byte("ond\x00"))
	var got []string
	for e := c.NextEvent(); e != nil; e = c.NextEvent() {
		if ev, ok := e.(EventInfo); ok {
			got = append(got, ev.Message)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "hello") || !strings.Contains(got[1], "second") {
		t.Fatalf("info messages %q, want hello and second", got)
	}
	if ks.partial != nil {
		t.Errorf("%d bytes left over", len(ks.partial))
	}

	c.handleRecord(now, ks, []byte(strings.Repeat("A", maxControlMessage+1)))
	if !c.dead {
		t.Error("an unterminated message over the limit did not end the connection")
	}
}
