package session

import (
	"testing"

	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/fragment"
)

// TestRxBufSizeFor: a receive buffer holds the largest datagram a server may send for the
// device's largest MTU (tun-max-mtu at least) with all framing, in whole pages, and no more
// than a page at the usual MTUs (the 128 buffers are the session's largest memory cost).
func TestRxBufSizeFor(t *testing.T) {
	for _, mtu := range []int{0, 1280, 1500, 1600, 9000, 16000, 65535} {
		dc := dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: mtu}
		got := rxBufSizeFor(dc)
		need := tunWriteOffset + dc.Headroom + fragment.HeaderSize + max(mtu, engine.DefaultTunMaxMTU) + fragmentSlack + dc.Tailroom
		if got < need || got%4096 != 0 || got < rxBufMin {
			t.Errorf("mtu %d: rxBufSizeFor = %d, want a multiple of 4096, at least %d and %d", mtu, got, need, rxBufMin)
		}
		if mtu <= engine.DefaultTunMaxMTU && got != rxBufMin {
			t.Errorf("mtu %d: rxBufSizeFor = %d, want one page (%d)", mtu, got, rxBufMin)
		}
	}
	d := newDataPath(newNullTun(), &counters{}, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 9000}, t.Logf)
	if n := len(d.rx.bufs[0]); n != rxBufSizeFor(dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 9000}) {
		t.Errorf("newDataPath made %d-byte receive buffers", n)
	}
}
