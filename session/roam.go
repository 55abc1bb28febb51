package session

import (
	"context"
	"fmt"
	"time"
)

// Roaming. A UDP socket connected to the server keeps the source address it had when it was
// connected; when that address goes away (DHCP renew, Wi-Fi to Ethernet) every send fails with
// ENETUNREACH until ping-restart. The session instead opens a new socket as soon as the route
// monitor reports a change towards the server or a send fails for lack of a route or address,
// and moves the transport to it when the kernel now picks another source address. An OpenVPN
// 2.6 server follows a client to its new address on the first authenticated data packet with
// the client's peer-id, so no new TLS handshake is needed; a keepalive ping goes out at once
// to carry it. If nothing comes back within roamVerify although the tunnel was busy before the
// move, the session reconnects.
const (
	// roamVerify is how long after a move the server has to answer before the session
	// reconnects.
	roamVerify = 2 * time.Second
	// roamMinInterval spaces out move attempts while sends keep failing without any route.
	roamMinInterval = 500 * time.Millisecond
	// roamBusy: the tunnel counts as busy when the server was heard from this recently
	// before the move; only then does silence after the move mean the move failed.
	roamBusy = 10 * time.Second
)

// underlayChanged tells the current attempt to check its transport; it never blocks.
func (r *runner) underlayChanged() {
	select {
	case r.underlay <- struct{}{}:
	default:
	}
}

// startReader runs the socket reader of ref, counted in the attempt's wait group;
// a.readerDone closes when it returns. Only one reader may run: they share the data path's
// receive buffers.
func (a *attempt) startReader(ref *connRef) {
	done := make(chan struct{})
	a.readerDone = done
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(done)
		a.r.dp.RoutineSocketToTun(ref)
	}()
}

// roam moves the transport to a new UDP socket when the kernel now sends towards the server
// from another local address. Only plain UDP without a fixed local address roams: TCP and
// proxies reconnect as before, and a bound address is the user's choice. Before the tunnel is
// up there is no peer-id for the server to follow: a changed address then ends the attempt,
// and the next one starts from the new address at once.
func (a *attempt) roam(ctx context.Context, now time.Time) (outcome, bool) {
	old, ok := a.pc.(*udpConn)
	if !ok || (a.conn.Bind && (a.conn.Local != "" || a.conn.LocalPort != 0)) || !a.shutdown.IsZero() {
		return outcome{}, false
	}
	if !a.roamTried.IsZero() && now.Sub(a.roamTried) < roamMinInterval {
		// The loop's timer tries again once the interval is over (roamDeadline), in case
		// no other signal comes.
		a.roamPending = true
		return outcome{}, false
	}
	a.roamTried, a.roamPending = now, false
	pc, err := a.r.dial(ctx, a.conn, a.remote)
	if err != nil {
		// Said once per outage: sends keep failing, and every failure is a signal.
		if a.noPathSince.IsZero() {
			a.noPathSince = now
			a.s.logf(1, "no path to %v (%v); the connection waits for one", a.remote, err)
		} else {
			a.s.logf(4, "underlay changed; still no path to %v: %v", a.remote, err)
		}
		return outcome{}, false
	}
	if !a.noPathSince.IsZero() {
		a.s.logf(1, "path to %v is back after %v", a.remote, now.Sub(a.noPathSince).Round(time.Millisecond))
		a.noPathSince = time.Time{}
	}
	nu, ok := pc.(*udpConn)
	if !ok || nu.LocalAddr().Addr() == old.LocalAddr().Addr() {
		pc.Close()
		return outcome{}, false
	}
	if !a.connected {
		pc.Close()
		reason := fmt.Sprintf("local address changed (%v → %v) during the handshake", old.LocalAddr().Addr(), nu.LocalAddr().Addr())
		a.s.logf(1, "%s; starting again", reason)
		return outcome{kind: outRetry, reason: reason}, true
	}
	a.s.logf(1, "local address changed (%v → %v); moving the connection to %v without a new handshake",
		old.LocalAddr().Addr(), nu.LocalAddr().Addr(), a.remote)
	ref := a.newRef(nu)
	oldRef := a.ref
	a.r.dp.moveConn(oldRef, ref)
	a.pc, a.ref = nu, ref
	// The old reader must be gone before the new one starts (shared buffers); closing its
	// socket ends its read at once, and what reaches the new socket meanwhile waits there.
	oldRef.closing.Store(true)
	old.Close()
	<-a.readerDone
	a.startReader(ref)
	local := nu.LocalAddr()
	a.s.update(func(st *Status) { st.Local = local })
	if a.movedAt.IsZero() {
		a.movedAt = now
	}
	a.eng.SendPing(now)
	return outcome{}, false
}

// roamDeadline is when the loop must next look at roaming (zero: no need).
func (a *attempt) roamDeadline() time.Time {
	var d time.Time
	if a.roamPending {
		d = a.roamTried.Add(roamMinInterval)
	}
	if !a.movedAt.IsZero() {
		if v := a.movedAt.Add(roamVerify); d.IsZero() || v.Before(d) {
			d = v
		}
	}
	return d
}

// checkRoam ends the attempt when the server stayed silent for roamVerify after a move
// although it had been talking shortly before: the server did not follow, and a reconnect
// (new handshake) is the way back.
func (a *attempt) checkRoam(ctx context.Context, now time.Time) (outcome, bool) {
	if a.roamPending && !now.Before(a.roamTried.Add(roamMinInterval)) {
		if out, done := a.roam(ctx, now); done {
			return out, true
		}
	}
	if a.movedAt.IsZero() || now.Before(a.movedAt.Add(roamVerify)) {
		return outcome{}, false
	}
	moved := a.movedAt
	a.movedAt = time.Time{}
	last := a.s.cnt.snapshot().LastRecv
	if last.After(moved) || last.Before(moved.Add(-roamBusy)) {
		return outcome{}, false
	}
	reason := "no answer from the server after moving to a new local address"
	a.s.logf(1, "%s; reconnecting", reason)
	return outcome{kind: outRetry, reason: reason, connected: a.connected}, true
}
