package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/engine/wire"
	"github.com/ovpnd/ovpnd/engine/wrap"
)

// A control packet that authenticates under the tls-auth/tls-crypt key but
// comes from another server session (say the server's answer to a
// retransmitted reset, with a newer packet-id timestamp) is dropped, and
// must not move the replay window: before, it did, every later packet of
// the real session failed with "timestamp older than" and the handshake
// stalled in authenticating. A replay of the real session's packets is
// still dropped.
func TestStraySessionDoesNotPoisonReplayWindow(t *testing.T) {
	for name, mode := range map[string]WrapMode{"tls-auth": WrapTLSAuth, "tls-crypt": WrapTLSCrypt} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, testPKI(t))
			l := newLink(t, mode, cfg, serverOpts{Push: []string{basicPush}, EKM: true})
			var stray wrap.Wrapper
			var err error
			if mode == WrapTLSAuth {
				stray, err = wrap.NewTLSAuth(cfg.WrapKey, 0, "SHA1")
			} else {
				stray, err = wrap.NewTLSCrypt(cfg.WrapKey, false)
			}
			if err != nil {
				t.Fatal(err)
			}
			l.c.Start(l.now)
			for _, p := range l.collect() {
				l.s.Handle(l.now, p)
			}
			replies := l.s.Out
			l.s.Out = nil
			if len(replies) == 0 {
				t.Fatal("server sent no reset reply")
			}
			for _, p := range replies {
				l.c.HandlePacket(l.now, p)
			}
			// The other session's packet: newer timestamp, unknown session id.
			sp := wire.ControlPacket{Opcode: wire.OpHardResetServerV2, SessionID: wire.SessionID{0xee, 1}}
			pkt, err := stray.Wrap(nil, &sp, l.now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			l.c.HandlePacket(l.now, pkt)
			for i := 0; i < 100 && !l.has(StateConnected); i++ {
				l.advance(500 * time.Millisecond)
			}
			if !l.has(StateConnected) {
				t.Fatalf("not connected after a stray session's packet; states %v errors %v", l.states, l.errs)
			}
			l.errs = nil
			// The real session's first packet, replayed, is still refused.
			l.c.HandlePacket(l.now, replies[0])
			l.collect()
			replayed := false
			for _, e := range l.errs {
				replayed = replayed || errors.Is(e, wrap.ErrReplay)
			}
			if !replayed {
				t.Fatalf("replayed server reset not refused as a replay; errors %v", l.errs)
			}
		})
	}
}
