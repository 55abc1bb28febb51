package session

import (
	"context"
	"errors"
	"net"
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

// TestTCPControlWriteHasDeadline: a server that stops reading fills the TCP window; the
// data path's write then blocks holding the writer lock, and the control loop's write used
// to wait behind it forever (no deadline), so even Disconnect hung. Now the control write
// gives up after controlWriteTimeout and takes the stuck data write with it.
func TestTCPControlWriteHasDeadline(t *testing.T) {
	old := controlWriteTimeout
	controlWriteTimeout = 200 * time.Millisecond
	defer func() { controlWriteTimeout = old }()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // never read from
		}
	}()
	tc, err := dialTCP(context.Background(), ln.Addr().(*net.TCPAddr).AddrPort(), udpDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	peer := <-accepted
	defer peer.Close()
	// The data path writes until the window is full and its write blocks.
	dataDone := make(chan error, 1)
	go func() {
		pkt := make([][]byte, 64)
		for i := range pkt {
			pkt[i] = make([]byte, 60000)
		}
		for {
			if err := tc.WriteBatch(pkt); err != nil {
				dataDone <- err
				return
			}
		}
	}()
	// Control writes go through until the window is full; then one must fail in time.
	ctlDone := make(chan error, 1)
	go func() {
		for {
			if err := tc.WritePacket(make([]byte, 100)); err != nil {
				ctlDone <- err
				return
			}
		}
	}()
	select {
	case <-ctlDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the control write is still blocked")
	}
	select {
	case <-dataDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the stuck data write was not released")
	}
}
