package session

import (
	"errors"
	"fmt"

	"github.com/ovpnd/ovpnd/routing"
)

// DNSModeExternal is Status.DNSMode for a session in external network mode.
const DNSModeExternal = "external"

// externalNet is the session's network applier in external network mode
// (Options.ExternalNet): instead of configuring the tun device, it publishes
// the network configuration routing would have applied in Status.NetConfig,
// for the client that applies it (NetworkManager's plugin). The session
// still creates and keeps the tun device and runs the protocol; nothing here
// touches the kernel or the resolver. The configuration still takes part in
// the host-wide network ownership: claims records it in routing's host
// ledger, so that other owners' tunnels are held to it as to any tunnel's.
type externalNet struct {
	s *Session
	// claims is a routing.Router with Options.External: it records, never
	// applies.
	claims netRouter
}

// Set publishes cfg after routing's own bounds and checks (routing.Sanitize);
// what those leave out is reported like a setting routing refused. nil
// withdraws the configuration (the tun device goes away or the session ends).
func (e *externalNet) Set(cfg *routing.Config) error {
	c, err := routing.Sanitize(cfg)
	if c != nil && c.Link == "" {
		c = nil
	}
	// Claimed before it is published: the applier installs it only then.
	cerr := e.claims.Set(c)
	if cerr != nil {
		cerr = fmt.Errorf("recording the network configuration in the host ledger: %w", cerr)
	}
	e.s.update(func(st *Status) {
		st.NetConfig = c
		if c != nil {
			st.NetGen++
		}
	})
	if err != nil {
		err = fmt.Errorf("network configuration for the external client: %w", err)
	}
	return errors.Join(err, cerr)
}

// Refresh has nothing to redo: the client that applies the configuration
// follows the underlying network itself.
func (e *externalNet) Refresh() error { return nil }

// DNSMode says that DNS is left to the external client.
func (e *externalNet) DNSMode() string { return DNSModeExternal }

// Close withdraws the configuration and releases its claims.
func (e *externalNet) Close() error { return errors.Join(e.Set(nil), e.claims.Close()) }
