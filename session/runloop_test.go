package session

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine/enginetest"
	"github.com/ovpnd/ovpnd/engine/wrap"
)

// This file tests the run loop hermetically: the engine's test server (engine/enginetest)
// behind a UDP socket on loopback, and a session with `dev null`, so that reconnects,
// prompts, Disconnect in every phase and shutdown run through the real sockets, timers and
// goroutines without a network namespace or a tun device.

const runloopPush = "route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 60,ifconfig 10.8.0.2 255.255.255.0,peer-id 3,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm"

// serverMode says what the UDP server does with the client's packets.
type serverMode int

const (
	serveAll        serverMode = iota
	serveNothing               // drop everything: the client stays in connecting
	serveResetsOnly            // answer the hard reset, drop the rest: the client stays in tls-handshake
)

// udpServer runs one enginetest.Server per client (a new source address is a new client).
type udpServer struct {
	t    testing.TB
	conn *net.UDPConn
	pki  *enginetest.PKI
	opts enginetest.Options
	done chan struct{}

	mu      sync.Mutex
	mode    serverMode
	srv     *enginetest.Server
	peer    netip.AddrPort
	clients int
	handled int // packets handled for the current client
	msgs    []string
	exits   int // OCC EXITs and EXIT messages seen
}

func startUDPServer(t testing.TB, opts enginetest.Options) *udpServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Push == nil {
		opts.Push = []string{runloopPush}
		opts.EKM = true
	}
	u := &udpServer{t: t, conn: c, pki: enginetest.SharedPKI(t), opts: opts, done: make(chan struct{})}
	go u.run()
	t.Cleanup(u.stop)
	return u
}

func (u *udpServer) port() uint16 { return u.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

func (u *udpServer) setMode(m serverMode) {
	u.mu.Lock()
	u.mode = m
	u.mu.Unlock()
}

// stop closes the socket and waits for the server goroutine and its TLS goroutines.
func (u *udpServer) stop() {
	select {
	case <-u.done:
		return
	default:
	}
	u.conn.Close()
	<-u.done
}

func (u *udpServer) run() {
	defer close(u.done)
	defer func() {
		u.mu.Lock()
		if u.srv != nil {
			u.srv.Close()
		}
		u.mu.Unlock()
	}()
	buf := make([]byte, 65536)
	for {
		u.mu.Lock()
		wait := 20 * time.Millisecond
		if u.srv != nil {
			if d := u.srv.NextDeadline(); !d.IsZero() {
				wait = min(wait, max(time.Until(d), 0))
			}
		}
		u.mu.Unlock()
		u.conn.SetReadDeadline(time.Now().Add(wait))
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		u.mu.Lock()
		now := time.Now()
		if err == nil {
			u.handle(now, from, buf[:n])
		} else if u.srv != nil {
			u.srv.Flush(now)
		}
		var out [][]byte
		peer := u.peer
		if u.srv != nil {
			out, u.srv.Out = u.srv.Out, nil
		}
		u.mu.Unlock()
		for _, p := range out {
			u.conn.WriteToUDPAddrPort(p, peer)
		}
	}
}

// handle feeds one datagram to the server of its client; u.mu is held.
func (u *udpServer) handle(now time.Time, from netip.AddrPort, pkt []byte) {
	if from != u.peer {
		if u.srv != nil {
			u.collect()
			u.srv.Close()
		}
		u.srv = enginetest.NewServer(u.t, u.pki, wrap.NewNone(), u.opts)
		u.peer, u.handled = from, 0
		u.clients++
	}
	switch u.mode {
	case serveNothing:
		return
	case serveResetsOnly:
		if u.handled > 0 {
			return
		}
	}
	u.handled++
	u.srv.Handle(now, pkt)
	u.collect()
}

// collect moves what the current server saw into u (u.mu is held).
func (u *udpServer) collect() {
	u.msgs = append(u.msgs, u.srv.Msgs...)
	for _, m := range u.srv.Msgs {
		if m == "EXIT" {
			u.exits++
		}
	}
	u.exits += u.srv.OCCExits
	u.srv.Msgs, u.srv.OCCExits = nil, 0
}

// sendControl makes the server send a control message (RESTART, HALT, ...) now.
func (u *udpServer) sendControl(msg string) {
	u.mu.Lock()
	u.srv.SendControlNow(time.Now(), msg)
	out := u.srv.Out
	u.srv.Out = nil
	peer := u.peer
	u.mu.Unlock()
	for _, p := range out {
		u.conn.WriteToUDPAddrPort(p, peer)
	}
}

func (u *udpServer) stats() (clients, exits int, msgs []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		u.collect()
	}
	return u.clients, u.exits, slices.Clone(u.msgs)
}

