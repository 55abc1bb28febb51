package tlspipe

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixedNow stands in for the clock: tls.Config.Time makes crypto/tls use it instead of
// the system clock for certificate validity.
var fixedNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	certOnce sync.Once
	testCert tls.Certificate
	testPool *x509.CertPool
	certErr  error
)

// selfSigned returns a self-signed ECDSA P-256 certificate valid at fixedNow, and a pool
// trusting it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "tlspipe test server"},
			NotBefore:             fixedNow.Add(-time.Hour),
			NotAfter:              fixedNow.Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			DNSNames:              []string{"server.test"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			certErr = err
			return
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		testPool = x509.NewCertPool()
		testPool.AddCert(leaf)
	})
	if certErr != nil {
		t.Fatalf("generating test certificate: %v", certErr)
	}
	return testCert, testPool
}

func configs(t testing.TB, version uint16) (client, server *tls.Config) {
	cert, pool := selfSigned(t)
	clock := func() time.Time { return fixedNow }
	client = &tls.Config{
		RootCAs:    pool,
		ServerName: "server.test",
		MinVersion: version,
		MaxVersion: version,
		Time:       clock,
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   version,
		MaxVersion:   version,
		Time:         clock,
	}
	return client, server
}

// feeder splits a byte stream into Feed calls.
type feeder func(s *Session, b []byte)

func feedWhole(s *Session, b []byte) { s.Feed(b) }

func feedBytewise(s *Session, b []byte) {
	for i := range b {
		s.Feed(b[i : i+1])
	}
}

func feedRandomChunks(seed int64) feeder {
	rng := mrand.New(mrand.NewSource(seed))
	return func(s *Session, b []byte) {
		for len(b) > 0 {
			n := 1 + rng.Intn(min(len(b), 700))
			s.Feed(b[:n])
			b = b[n:]
		}
	}
}

// shuttle moves records between the two sessions until neither has anything to say. It never
// sleeps: after Feed returns, the peer's reaction is already in TakeOutput.
func shuttle(t *testing.T, c, s *Session, feed feeder) (flights int) {
	t.Helper()
	for flights = 0; flights < 50; flights++ {
		c2s, s2c := c.TakeOutput(), s.TakeOutput()
		if len(c2s) == 0 && len(s2c) == 0 {
			return flights
		}
		if len(c2s) > 0 {
			feed(s, c2s)
		}
		if len(s2c) > 0 {
			feed(c, s2c)
		}
	}
	t.Fatal("sessions still talking after 50 flights")
	return flights
}

