package daemon

import (
	"context"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/session"
)

// Tunnel is the part of *session.Session the daemon drives; tests substitute their own.
type Tunnel interface {
	Run(ctx context.Context) error
	Status() session.Status
	// Watch wakes the caller (coalesced) after status changes; it re-reads Status.
	Watch() (<-chan struct{}, func())
	// Subscribe delivers log lines; it may drop them.
	Subscribe() (<-chan session.Event, func())
	Disconnect()
	Restart()
}

// TunnelFactory makes a Tunnel for a loaded profile.
type TunnelFactory func(cfg *config.Config, opts session.Options) (Tunnel, error)

func newSessionTunnel(cfg *config.Config, opts session.Options) (Tunnel, error) {
	return session.New(cfg, opts)
}

// stateName maps the session's states to the API's vocabulary: they are the same words
// (TestStateVocabulary pins every one to its dbus/ constant).
func stateName(st session.State) string {
	return st.String()
}