// runloopProfile is a dev-null profile for the server, with the PKI inlined.
func runloopProfile(t testing.TB, u *udpServer, extra string) *config.Config {
	t.Helper()
	p := u.pki
	key, err := x509.MarshalPKCS8PrivateKey(p.ClientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	text := fmt.Sprintf("client\ndev null\nproto udp\nremote 127.0.0.1 %d\nnobind\nremote-cert-tls server\n"+
		"data-ciphers AES-256-GCM\nconnect-retry 1\nverb 3\n%s<ca>\n%s</ca>\n<cert>\n%s</cert>\n<key>\n%s</key>\n",
		u.port(), extra, pemOf("CERTIFICATE", p.CACert.Raw), pemOf("CERTIFICATE", p.ClientCert.Certificate[0]), pemOf("PRIVATE KEY", key))
	cfg, _, err := config.ParseInline("runloop", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// started is a running session and its Run result.
type started struct {
	s    *Session
	done chan error
}

func startSession(t testing.TB, cfg *config.Config, opts Options) *started {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	st := &started{s: s, done: make(chan error, 1)}
	go func() { st.done <- s.Run(context.Background()) }()
	return st
}

// wait waits until cond holds on the session's status.
func (st *started) wait(t testing.TB, what string, cond func(Status) bool) {
	t.Helper()
	wake, unwatch := st.s.Watch()
	defer unwatch()
	deadline := time.After(60 * time.Second)
	for !cond(st.s.Status()) {
		select {
		case <-wake:
		case err := <-st.done:
			t.Fatalf("Run returned %v while waiting for %s", err, what)
		case <-deadline:
			t.Fatalf("no %s within a minute; state %v", what, st.s.Status().State)
		}
	}
}

func (st *started) waitState(t testing.TB, want State) {
	t.Helper()
	st.wait(t, want.String(), func(s Status) bool { return s.State == want })
}

// result waits for Run to return; a Run that never returns is the defect under test.
func (st *started) result(t testing.TB) error {
	t.Helper()
	select {
	case err := <-st.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return; state %v", st.s.Status().State)
		return nil
	}
}

// settleGoroutines waits until the goroutine count is at most want and returns it.
func settleGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 500 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func TestRunLoopConnectDisconnect(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{})
	st := startSession(t, runloopProfile(t, u, "explicit-exit-notify 1\n"), Options{})
	st.waitState(t, StateConnected)
	if got := st.s.Status(); got.Cipher != "AES-256-GCM" || !got.Remote.IsValid() || got.Link != "null" {
		t.Errorf("status %+v", got)
	}
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.s.State() != StateDisconnected {
		t.Errorf("final state %v", st.s.State())
	}
	// The server heard the exit notification (cc-exit: an EXIT control message).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, exits, _ := u.stats(); exits > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never heard the exit notification")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunLoopReconnects: the server's RESTART and the user's Restart both reconnect to the
// same server, with a new client (new source port and session id) each time.
func TestRunLoopReconnects(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{})
	st := startSession(t, runloopProfile(t, u, ""), Options{})
	st.waitState(t, StateConnected)
	u.sendControl("RESTART")
	st.waitState(t, StateReconnecting)
	st.waitState(t, StateConnected)
	st.s.Restart()
	st.waitState(t, StateReconnecting)
	st.waitState(t, StateConnected)
	if clients, _, _ := u.stats(); clients != 3 {
		t.Errorf("%d connections, want 3", clients)
	}
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunLoopShutdown: cancelling Run's context is a clean stop with the exit notification.
func TestRunLoopShutdown(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{})
	s, err := New(runloopProfile(t, u, "explicit-exit-notify 1\n"), Options{Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &started{s: s, done: make(chan error, 1)}
	go func() { st.done <- s.Run(ctx) }()
	st.waitState(t, StateConnected)
	cancel()
	if err := st.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, exits, _ := u.stats(); exits > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no exit notification on shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunLoopPromptAcrossReconnect is the password race: a prompt is open when the
// connection restarts. The old request must end (its context cancelled, its goroutine
// joined) before the new attempt asks again, and the answer to the new request is the one
// that logs in.
func TestRunLoopPromptAcrossReconnect(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{Push: []string{runloopPush}, EKM: true,
		Auth: func(user, pass string) string {
			if user != "alice" || pass != "s3cret" {
				return "AUTH_FAILED"
			}
			return ""
		}})
	var mu sync.Mutex
	var events []string
	calls := 0
	answer := make(chan [2]string)
	creds := func(ctx context.Context) (string, string, error) {
		mu.Lock()
		calls++
		n := calls
		events = append(events, fmt.Sprintf("ask %d", n))
		mu.Unlock()
		defer func() {
			mu.Lock()
			events = append(events, fmt.Sprintf("return %d", n))
			mu.Unlock()
		}()
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case a := <-answer:
			return a[0], a[1], nil
		}
	}
	st := startSession(t, runloopProfile(t, u, "auth-user-pass\n"), Options{Credentials: creds})
	st.waitState(t, StateWaitingInput)
	st.s.Restart()
	st.waitState(t, StateReconnecting)
	st.waitState(t, StateWaitingInput)
	answer <- [2]string{"alice", "s3cret"}
	st.waitState(t, StateConnected)
	mu.Lock()
	got := strings.Join(events, ", ")
	mu.Unlock()
	if got != "ask 1, return 1, ask 2, return 2" {
		t.Errorf("prompt calls: %s (the first request must end before the second starts)", got)
	}
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// phases are the places where Disconnect interrupts a session in TestRunLoopDisconnectEveryPhase
// and TestRunLoopGoroutinesReturnToBaseline.
var phases = []struct {
	name  string
	mode  serverMode
	extra string // profile lines
	// resolveBlocks names the remote vpn.test and resolves it with a lookup that never
	// answers.
	resolveBlocks bool
	reach         func(t testing.TB, st *started)
}{
	{name: "resolving", resolveBlocks: true, reach: func(t testing.TB, st *started) { st.waitState(t, StateResolving) }},
	{name: "connecting", mode: serveNothing, reach: func(t testing.TB, st *started) {
		st.wait(t, "a connection attempt", func(s Status) bool { return s.State == StateConnecting && s.Remote.IsValid() })
	}},
	{name: "tls-handshake", mode: serveResetsOnly, reach: func(t testing.TB, st *started) { st.waitState(t, StateTLSHandshake) }},
	{name: "waiting-input", extra: "auth-user-pass\n", reach: func(t testing.TB, st *started) { st.waitState(t, StateWaitingInput) }},
	{name: "connected", reach: func(t testing.TB, st *started) { st.waitState(t, StateConnected) }},
	{name: "reconnecting", reach: func(t testing.TB, st *started) {
		st.waitState(t, StateConnected)
		st.s.Restart()
		st.waitState(t, StateReconnecting)
	}},
}

// runPhase starts a session against u, brings it to phase i, disconnects it and checks that
// Run returns nil.
func runPhase(t testing.TB, u *udpServer, i int) {
	ph := phases[i]
	u.setMode(ph.mode)
	cfg := runloopProfile(t, u, ph.extra)
	opts := Options{Credentials: func(ctx context.Context) (string, string, error) {
		<-ctx.Done()
		return "", "", ctx.Err()
	}}
	if ph.resolveBlocks {
		// resolv-retry infinite (the default) with a resolver that never answers.
		cfg.Connections[0].Remote = "vpn.test"
		cfg.ResolvRetry = config.ResolvRetryInfinite
		opts.lookup = func(ctx context.Context, _, _ string) ([]netip.Addr, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}
	st := startSession(t, cfg, opts)
	ph.reach(t, st)
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatalf("%s: Run after Disconnect: %v", ph.name, err)
	}
	if got := st.s.State(); got != StateDisconnected {
		t.Fatalf("%s: final state %v", ph.name, got)
	}
}

func TestRunLoopDisconnectEveryPhase(t *testing.T) {
	for i, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			u := startUDPServer(t, enginetest.Options{})
			runPhase(t, u, i)
		})
	}
}

// TestRunLoopGoroutinesReturnToBaseline runs 100 sessions, each disconnected in one of the
// phases in turn, and checks that every goroutine they started is gone afterwards (before,
// every attempt dropped in TLS left a crypto/tls goroutine behind, and a prompt lived on for
// five minutes).
func TestRunLoopGoroutinesReturnToBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("100 sessions")
	}
	base := runtime.NumGoroutine()
	u := startUDPServer(t, enginetest.Options{})
	for i := 0; i < 100; i++ {
		runPhase(t, u, i%len(phases))
	}
	u.stop()
	if n := settleGoroutines(base); n > base {
		t.Errorf("%d goroutines after 100 sessions, %d before:\n%s", n, base, goroutineDump())
	}
}

