package engine

import (
	"crypto/sha256"
	"github.com/ovpnd/ovpnd/engine/datachannel"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/engine/push"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// link runs a Client and a testServer back to back on synthetic time.
type link struct {
	t   testing.TB
	now time.Time
	c   *Client
	s   *testServer

	// drop, when set, decides whether a packet is lost; toServer says the direction.
	drop func(toServer bool, pkt []byte) bool
	// reorder reverses each batch of packets in flight.
	reorder bool
	// sendOnKeys seals a data packet under each new primary key the moment its EventKeys is
	// drained, as the session's data path may do before the events after it are handled.
	sendOnKeys bool
	sentOnKeys int

	events    []Event
	states    []EventState
	keys      []EventKeys
	tun       [][]byte
	push      []string
	reply     *push.Reply
	errs      []error
	authFail  []string
	needCreds int
}

func testConfig(t testing.TB, p *pki) *Config {
	return &Config{
		RootCAs:             p.CAPool,
		Certificate:         &p.ClientCert,
		RemoteCertTLSServer: true,
		VerifyX509Type:      VerifyX509Name,
		VerifyX509Name:      "Test-Server",
		KeyDirection:        -1,
		Rand:                mrand.NewChaCha8([32]byte{1}),
		IVVer:               "2.6.14",
	}
}

func newLink(t testing.TB, mode WrapMode, cfg *Config, opts serverOpts) *link {
	t.Helper()
	p := testPKI(t)
	if cfg == nil {
		cfg = testConfig(t, p)
	}
	w := wrapperPair(t, mode, cfg)
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	s := newTestServer(t, p, w, opts)
	switch mode {
	case WrapTLSAuth, WrapTLSCrypt:
		s.OrigKey = cfg.WrapKey
	case WrapTLSCryptV2:
		s.OrigKey = &cfg.TLSCryptV2.Key
	}
	l := &link{t: t, now: epoch, c: c, s: s}
	t.Cleanup(func() {
		c.closeAll()
		s.Close()
	})
	return l
}

// collect drains the client's events, returning the packets it wants to send.
func (l *link) collect() [][]byte {
	var out [][]byte
	for e := l.c.NextEvent(); e != nil; e = l.c.NextEvent() {
		l.events = append(l.events, e)
		switch e := e.(type) {
		case EventSend:
			out = append(out, e.Packet)
		case EventState:
			l.states = append(l.states, e)
		case EventKeys:
			l.keys = append(l.keys, e)
			if l.sendOnKeys && e.Primary != nil {
				ip := ipPacket(1000 + l.sentOnKeys)
				buf := make([]byte, datachannel.Headroom+len(ip)+datachannel.Tailroom)
				copy(buf[datachannel.Headroom:], ip)
				pkt, err := e.Primary.Seal(buf, datachannel.Headroom, len(ip))
				if err != nil {
					l.t.Fatalf("sealing under new keys: %v", err)
				}
				l.sentOnKeys++
				out = append(out, pkt)
			}
		case EventTunPacket:
			l.tun = append(l.tun, e.Packet)
		case EventPushReply:
			l.reply = e.Reply
			l.push = nil
			for _, o := range e.Reply.Accepted {
				l.push = append(l.push, o.String())
			}
		case EventError:
			l.errs = append(l.errs, e.Err)
		case EventAuthFailed:
			l.authFail = append(l.authFail, e.Message)
		case EventNeedCredentials:
			l.needCreds++
		}
	}
	return out
}

// pump delivers packets both ways until nothing is in flight.
func (l *link) pump() {
	for i := 0; ; i++ {
		if i > 10000 {
			l.t.Fatal("pump: no quiescence after 10000 rounds")
		}
		toServer := l.collect()
		toClient := l.s.Out
		l.s.Out = nil
		if len(toServer) == 0 && len(toClient) == 0 {
			return
		}
		if l.reorder {
			reverse(toServer)
			reverse(toClient)
		}
		for _, p := range toServer {
			if l.drop != nil && l.drop(true, p) {
				continue
			}
			l.s.Handle(l.now, p)
		}
		for _, p := range toClient {
			if l.drop != nil && l.drop(false, p) {
				continue
			}
			l.c.HandlePacket(l.now, p)
		}
	}
}

func reverse(b [][]byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// advance moves time forward by d, firing both sides' timers in order.
func (l *link) advance(d time.Duration) {
	end := l.now.Add(d)
	for i := 0; ; i++ {
		if i > 100000 {
			l.t.Fatal("advance: timer loop does not terminate")
		}
		l.pump()
		next := l.c.NextDeadline()
		if sd := l.s.NextDeadline(); !sd.IsZero() && (next.IsZero() || sd.Before(next)) {
			next = sd
		}
		if next.IsZero() || next.After(end) {
			break
		}
		if next.After(l.now) {
			l.now = next
		}
		l.c.HandleTimeout(l.now)
		l.s.Now = l.now
		l.s.Flush(l.now)
	}
	l.now = end
	l.pump()
}

// connect starts the client and runs until Connected (or fails the test).
func (l *link) connect() {
	l.t.Helper()
	l.c.Start(l.now)
	for i := 0; i < 200 && !l.has(StateConnected); i++ {
		l.advance(500 * time.Millisecond)
		if l.has(StateReconnecting) || l.has(StateExiting) {
			break
		}
	}
	if !l.has(StateConnected) {
		l.t.Fatalf("not connected; states %v, errors %v", l.states, l.errs)
	}
}

func (l *link) has(s State) bool {
	for _, e := range l.states {
		if e.State == s {
			return true
		}
	}
	return false
}

func (l *link) lastState() EventState {
	if len(l.states) == 0 {
		return EventState{State: -1}
	}
	return l.states[len(l.states)-1]
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }
