package engine

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzSeeds records a real handshake so the fuzzers start from valid packets.
func fuzzSeeds(t testing.TB) [][]byte {
	l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true})
	var seeds [][]byte
	l.c.Start(l.now)
	for i := 0; i < 20 && !l.has(StateConnected); i++ {
		for _, p := range l.collect() {
			l.s.Handle(l.now, p)
		}
		for _, p := range l.s.Out {
			seeds = append(seeds, p)
			l.c.HandlePacket(l.now, p)
		}
		l.s.Out = nil
	}
	return seeds
}

// midHandshakeClient returns a client that has seen the server's reset and runs TLS.
func midHandshakeClient(t testing.TB) (*link, []byte) {
	l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true})
	l.c.Start(l.now)
	for _, p := range l.collect() {
		l.s.Handle(l.now, p)
	}
	reset := l.s.Out[0]
	l.c.HandlePacket(l.now, reset)
	l.s.Out = nil
	l.collect()
	return l, reset
}

func FuzzClientHandlePacket(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0x40, 0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0x20}, 64))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		l, reset := midHandshakeClient(t)
		// Give every input the server's session id so it reaches the reliable layer and TLS.
		if len(pkt) >= 9 && len(reset) >= 9 {
			pkt = append([]byte(nil), pkt...)
			copy(pkt[1:9], reset[1:9])
		}
		l.c.HandlePacket(l.now, pkt)
		l.c.HandleTimeout(l.now.Add(time.Second))
		l.c.Shutdown(l.now.Add(2 * time.Second))
		l.collect()
	})
}

func FuzzParseServerRecord(f *testing.F) {
	good := []byte{0, 0, 0, 0, 2}
	good = append(good, make([]byte, 64)...)
	good = appendString(good, "V4,cipher AES-256-GCM")
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), 0, 0, 0, 0, 0, 3, 'a', '=', 0))
	f.Add(good[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseServerRecord(b)
		if err == nil && len(r.options) > maxOptionsLen {
			t.Fatalf("options string of %d bytes accepted", len(r.options))
		}
	})
}

func FuzzControlMessages(f *testing.F) {
	for _, s := range []string{
		"PUSH_REPLY," + basicPush,
		"PUSH_REPLY,route 10.0.0.0 255.0.0.0,push-continuation 2",
		"PUSH_REPLY,peer-id 99999999,cipher",
		"PUSH_REPLY,compress lz4-v2,ping-restart 5,auth-token-user !!!",
		"AUTH_FAILED,TEMP[backoff 10]:later",
		"AUTH_PENDING,timeout 30,openurl",
		"AUTH_FAILED,CRV1:R,E:st:YWxpY2U=:Enter PIN",
		"AUTH_FAILED,CRV1:R:st",
		"INFO_PRE,WEB_AUTH::https://sso.example.com/x",
		"INFO_PRE,CR_TEXT:R:Enter code",
		"INFO,OPEN_URL:https://a",
		"RESTART,[P]:bye", "HALT", "EXIT", "INFO,x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		l, _ := midHandshakeClient(t)
		for _, m := range bytes.Split([]byte(msg), []byte{0}) {
			if len(m) > 0 {
				l.c.handleControlMessage(l.now, l.c.primary, string(m))
			}
		}
		l.c.HandleTimeout(l.now.Add(10 * time.Second))
		l.collect()
	})
}

func FuzzParseCRV1(f *testing.F) {
	for _, s := range []string{
		"CRV1:R,E:Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l:Y3Ix:Please enter token PIN",
		"CRV1::s:YWxpY2U=:",
		"CRV1:R:s:!!:x",
		"CRV1:R:s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCRV1(s)
		if err != nil {
			return
		}
		if c.StateID == "" || strings.ContainsFunc(c.StateID, isControl) || strings.ContainsFunc(c.Username, isControl) {
			t.Fatalf("accepted state id %q username %q", c.StateID, c.Username)
		}
		if strings.ContainsFunc(c.Text, isControl) || !utf8.ValidString(c.Text) {
			t.Fatalf("unsanitized text %q", c.Text)
		}
		if p := EncodeCRV1(c.StateID, "123456"); len(p) >= maxPackedPassLen {
			t.Fatalf("packed answer of %d bytes", len(p))
		}
	})
}

func FuzzParsePendingInfo(f *testing.F) {
	for _, s := range []string{
		"WEB_AUTH::https://sso.example.com/x", "WEB_AUTH:external:http://a/", "OPEN_URL:https://a",
		"CR_TEXT:R,E:Enter code", "CR_TEXT:R", "WEB_AUTH:proxy=1.2.3.4;1;;,x:https://a", "hello",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		info, ok, err := ParsePendingInfo(s)
		if !ok || err != nil {
			return
		}
		p := info.Prompt
		switch p.Kind {
		case PromptWebLogin:
			l := strings.ToLower(p.URL)
			if !strings.HasPrefix(l, "https://") && !strings.HasPrefix(l, "http://") || strings.ContainsAny(p.URL, " \n\x00\x1b") {
				t.Fatalf("accepted URL %q", p.URL)
			}
		case PromptCRText:
			if strings.ContainsFunc(p.Text, isControl) || !utf8.ValidString(p.Text) {
				t.Fatalf("unsanitized text %q", p.Text)
			}
		default:
			t.Fatalf("kind %v from %q", p.Kind, s)
		}
	})
}