// TestRunLoopGoroutinesAtRest pins how many goroutines a connected session has and where
// each lives: the caller's goroutine in Run (the control loop), the tun reader (one per
// device), the socket reader (one per connection) and one crypto/tls goroutine per TLS
// session (two during a key transition). A kernel tun device adds wireguard's netlink
// listeners and the route monitor adds its netlink subscription; dev null has neither.
func TestRunLoopGoroutinesAtRest(t *testing.T) {
	// Goroutines left by other tests are not this session's.
	before := map[string]bool{}
	for _, g := range strings.Split(goroutineDump(), "\n\n") {
		before[strings.SplitN(g, " [", 2)[0]] = true
	}
	u := startUDPServer(t, enginetest.Options{})
	st := startSession(t, runloopProfile(t, u, ""), Options{})
	st.waitState(t, StateConnected)
	counts := map[string]int{}
	for _, g := range strings.Split(goroutineDump(), "\n\n") {
		switch {
		case before[strings.SplitN(g, " [", 2)[0]]:
			continue
		case strings.Contains(g, "enginetest.") || strings.Contains(g, "udpServer") || strings.Contains(g, "goroutineDump"):
			continue // the test's server, and this goroutine
		case strings.Contains(g, "session.(*Session).Run"):
			counts["control loop (Run)"]++
		case strings.Contains(g, "RoutineTunToSocket"):
			counts["tun reader"]++
		case strings.Contains(g, "RoutineSocketToTun"):
			counts["socket reader"]++
		case strings.Contains(g, "engine.(*tlsSession).run"):
			counts["TLS"]++
		case strings.Contains(g, "ovpnd/session.") || strings.Contains(g, "ovpnd/engine"):
			t.Errorf("unexpected session goroutine:\n%s", g)
		}
	}
	want := map[string]int{"control loop (Run)": 1, "tun reader": 1, "socket reader": 1, "TLS": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("goroutines at rest: %v, want %v", counts, want)
	}
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatal(err)
	}
}

