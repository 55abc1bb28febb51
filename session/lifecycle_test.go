package session

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
)

// TestStateFromEngine pins the engine-to-session half of the state vocabulary (daemon's
// TestStateVocabulary pins the session-to-D-Bus half).
func TestStateFromEngine(t *testing.T) {
	for st := engine.StateConnecting; st <= engine.StateClosed; st++ {
		got, _ := fromEngine(st)
		want := st.String()
		if st == engine.StateClosed {
			want = StateDisconnected.String()
		}
		if got.String() != want {
			t.Errorf("engine %v becomes session %v", st, got)
		}
	}
}

// waitState polls until the session is in state st (or fails after a generous bound).
func waitState(t *testing.T, s *Session, st State) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.State() != st {
		if time.Now().After(deadline) {
			t.Fatalf("state %v, want %v", s.State(), st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runAsync runs s and returns a channel with Run's result.
func runAsync(s *Session) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	return done
}

// waitRun waits for Run's result; a Run that does not return is the defect under test.
func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after Disconnect")
		return nil
	}
}

// TestDisconnectDuringResolve: `resolv-retry infinite` is the default, and Disconnect used to
// be a droppable message that the resolver never read, so `ovpnctl down` was ignored.
func TestDisconnectDuringResolve(t *testing.T) {
	cfg := &config.Config{DevType: config.DevNull, ResolvRetry: config.ResolvRetryInfinite,
		Connections: []config.Connection{{Remote: "vpn.example", Port: 1194}}}
	lookups := make(chan struct{}, 100)
	s, err := New(cfg, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	s.opts.lookup = func(ctx context.Context, _, _ string) ([]netip.Addr, error) {
		lookups <- struct{}{}
		<-ctx.Done() // a resolver that never answers
		return nil, ctx.Err()
	}
	done := runAsync(s)
	<-lookups
	waitState(t, s, StateResolving)
	s.Disconnect()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run after Disconnect: %v", err)
	}
	if st := s.Status(); st.State != StateDisconnected {
		t.Errorf("final state %v", st.State)
	}
}

// TestDisconnectIsSticky: a Disconnect that comes before Run (SIGTERM while starting) is
// not lost.
func TestDisconnectIsSticky(t *testing.T) {
	cfg := &config.Config{DevType: config.DevNull, Connections: []config.Connection{{Remote: "vpn.example", Port: 1194}}}
	s, err := New(cfg, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	s.opts.lookup = func(ctx context.Context, _, _ string) ([]netip.Addr, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s.Disconnect()
	if err := waitRun(t, runAsync(s)); err != nil {
		t.Errorf("Run after Disconnect: %v", err)
	}
}

// racyTun is a device whose Close reports what wireguard's NativeTun.Close reports about
// once in 130 stops: its netlink listener closed the descriptor first.
type racyTun struct {
	nullTun
	closeErr error
}

func (t *racyTun) Close() error {
	t.nullTun.Close()
	return t.closeErr
}

// TestCleanStopIgnoresTunCloseRace: `ovpnd run` exited 1 after SIGTERM when the tun close
// lost that race, although the device and the network settings were gone. A clean stop
// must exit 0; any other close error still counts.
func TestCleanStopIgnoresTunCloseRace(t *testing.T) {
	for _, tc := range []struct {
		err  error
		fail bool
	}{
		{&os.PathError{Op: "write", Path: "|1", Err: os.ErrClosed}, false},
		{errors.New("EIO"), true},
	} {
		s, err := New(&config.Config{Connections: []config.Connection{{Remote: "vpn", Port: 1194}}}, Options{Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		close(done)
		r := &runner{s: s, cfg: s.cfg, tun: &racyTun{nullTun: *newNullTun(), closeErr: tc.err}, dp: &dataPath{}, txDone: done}
		if err := r.closeTun(); (err != nil) != tc.fail {
			t.Errorf("close error %v: closeTun returned %v", tc.err, err)
		}
	}
}
