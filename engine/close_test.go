package engine

import (
	"runtime"
	"testing"
	"time"
)

// TestCloseEndsTLSGoroutines drops a Client in every phase of a connection (the session does
// this on restart, transport loss, OCC exit and connect timeout) and checks that Close leaves
// no crypto/tls goroutine behind.
func TestCloseEndsTLSGoroutines(t *testing.T) {
	phases := []struct {
		name string
		run  func(l *link)
	}{
		{"after the reset", func(l *link) {
			l.c.Start(l.now)
			l.s.Handle(l.now, l.collect()[0])
			for _, p := range l.s.Out {
				l.c.HandlePacket(l.now, p)
			}
			l.s.Out = nil
		}},
		{"mid handshake", func(l *link) {
			l.c.Start(l.now)
			l.drop = func(toServer bool, _ []byte) bool { return !toServer }
			l.advance(time.Second)
		}},
		{"connected", func(l *link) { l.connect() }},
		{"after soft reset", func(l *link) {
			l.connect()
			l.c.softReset(l.now)
			l.advance(time.Second)
		}},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			base := countGoroutines()
			l := newLink(t, WrapNone, nil, serverOpts{Push: []string{basicPush}, EKM: true})
			ph.run(l)
			if countGoroutines() <= base {
				t.Fatal("no TLS goroutine running before Close: the test proves nothing")
			}
			l.c.Close()
			l.s.Close()
			if n := waitGoroutines(base); n > base {
				t.Errorf("%d goroutines after Close, %d before the connection", n, base)
			}
			// Every method is a no-op afterwards.
			l.c.HandleTimeout(l.now.Add(time.Hour))
			l.c.HandlePacket(l.now, []byte{0x38})
			l.c.SetCredentials("u", "p")
			l.c.Shutdown(l.now)
			if e := l.c.NextEvent(); e != nil {
				t.Errorf("event %#v after Close", e)
			}
			l.c.Close()
		})
	}
}

func countGoroutines() int { return runtime.NumGoroutine() }

// waitGoroutines lets goroutines that closed their done channel finish returning (the engine
// may not sleep, even in tests: deps_test.go); it returns as soon as the count is back at want.
func waitGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100000 && n > want; i++ {
		runtime.Gosched()
		n = runtime.NumGoroutine()
	}
	return n
}
