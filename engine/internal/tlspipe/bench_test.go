package tlspipe

import (
	"crypto/tls"
	"testing"
)

func BenchmarkHandshakeTLS13(b *testing.B) {
	ccfg, scfg := configs(b, tls.VersionTLS13)
	b.ReportAllocs()
	for b.Loop() {
		c, s := Client(ccfg), Server(scfg)
		for range 10 {
			c2s, s2c := c.TakeOutput(), s.TakeOutput()
			if len(c2s) == 0 && len(s2c) == 0 {
				break
			}
			s.Feed(c2s)
			c.Feed(s2c)
		}
		if !c.HandshakeComplete() {
			b.Fatal(c.Err())
		}
		c.Close()
		s.Close()
	}
}

// BenchmarkAppData measures one 1 KiB control message through WriteApp, Feed and ReadApp,
// including the goroutine hand-off.
func BenchmarkAppData(b *testing.B) {
	ccfg, scfg := configs(b, tls.VersionTLS13)
	c, s := Client(ccfg), Server(scfg)
	for range 10 {
		s.Feed(c.TakeOutput())
		c.Feed(s.TakeOutput())
	}
	defer c.Close()
	defer s.Close()
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteApp(msg); err != nil {
			b.Fatal(err)
		}
		s.Feed(c.TakeOutput())
		if got, ok := s.ReadApp(); !ok || len(got) != len(msg) {
			b.Fatal("message not delivered")
		}
	}
}
