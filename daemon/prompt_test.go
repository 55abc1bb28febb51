package daemon

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// promptTunnel asks for a static-challenge answer through Respond, then waits in auth-pending
// for a web login until released.
type promptTunnel struct {
	*fakeTunnel
	respond func(context.Context, session.Prompt) (string, error)
	release chan struct{}

	mu     sync.Mutex
	answer string
}

func (f *promptTunnel) Run(ctx context.Context) error {
	f.set(session.StateAuthenticating, "")
	f.set(session.StateWaitingInput, "")
	a, err := f.respond(ctx, session.Prompt{Kind: session.PromptStaticChallenge, Text: "Enter OTP"})
	if err != nil {
		f.set(session.StateDisconnected, err.Error())
		return err
	}
	f.mu.Lock()
	f.answer = a
	f.mu.Unlock()
	// As the session does: the URL in the status, then the state change that wakes watchers.
	f.fakeTunnel.mu.Lock()
	f.status.WebLogin = "https://sso.example.com/login?x=1"
	f.fakeTunnel.mu.Unlock()
	f.set(session.StateAuthPending, "waiting for web login")
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil
	}
	f.fakeTunnel.mu.Lock()
	f.status.WebLogin = ""
	f.fakeTunnel.mu.Unlock()
	f.set(session.StateConnected, "")
	<-ctx.Done()
	return nil
}

type pendingEntry struct {
	ID     uint32
	Kind   string
	Prompt string
	Secret bool
	URL    string
}

// TestPromptsOverBus: a challenge is asked with its kind, text and echo flag and answered
// with ProvideInput; a web login is listed with its URL, announced with OpenURL, refused by
// ProvideInput, and gone once the server completes it.
func TestPromptsOverBus(t *testing.T) {
	addr := privateBus(t)
	profile := loadTestProfile(t)
	srv := dial(t, addr)
	alice := dial(t, addr)
	auth := &fakeAuth{uids: map[string]uint32{alice.Names()[0]: 1000}, allowed: map[uint32]bool{1000: true}}
	tunc := make(chan *promptTunnel, 1)
	_, err := NewManager(Options{Conn: srv, Auth: auth, Log: NewLogger(&bytes.Buffer{}), Linger: time.Hour,
		NewTunnel: func(cfg *config.Config, o session.Options) (Tunnel, error) {
			pt := &promptTunnel{fakeTunnel: newFakeTunnel(o), respond: o.Respond, release: make(chan struct{})}
			tunc <- pt
			return pt, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RequestName(api.BusName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 256)
	alice.Signal(sigs)
	var path dbus.ObjectPath
	if err := alice.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, "otp", profile, map[string]dbus.Variant{}).Store(&path); err != nil {
		t.Fatal(err)
	}
	pt := <-tunc
	obj := alice.Object(api.BusName, path)
	pending := func() []pendingEntry {
		t.Helper()
		var p []pendingEntry
		if err := obj.Call(api.SessionInterface+".PendingInput", 0).Store(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitSignal := func(name string, n int) []any {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case s := <-sigs:
				if s.Name == api.SessionInterface+"."+name && len(s.Body) == n {
					return s.Body
				}
			case <-deadline:
				t.Fatalf("no %s signal", name)
			}
		}
	}

	body := waitSignal("InputRequired", 5)
	if body[1] != api.InputStaticChallenge || body[2] != "Enter OTP" || body[3] != true || body[4] != "" {
		t.Errorf("InputRequired %v", body)
	}
	waitFor(t, func() bool {
		v, err := obj.GetProperty(api.SessionInterface + ".State")
		return err == nil && v.Value() == api.StateWaitingInput
	})
	p := pending()
	if len(p) != 1 || p[0].Kind != api.InputStaticChallenge || p[0].Prompt != "Enter OTP" || !p[0].Secret {
		t.Fatalf("pending %+v", p)
	}
	if err := obj.Call(api.SessionInterface+".ProvideInput", 0, p[0].ID, "123456").Err; err != nil {
		t.Fatal(err)
	}

	body = waitSignal("OpenURL", 1)
	if body[0] != "https://sso.example.com/login?x=1" {
		t.Errorf("OpenURL %v", body)
	}
	waitFor(t, func() bool {
		v, err := obj.GetProperty(api.SessionInterface + ".State")
		return err == nil && v.Value() == api.StateAuthPending
	})
	pt.mu.Lock()
	if pt.answer != "123456" {
		t.Errorf("tunnel got answer %q", pt.answer)
	}
	pt.mu.Unlock()
	p = pending()
	if len(p) != 1 || p[0].Kind != api.InputWebLogin || p[0].URL != "https://sso.example.com/login?x=1" {
		t.Fatalf("pending during the web login %+v", p)
	}
	if err := obj.Call(api.SessionInterface+".ProvideInput", 0, p[0].ID, "x").Err; dbusErrName(err) != api.ErrInvalidArgument {
		t.Errorf("ProvideInput on a web login: %v, want InvalidArgument", err)
	}
	close(pt.release)
	waitFor(t, func() bool {
		v, err := obj.GetProperty(api.SessionInterface + ".State")
		return err == nil && v.Value() == api.StateConnected
	})
	if p := pending(); len(p) != 0 {
		t.Errorf("pending after the login completed: %+v", p)
	}
	if err := obj.Call(api.SessionInterface+".Disconnect", 0).Err; err != nil {
		t.Fatal(err)
	}
}
