package session

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ovpnd/ovpnd/engine/enginetest"
	"github.com/ovpnd/ovpnd/routing"
)

// brokenTun is a tun device whose reads fail with an I/O error once broken, as a
// device does when it is deleted under the session.
type brokenTun struct {
	broken    chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func newBrokenTun() *brokenTun {
	return &brokenTun{broken: make(chan struct{}), closed: make(chan struct{})}
}

func (b *brokenTun) Read([][]byte, []int, int) (int, error) {
	select {
	case <-b.broken:
		return 0, &fs.PathError{Op: "read", Path: "/dev/net/tun", Err: syscall.EIO}
	case <-b.closed:
		return 0, os.ErrClosed
	}
}
func (b *brokenTun) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }
func (b *brokenTun) BatchSize() int                          { return maxBatch }
func (b *brokenTun) Close() error {
	b.closeOnce.Do(func() { close(b.closed) })
	return nil
}

type closingRouter struct{ fakeRouter }

func (*closingRouter) DNSMode() string { return "none" }
func (*closingRouter) Close() error    { return nil }

// TestTunFailureReconnects: a failing tun device does not end the session (which
// would drop a full tunnel's routes and let traffic out in the clear without a
// word): it reconnects with a new device and says why.
func TestTunFailureReconnects(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{})
	cfg := runloopProfile(t, u, "")
	cfg.Dev, cfg.DevType = "tun", 0
	var mu sync.Mutex
	var tuns []*brokenTun
	var opened atomic.Int32
	st := startSession(t, cfg, Options{
		openTun: func(string, int) (tunDevice, string, error) {
			mu.Lock()
			defer mu.Unlock()
			tn := newBrokenTun()
			tuns = append(tuns, tn)
			opened.Add(1)
			return tn, "tunfake", nil
		},
		newRouter: func(routing.Options) (netRouter, error) { return &closingRouter{}, nil },
		watchRoutes: func(ch chan<- netlink.RouteUpdate, done <-chan struct{}, _ func(error)) error {
			// As netlink does: the channel closes once the subscription ends.
			go func() { <-done; close(ch) }()
			return nil
		},
		readHost: func(netip.Addr) (hostNet, error) { return hostNet{}, nil },
	})
	st.waitState(t, StateConnected)
	mu.Lock()
	close(tuns[0].broken)
	mu.Unlock()
	st.wait(t, "a reconnect after the tun failure", func(s Status) bool { return s.State == StateReconnecting })
	st.waitState(t, StateConnected)
	if n := opened.Load(); n != 2 {
		t.Errorf("%d tun devices opened, want a new one after the failure", n)
	}
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestTunOpenFailureIsFatal: the tun device opens while the transport is dialled; when it
// cannot be opened the session still ends with that error, as before the two overlapped.
func TestTunOpenFailureIsFatal(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{})
	cfg := runloopProfile(t, u, "")
	cfg.Dev, cfg.DevType = "tun", 0
	var opened atomic.Int32
	st := startSession(t, cfg, Options{
		openTun: func(string, int) (tunDevice, string, error) {
			opened.Add(1)
			return nil, "", syscall.EPERM
		},
		newRouter: func(routing.Options) (netRouter, error) { return &closingRouter{}, nil },
		watchRoutes: func(ch chan<- netlink.RouteUpdate, done <-chan struct{}, _ func(error)) error {
			go func() { <-done; close(ch) }()
			return nil
		},
		readHost: func(netip.Addr) (hostNet, error) { return hostNet{}, nil },
	})
	err := st.result(t)
	if err == nil || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "opening tun device") {
		t.Fatalf("Run = %v, want the tun device's error", err)
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("%d opens, want 1", n)
	}
	if s := st.s.Status(); s.State != StateFailed {
		t.Errorf("state %v, want failed", s.State)
	}
}