// TestRunLoopSpoofedFlood: packets that claim to come from the server but fail the control
// channel's checks make one warning each at verb 3. A flood wrote 170k lines and wiped the
// 512-line history; now the log is rate-limited, the history keeps how the connection came
// up, and one line says how many were suppressed.
func TestRunLoopSpoofedFlood(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{})
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	st := startSession(t, runloopProfile(t, u, ""), Options{Logf: logf, Verb: 3})
	st.waitState(t, StateConnected)
	client := st.s.Status().Local
	// P_CONTROL_V1 (opcode 4, key id 0) with a session id and garbage: each one is refused
	// with a warning.
	junk := []byte{4 << 3, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 9, 'x', 'y'}
	const flood = 20000
	for i := 0; i < flood; i++ {
		junk[len(junk)-1] = byte(i)
		if _, err := u.conn.WriteToUDPAddrPort(junk, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), client.Port())); err != nil {
			t.Fatal(err)
		}
	}
	// Let the control loop work through its queue, then make one more line: the
	// suppression notice comes with it.
	time.Sleep(time.Second)
	st.s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	warnings, suppressed := 0, false
	for _, l := range lines {
		if strings.HasPrefix(l, "warning:") {
			warnings++
		}
		if strings.Contains(l, "lines suppressed") {
			suppressed = true
		}
	}
	if warnings == 0 {
		t.Fatal("the flood made no warnings: the test proves nothing")
	}
	t.Logf("%d spoofed packets: %d log lines, %d of them warnings", flood, len(lines), warnings)
	if len(lines) > 400 || !suppressed {
		t.Errorf("%d log lines (%d warnings) for %d spoofed packets; suppression notice %v", len(lines), warnings, flood, suppressed)
	}
	history := lines[max(0, len(lines)-512):]
	if !slices.ContainsFunc(history, func(l string) bool { return strings.Contains(l, "Initialization Sequence Completed") }) {
		t.Error("the flood pushed the connect lines out of the last 512")
	}
}

// TestRunLoopLogSeesItsState: when a "state X" line reaches Logf, Status already says X.
// The daemon tags each journal line with the state it reads at that moment (OVPND_STATE);
// it carried the previous state on 68 of 77 "state X" lines while the state was a copy fed
// by events.
func TestRunLoopLogSeesItsState(t *testing.T) {
	u := startUDPServer(t, enginetest.Options{})
	var s *Session
	var mu sync.Mutex
	var bad []string
	checked := 0
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		word, ok := strings.CutPrefix(line, "state ")
		if !ok {
			return
		}
		word, _, _ = strings.Cut(word, ":")
		st := s.State().String()
		mu.Lock()
		checked++
		if st != word {
			bad = append(bad, fmt.Sprintf("%q logged in state %s", line, st))
		}
		mu.Unlock()
	}
	s, err := New(runloopProfile(t, u, ""), Options{Logf: logf, Verb: 4})
	if err != nil {
		t.Fatal(err)
	}
	st := &started{s: s, done: make(chan error, 1)}
	go func() { st.done <- s.Run(context.Background()) }()
	st.waitState(t, StateConnected)
	s.Restart()
	st.waitState(t, StateConnected)
	s.Disconnect()
	if err := st.result(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if checked < 8 || len(bad) > 0 {
		t.Errorf("%d state lines, %d logged with another state: %v", checked, len(bad), bad)
	}
}
