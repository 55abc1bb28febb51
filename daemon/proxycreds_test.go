package daemon

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
)

// TestProxyCredentialsOverDBus: a proxy whose credentials the profile says to ask for is
// asked through the same InputRequired/ProvideInput requests as auth-user-pass, with the
// proxy named in the prompts, and the answers reach the session.
func TestProxyCredentialsOverDBus(t *testing.T) {
	o := newObject(nil, "work", 1000, &config.Config{}, NewLogger(&bytes.Buffer{}))
	o.tun = &fakeTunnel{}
	ask := o.sessionOptions(t.TempDir()).ProxyCredentials
	if ask == nil {
		t.Fatal("no ProxyCredentials callback in the session options")
	}
	type answer struct {
		user, pass string
		err        error
	}
	done := make(chan answer, 1)
	go func() {
		u, p, err := ask(context.Background(), "HTTP proxy")
		done <- answer{u, p, err}
	}()
	var pending []*inputRequest
	deadline := time.Now().Add(10 * time.Second)
	for len(pending) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no input requests")
		}
		time.Sleep(10 * time.Millisecond)
		o.mu.Lock()
		pending = o.pendingLocked()
		o.mu.Unlock()
	}
	if pending[0].kind != api.InputUsername || pending[0].prompt != "HTTP Proxy Username" ||
		pending[1].kind != api.InputPassword || pending[1].prompt != "HTTP Proxy Password" || !pending[1].secret {
		t.Fatalf("requests %+v %+v", *pending[0], *pending[1])
	}
	// ProvideInput itself (sender checks, bounds) is covered by TestManagerOverBus.
	for i, v := range []string{"alice", "proxy pw"} {
		provide(o, pending[i].id, v)
	}
	select {
	case a := <-done:
		if a.err != nil || a.user != "alice" || a.pass != "proxy pw" {
			t.Fatalf("answer %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session never got the answers")
	}
	if _, _, err := o.askProxyCredentials(context.Background(), "FTP proxy"); err == nil {
		t.Error("an unknown proxy kind was asked for")
	}
}

// provide answers one request as ProvideInput does once it has checked the caller.
func provide(o *object, id uint32, v string) {
	_ = o.provide(id, v)
}
