package engine

import "testing"

// TestAuthenticatedControl: the count the session's --float relies on goes up for the
// server's control packets when tls-auth or tls-crypt authenticated them, never for a packet
// that fails that check, and never without a control-channel key (nothing authenticates a
// control packet then).
func TestAuthenticatedControl(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode WrapMode
	}{
		{"none", WrapNone},
		{"tls-auth", WrapTLSAuth},
		{"tls-crypt", WrapTLSCrypt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLink(t, tc.mode, nil, serverOpts{Push: []string{basicPush}, EKM: true})
			var last []byte // the server's last control packet
			l.drop = func(toServer bool, p []byte) bool {
				if op := p[0] >> 3; !toServer && op != 6 && op != 9 {
					last = append(last[:0], p...)
				}
				return false
			}
			l.connect()
			got := l.c.AuthenticatedControl()
			if tc.mode == WrapNone {
				if got != 0 {
					t.Fatalf("%d control packets counted as authenticated without tls-auth or tls-crypt", got)
				}
				return
			}
			if got == 0 {
				t.Fatal("no control packet of the handshake counted as authenticated")
			}
			// A copy of a real control packet with one byte changed.
			if last == nil {
				t.Fatal("no control packet from the server seen")
			}
			forged := append([]byte(nil), last...)
			forged[len(forged)-1] ^= 0x40
			l.c.HandlePacket(l.now, forged)
			if n := l.c.AuthenticatedControl(); n != got {
				t.Errorf("a forged control packet counted as authenticated (%d → %d)", got, n)
			}
			l.c.HandlePacket(l.now, last) // the real one again: a replay
			if n := l.c.AuthenticatedControl(); n != got {
				t.Errorf("a replayed control packet counted as authenticated (%d → %d)", got, n)
			}
		})
	}
}
