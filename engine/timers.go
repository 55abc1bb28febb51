package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/ovpnd/ovpnd/engine/datachannel"
)

// occExitInterval is how often OCC_EXIT repeats during explicit-exit-notify (OpenVPN's
// explicit_exit_notification_interval is one second).
const occExitInterval = time.Second

// HandleTimeout runs every timer that is due at now: retransmissions, hand-window, push
// requests, keepalive, renegotiation, key retirement and the exit notification.
func (c *Client) HandleTimeout(now time.Time) {
	if c.dead || c.closed || !c.started {
		return
	}
	c.setNow(now)
	c.checkTimers(now)
	if c.dead || c.closed {
		return
	}
	c.advanceAll(now)
	c.flush(now)
}

func (c *Client) checkTimers(now time.Time) {
	due := func(t time.Time) bool { return !t.IsZero() && !now.Before(t) }

	for _, ks := range []*keyState{c.primary, c.retiring} {
		if ks != nil && !ks.km2Recv && due(c.handDeadline(ks)) {
			c.fatal(StateReconnecting, "tls-error",
				fmt.Errorf("TLS key negotiation failed to occur within %v (key id %d)", c.cfg.HandWindow, ks.id))
			return
		}
	}
	if c.exiting {
		c.exitTimers(now)
		return
	}
	if c.pushStarted && !c.pushDone {
		if due(c.pushDeadline) {
			c.fatal(StateReconnecting, "push-failed",
				errors.New("no reply from server to push requests"))
			return
		}
		if due(c.pushNext) {
			c.sendPushRequest(now)
		}
	}
	if c.pingExit > 0 && due(c.lastRecv.Add(c.pingExit)) {
		c.fatal(StateExiting, "ping-exit", fmt.Errorf("inactivity timeout (--ping-exit %v)", c.pingExit))
		return
	}
	if c.pingRestart > 0 && due(c.lastRecv.Add(c.pingRestart)) {
		c.fatal(StateReconnecting, "ping-restart", fmt.Errorf("inactivity timeout (--ping-restart %v)", c.pingRestart))
		return
	}
	if c.ping > 0 && c.sendKeys() != nil && due(c.lastSent.Add(c.ping)) {
		c.sealData(now, datachannel.PingPayload[:])
	}
	if r := c.retiring; r != nil && due(r.mustDie) {
		if r.tls != nil {
			r.tls.close()
		}
		c.retiring = nil
		if r.keys != nil {
			c.emitKeys()
		}
	}
	if c.switchDue(now, false) {
		c.switchKeys()
	}
	if c.renegDue(now) {
		c.softReset(now)
	}
}

// handDeadline is when a key state must have finished key-method 2, extended by AUTH_PENDING.
func (c *Client) handDeadline(ks *keyState) time.Time {
	d := ks.started.Add(c.cfg.HandWindow)
	if ks.id == 0 && c.authPendingUntl.After(d) {
		d = c.authPendingUntl
	}
	return d
}

// renegDue reports whether the client should start a renegotiation (ssl.c tls_process: reneg
// seconds, bytes, packets, or packet ids close to wrapping).
func (c *Client) renegDue(now time.Time) bool {
	ks := c.primary
	if ks == nil || ks.keys == nil || ks.state != ksActive || !c.pushDone || c.exiting {
		return false
	}
	if c.cfg.RenegInterval > 0 && !now.Before(ks.estab.Add(c.cfg.RenegInterval)) {
		return true
	}
	if c.cfg.RenegBytes > 0 && c.totalBytes()-ks.baseByte >= c.cfg.RenegBytes {
		return true
	}
	if c.cfg.RenegPackets > 0 && c.totalPackets()-ks.basePkt >= c.cfg.RenegPackets {
		return true
	}
	return ks.keys.SendExhausted()
}

// NextDeadline is when HandleTimeout must next run; zero means no timer is needed.
func (c *Client) NextDeadline() time.Time {
	if c.dead || c.closed || !c.started {
		return time.Time{}
	}
	var d time.Time
	add := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	for _, ks := range []*keyState{c.primary, c.retiring} {
		if ks == nil {
			continue
		}
		add(ks.rel.NextDeadline())
		if !ks.km2Recv {
			add(c.handDeadline(ks))
		}
		if len(ks.pending) > 0 && ks.rel.SendWindowFree() > 0 {
			add(c.timeNow())
		}
	}
	if c.exiting {
		add(c.exitDeadline())
		add(c.exitNextOCC)
		return d
	}
	if c.pushStarted && !c.pushDone {
		add(c.pushDeadline)
		add(c.pushNext)
	}
	if c.pingExit > 0 {
		add(c.lastRecv.Add(c.pingExit))
	}
	if c.pingRestart > 0 {
		add(c.lastRecv.Add(c.pingRestart))
	}
	if c.ping > 0 && c.sendKeys() != nil {
		add(c.lastSent.Add(c.ping))
	}
	if c.retiring != nil {
		add(c.retiring.mustDie)
	}
	if p := c.primary; p != nil && p.keys != nil && !p.sending {
		add(p.lastCtl.Add(c.cfg.TLSTimeout))
	}
	if ks := c.primary; ks != nil && ks.keys != nil && ks.state == ksActive && c.pushDone && c.cfg.RenegInterval > 0 {
		add(ks.estab.Add(c.cfg.RenegInterval))
	}
	return d
}

// Shutdown sends the explicit-exit-notify (EXIT control message when the server announced
// cc-exit, otherwise OCC_EXIT data packets once a second for ExplicitExitNotify seconds) and
// then reports StateClosed. Without a notification to send it reports StateClosed at once.
func (c *Client) Shutdown(now time.Time) {
	if c.closed || c.exiting {
		return
	}
	c.setNow(now)
	n := c.cfg.ExplicitExitNotify
	if c.dead || !c.started || n <= 0 || c.sendKeys() == nil || (c.cfg.Proto == ProtoTCP && !c.ccExit) {
		c.close("shutdown")
		return
	}
	c.exiting = true
	c.exitStart = now
	if c.ccExit && c.primary != nil && c.primary.tls != nil && c.primary.km2Recv {
		c.exitCC = c.primary
		before := c.primary.rel.Unacked()
		c.sendControlMessage(c.primary, "EXIT")
		if c.primary.rel.Unacked() == before && len(c.primary.pending) == 0 {
			// Nothing was queued (the TLS session failed); fall back to OCC.
			c.exitCC = nil
		}
	}
	if c.exitCC == nil {
		c.sendOCCExit(now)
	}
	c.flush(now)
}

func (c *Client) sendOCCExit(now time.Time) {
	c.sealData(now, datachannel.AppendOCCExit(nil))
	c.exitNextOCC = now.Add(occExitInterval)
}

func (c *Client) exitDeadline() time.Time {
	return c.exitStart.Add(time.Duration(c.cfg.ExplicitExitNotify) * time.Second)
}

func (c *Client) exitTimers(now time.Time) {
	if !now.Before(c.exitDeadline()) {
		c.close("exit-notify-done")
		return
	}
	if c.exitCC != nil {
		if c.exitCC.rel.Unacked() == 0 && len(c.exitCC.pending) == 0 {
			c.close("exit-notify-acked")
		}
		return
	}
	if !now.Before(c.exitNextOCC) {
		c.sendOCCExit(now)
	}
}

// close finishes a Shutdown.
func (c *Client) close(reason string) {
	if c.closed {
		return
	}
	c.closed = true
	c.exiting = false
	c.closeAll()
	c.setState(StateClosed, reason)
}
