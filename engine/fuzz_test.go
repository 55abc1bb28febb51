package engine

import (
	"bytes"
	"testing"
	"time"
)

// fuzzSeeds records a real handshake so the fuzzers start from valid packets.
func fuzzSeeds(t testing.TB) [][]byte {
	l := newLink(t, WrapNone, nil, serverOpts{push: []string{basicPush}, ekm: true})
	var seeds [][]byte
	l.c.Start(l.now)
	for i := 0; i < 20 && !l.has(StateConnected); i++ {
		for _, p := range l.collect() {
			l.s.handle(l.now, p)
		}
		for _, p := range l.s.out {
			seeds = append(seeds, p)
			l.c.HandlePacket(l.now, p)
		}
		l.s.out = nil
	}
	return seeds
}

// midHandshakeClient returns a client that has seen the server's reset and runs TLS.
func midHandshakeClient(t testing.TB) (*link, []byte) {
	l := newLink(t, WrapNone, nil, serverOpts{push: []string{basicPush}, ekm: true})
	l.c.Start(l.now)
	for _, p := range l.collect() {
		l.s.handle(l.now, p)
	}
	reset := l.s.out[0]
	l.c.HandlePacket(l.now, reset)
	l.s.out = nil
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
