package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/ovpnd/ovpnd/session"
)

// Notifier reports a tunnel's life to systemd through sd_notify (NOTIFY_SOCKET): a STATUS=
// line for every state, READY=1 only once the tunnel is up, STOPPING=1 when it goes down,
// and WATCHDOG=1 at half of WATCHDOG_USEC while the session answers. Without NOTIFY_SOCKET
// every message is dropped.
type Notifier struct {
	send     func(state string) error
	watchdog time.Duration
	// Name, when set, is the ovpnd@NAME instance: the status while it waits for input
	// says to answer with `ovpnctl auth NAME`.
	Name string
	// waitingFor is what the session waits for over the bus, from Waiting.
	waitingFor atomic.Pointer[string]
}

// Waiting records what the session now waits for and says so at once; the status stays so
// while the session is in its waiting-input state. Use it as InstanceOptions.Waiting.
func (n *Notifier) Waiting(what string) {
	n.waitingFor.Store(&what)
	n.Status(waitingLine(what, n.Name))
}

func waitingLine(what, name string) string {
	s := "waiting for " + what
	if name != "" {
		s += " (ovpnctl auth " + name + ")"
	}
	return s
}

// NewNotifier reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID from the environment.
func NewNotifier() *Notifier {
	wd, _ := sddaemon.SdWatchdogEnabled(false)
	return &Notifier{
		send: func(state string) error {
			_, err := sddaemon.SdNotify(false, state)
			return err
		},
		watchdog: wd,
	}
}

// Notify sends one message (several may be joined by newlines).
func (n *Notifier) Notify(state string) error {
	if n == nil || n.send == nil {
		return nil
	}
	return n.send(state)
}

// Status sends a STATUS= line.
func (n *Notifier) Status(text string) error { return n.Notify("STATUS=" + oneLine(text)) }

// Observe follows t until ctx ends or the returned stop is called; stop waits for the
// observer to finish. It re-reads t's status whenever t wakes it, so it reports the latest
// state even when it misses transient ones; call it before t.Run.
func (n *Notifier) Observe(ctx context.Context, t Tunnel) (stop func()) {
	wake, unwatch := t.Watch()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer unwatch()
		var tick <-chan time.Time
		if n.watchdog > 0 {
			tk := time.NewTicker(n.watchdog / 2)
			defer tk.Stop()
			tick = tk.C
		}
		ready, stopping := false, false
		last := ""
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
				// Status takes the session's lock: a wedged session stops the pings and
				// systemd restarts it.
				_ = t.Status()
				n.Notify("WATCHDOG=1")
			case <-wake:
				st := t.Status()
				what := "credentials"
				if p := n.waitingFor.Load(); p != nil {
					what = *p
				}
				line := statusLine(st, n.Name, what)
				var msgs []string
				if line != last {
					last = line
					msgs = append(msgs, "STATUS="+line)
				}
				// Connected is set for good once a connection came up, so a wake-up
				// that coalesced past the connected state still sends READY=1.
				if !ready && !st.Connected.IsZero() && !st.State.Finished() {
					ready = true
					msgs = append(msgs, "READY=1")
				}
				if !stopping && (st.State == session.StateExiting || st.State.Finished()) {
					stopping = true
					msgs = append(msgs, "STOPPING=1")
				}
				if len(msgs) > 0 {
					n.Notify(strings.Join(msgs, "\n"))
				}
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// statusLine is the STATUS= text for a status; name is the instance's (see Notifier.Name),
// waitingFor what it waits for in the waiting-input state.
func statusLine(st session.Status, name, waitingFor string) string {
	switch st.State {
	case session.StateWaitingInput:
		return oneLine(waitingLine(waitingFor, name))
	case session.StateAuthPending:
		// The session's reason names the web login ("waiting for web login at URL"):
		// a browser answers it, not ovpnctl.
		if st.Reason != "" {
			return oneLine(st.Reason)
		}
		return "waiting for authentication to complete"
	}
	if st.State == session.StateConnected {
		parts := []string{"connected"}
		if st.Remote.IsValid() {
			parts = append(parts, "to "+st.Proto+":"+st.Remote.String())
		}
		if len(st.Addrs) > 0 {
			a := make([]string, len(st.Addrs))
			for i, p := range st.Addrs {
				a[i] = p.String()
			}
			parts = append(parts, "address "+strings.Join(a, " "))
		}
		return strings.Join(parts, " ")
	}
	if st.WebLogin != "" {
		// What the administrator must do, and where (also in the journal).
		return oneLine("waiting for web login at " + st.WebLogin)
	}
	s := st.State.String()
	if st.Reason != "" {
		s = fmt.Sprintf("%s: %s", s, st.Reason)
	}
	return oneLine(s)
}

// oneLine keeps sd_notify's newline-separated format intact and the line short.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return clipUTF8(s, 512)
}