// checkNoLeak waits, without sleeping on a clock, until the goroutine count is back to base.
func checkNoLeak(t *testing.T, base int) {
	t.Helper()
	for range 100_000 {
		if runtime.NumGoroutine() <= base {
			return
		}
		runtime.Gosched()
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
}

func drainApp(s *Session) [][]byte {
	var out [][]byte
	for {
		b, ok := s.ReadApp()
		if !ok {
			return out
		}
		out = append(out, b)
	}
}

func TestHandshakeAndAppData(t *testing.T) {
	versions := []struct {
		name string
		v    uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}
	feeders := []struct {
		name string
		f    feeder
	}{
		{"whole", feedWhole},
		{"bytewise", feedBytewise},
		{"chunks", feedRandomChunks(1)},
	}
	for _, ver := range versions {
		for _, fd := range feeders {
			t.Run(ver.name+"/"+fd.name, func(t *testing.T) {
				base := runtime.NumGoroutine()
				ccfg, scfg := configs(t, ver.v)
				c := Client(ccfg)
				s := Server(scfg)

				if c.HandshakeComplete() || s.HandshakeComplete() {
					t.Fatal("handshake complete before any exchange")
				}
				if err := c.WriteApp([]byte("early")); !errors.Is(err, ErrHandshakeIncomplete) {
					t.Fatalf("WriteApp before handshake: %v", err)
				}
				flights := shuttle(t, c, s, fd.f)
				if !c.HandshakeComplete() || !s.HandshakeComplete() {
					t.Fatalf("handshake incomplete after %d flights: client err %v, server err %v", flights, c.Err(), s.Err())
				}
				cst, _ := c.ConnectionState()
				sst, _ := s.ConnectionState()
				if cst.Version != ver.v || sst.Version != ver.v {
					t.Fatalf("versions %x/%x, want %x", cst.Version, sst.Version, ver.v)
				}
				// OpenVPN's tls-ekm: both sides must export the same keying material.
				ck, err1 := cst.ExportKeyingMaterial("EXPORTER-OpenVPN-datakeys", nil, 256)
				sk, err2 := sst.ExportKeyingMaterial("EXPORTER-OpenVPN-datakeys", nil, 256)
				if err1 != nil || err2 != nil || !bytes.Equal(ck, sk) {
					t.Fatalf("EKM mismatch (%v, %v)", err1, err2)
				}

				// Small messages keep their boundaries: one WriteApp, one record, one ReadApp.
				msgs := []string{"PUSH_REQUEST\x00", "hello", "x"}
				for _, m := range msgs {
					if err := c.WriteApp([]byte(m)); err != nil {
						t.Fatalf("client WriteApp: %v", err)
					}
				}
				shuttle(t, c, s, fd.f)
				got := drainApp(s)
				if len(got) != len(msgs) {
					t.Fatalf("server read %d chunks %q, want %q", len(got), got, msgs)
				}
				for i := range msgs {
					if string(got[i]) != msgs[i] {
						t.Fatalf("chunk %d = %q, want %q", i, got[i], msgs[i])
					}
				}

				// A large message crosses many records and arrives intact.
				big := make([]byte, 100_000)
				for i := range big {
					big[i] = byte(i * 7)
				}
				if err := s.WriteApp(big); err != nil {
					t.Fatalf("server WriteApp: %v", err)
				}
				shuttle(t, c, s, fd.f)
				if joined := bytes.Join(drainApp(c), nil); !bytes.Equal(joined, big) {
					t.Fatalf("client read %d bytes, want %d intact", len(joined), len(big))
				}
				if _, ok := c.ReadApp(); ok {
					t.Fatal("ReadApp returned data after draining")
				}

				if err := c.Close(); err != nil {
					t.Fatalf("client Close: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("server Close: %v", err)
				}
				for _, x := range []*Session{c, s} {
					select {
					case <-x.Done():
					default:
						t.Fatal("Done not closed after Close")
					}
					if !errors.Is(x.Err(), net.ErrClosed) {
						t.Fatalf("Err after Close = %v, want net.ErrClosed", x.Err())
					}
					if err := x.WriteApp([]byte("late")); err == nil {
						t.Fatal("WriteApp after Close succeeded")
					}
				}
				c.Feed([]byte("ignored")) // must not block
				checkNoLeak(t, base)
			})
		}
	}
}

// TestHandshakeRepeated runs many handshakes to give the race detector and the idle tracking
// a chance to trip.
func TestHandshakeRepeated(t *testing.T) {
	base := runtime.NumGoroutine()
	for i := range 30 {
		v := uint16(tls.VersionTLS12)
		if i%2 == 1 {
			v = tls.VersionTLS13
		}
		ccfg, scfg := configs(t, v)
		c, s := Client(ccfg), Server(scfg)
		shuttle(t, c, s, feedRandomChunks(int64(i)))
		if !c.HandshakeComplete() || !s.HandshakeComplete() {
			t.Fatalf("run %d: handshake incomplete: %v / %v", i, c.Err(), s.Err())
		}
		if err := s.WriteApp([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		c.Feed(s.TakeOutput())
		if b, ok := c.ReadApp(); !ok || string(b) != fmt.Sprint(i) {
			t.Fatalf("run %d: ReadApp right after Feed = %q, %v", i, b, ok)
		}
		c.Close()
		s.Close()
	}
	checkNoLeak(t, base)
}

func TestHandshakeFailure(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(c, s *tls.Config)
		clientErr string
		serverErr string
	}{
		{"untrusted certificate", func(c, s *tls.Config) { c.RootCAs = x509.NewCertPool() }, "certificate", "bad certificate"},
		{"wrong name", func(c, s *tls.Config) { c.ServerName = "other.test" }, "other.test", "bad certificate"},
		{"expired at configured time", func(c, s *tls.Config) {
			c.Time = func() time.Time { return fixedNow.Add(48 * time.Hour) }
		}, "expired", "bad certificate"},
		{"version mismatch", func(c, s *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
			s.MinVersion, s.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		}, "protocol version", "unsupported versions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			ccfg, scfg := configs(t, tls.VersionTLS13)
			ccfg.MinVersion, scfg.MinVersion = tls.VersionTLS12, tls.VersionTLS12
			tt.mutate(ccfg, scfg)
			c, s := Client(ccfg), Server(scfg)
			shuttle(t, c, s, feedWhole)
			for _, x := range []struct {
				name string
				s    *Session
				want string
			}{{"client", c, tt.clientErr}, {"server", s, tt.serverErr}} {
				select {
				case <-x.s.Done():
				default:
					t.Fatalf("%s still running after failed handshake", x.name)
				}
				if err := x.s.Err(); err == nil || !strings.Contains(err.Error(), x.want) {
					t.Fatalf("%s Err = %v, want it to mention %q", x.name, err, x.want)
				}
				if x.s.HandshakeComplete() {
					t.Fatalf("%s reports a complete handshake", x.name)
				}
			}
			c.Feed([]byte{22, 3, 3, 0, 1, 0}) // after exit: discarded, must not block
			c.Close()
			s.Close()
			checkNoLeak(t, base)
		})
	}
}

func TestAppBacklogLimit(t *testing.T) {
	ccfg, scfg := configs(t, tls.VersionTLS13)
	c := Client(ccfg)
	s := start(scfg, false, 10)
	shuttle(t, c, s, feedWhole)
	if err := c.WriteApp([]byte("0123456")); err != nil {
		t.Fatal(err)
	}
	s.Feed(c.TakeOutput())
	if err := c.WriteApp([]byte("789abc")); err != nil {
		t.Fatal(err)
	}
	s.Feed(c.TakeOutput())
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "not drained") {
		t.Fatalf("server Err = %v, want backlog error", err)
	}
	if b, ok := s.ReadApp(); !ok || string(b) != "0123456" {
		t.Fatalf("data before the limit lost: %q %v", b, ok)
	}
	c.Close()
	s.Close()
}

// FuzzClientFeed feeds arbitrary bytes to a client waiting for a ServerHello: it must either
// keep waiting or fail, never hang or panic.
func FuzzClientFeed(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{22, 3, 3, 0, 4, 2, 0, 0, 0})
	f.Add([]byte{21, 3, 3, 0, 2, 2, 40})
	f.Add([]byte{23, 3, 3, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{22, 3, 1, 0, 0}, 10))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			return
		}
		ccfg, _ := configs(t, tls.VersionTLS13)
		ccfg.MinVersion = tls.VersionTLS12
		c := Client(ccfg)
		c.TakeOutput()
		c.Feed(in)
		if c.HandshakeComplete() {
			t.Fatal("handshake completed from garbage")
		}
		c.Close()
		if c.Err() == nil {
			t.Fatal("no error after Close")
		}
	})
}
