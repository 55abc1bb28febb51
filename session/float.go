package session

import (
	"net/netip"
	"time"

	"github.com/ovpnd/ovpnd/config"
)

// --float: the server's address may change. A float socket (udpfloat_linux.go) takes datagrams
// from any address; one from another address than the peer's moves the peer there only once
// it has authenticated: a data packet that decrypts (the data path moves the peer itself, so
// the next batch already goes to the new address, and wakes the loop through connRef.moved),
// or a control packet that passes tls-auth or tls-crypt (handleCtrl). Without tls-auth or
// tls-crypt nothing authenticates a control packet, and those from another address are
// dropped. A replayed data packet fails the replay check, so a copy sent from elsewhere moves
// nothing either. The control loop then follows: the attempt's remote, the status, and the
// routes (the bypass route to the server and the route monitor's server addresses), through
// the router's diff like any other change of the network settings.

// newRef is the data path's view of pc for this attempt.
func (a *attempt) newRef(pc packetConn) *connRef {
	return &connRef{conn: pc, ctrl: a.ctrl, errc: a.errc, float: asFloat(pc), moved: a.moved}
}

// handleCtrl hands a control packet to the engine. One from a new address on a float
// socket moves the peer if the engine authenticated it.
func (a *attempt) handleCtrl(now time.Time, p *ctrlPacket) {
	if !p.from.IsValid() {
		a.gotPacket = true
		a.eng.HandlePacket(now, p.b)
		return
	}
	fl := a.ref.float
	if fl == nil || a.r.cfg.TLSWrap.Mode == config.WrapNone {
		return // nothing could tell the server's packet from a stranger's
	}
	before := a.eng.AuthenticatedControl()
	a.eng.HandlePacket(now, p.b)
	if a.eng.AuthenticatedControl() == before {
		return
	}
	a.gotPacket = true
	if fl.setPeer(p.from) {
		a.floated()
	}
}

// floated follows a move of the float socket's peer: the attempt's remote, the status and,
// once the tunnel's routes are in place, the routes.
func (a *attempt) floated() {
	fl := a.ref.float
	if fl == nil {
		return
	}
	peer := fl.peerAddr()
	old := netip.AddrPortFrom(a.remote.Addr().Unmap(), a.remote.Port())
	if peer == old {
		return
	}
	a.remote = peer
	a.s.logf(1, "float: the server now sends from %v (was %v); sending there", peer, old)
	a.s.update(func(st *Status) { st.Remote = peer })
	if a.connected && peer.Addr() != old.Addr() {
		a.r.serverMoved(peer.Addr())
	}
}

// serverMoved re-plans the network settings for the server's new address: the bypass route
// of a redirect-gateway and the route monitor follow it.
func (r *runner) serverMoved(server netip.Addr) {
	if r.router == nil {
		return
	}
	rc, _ := r.netConfig(server)
	r.netMu.Lock()
	defer r.netMu.Unlock()
	// A route-delay still pending would install routes that bypass the old address later;
	// the settings go in whole now instead.
	r.cancelDelayLocked()
	err := r.router.Set(rc)
	if err != nil {
		r.s.logf(1, "network settings of %s after the server moved to %v: %v", r.link, server, err)
	}
	r.s.noteNet(r.withRefusals(err))
}
