// Package lab builds throwaway two-host labs out of Linux network namespaces so that interop
// tests can run a real OpenVPN 2.6 server against a client without any packet leaving the
// machine.
//
// A Lab is a server namespace and a client namespace joined by one veth pair:
//
//	server ns  veth0 198.18.0.1/24 fd18::1/64  <—veth—>  veth0 198.18.0.2/24 fd18::2/64  client ns
//
// The OpenVPN server runs in the server namespace with its tunnel at 10.8.0.1/24 (and
// fd00:8::1/64 with server-ipv6); the client under test runs in the client namespace. The client
// namespace has default routes towards the server so that redirect-gateway behaves as on a real
// host, and the server namespace blackholes tunnel-subnet traffic arriving on the veth so that a
// ping or transfer to a tunnel address can only succeed through the tunnel itself.
//
// Everything a Lab creates (namespaces, processes, temp dirs) is removed by cleanups registered
// on the TB, even when the test fails. Names carry the process id and a counter, so labs in
// parallel tests and in parallel test processes never collide.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Underlay and tunnel addresses; every lab uses the same ones because each lives in its own
// pair of namespaces.
const (
	ServerUnderlay4 = "198.18.0.1"
	ClientUnderlay4 = "198.18.0.2"
	ServerUnderlay6 = "fd18::1"
	ClientUnderlay6 = "fd18::2"
	// ServerTunnel4 is the server's address inside the tunnel (both topologies).
	ServerTunnel4 = "10.8.0.1"
	// ServerTunnel6 is the server's IPv6 address inside the tunnel when ServerOptions.IPv6 is set.
	ServerTunnel6 = "fd00:8::1"
	// ClientTunnel6 is the first IPv6 address OpenVPN's pool hands out for server-ipv6 fd00:8::/64.
	ClientTunnel6 = "fd00:8::1000"

	tunnelNet4 = "10.8.0.0/24"
	tunnelNet6 = "fd00:8::/64"
	vethName   = "veth0"
)

// EnvGate is the environment variable that must be "1" for labs to run; `make interop` sets it.
const EnvGate = "OVPND_LAB"

// TB is the part of testing.TB the lab uses. *testing.T and *testing.B satisfy it; labctl
// supplies its own implementation so the demo and bench scripts share this code.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

// Options tunes a lab. The zero value is what interop tests want.
type Options struct {
	// NoDefaultRoute leaves the client namespace without default routes towards the server.
	NoDefaultRoute bool
	// VethMTU sets the underlay MTU; zero keeps the kernel default (1500).
	VethMTU int
}

// Lab is one server namespace, one client namespace and a private temp dir.
type Lab struct {
	tb TB
	// ServerNS and ClientNS are the names of the namespaces (usable with `ip netns exec`).
	ServerNS, ClientNS string
	// Dir is the lab's private temp dir; server configs, logs and client configs go here.
	Dir string

	pki *PKI

	portSeq atomic.Int32
	fileSeq atomic.Int32
}

var labSeq atomic.Int32

// New builds a lab or skips the test when it cannot run here: labs need root and the
// OVPND_LAB=1 opt-in because they create namespaces and start daemons.
func New(tb TB, opts Options) *Lab {
	tb.Helper()
	if os.Getenv(EnvGate) != "1" {
		tb.Skipf("lab tests need %s=1 (and root); `make interop` sets it", EnvGate)
	}
	if os.Geteuid() != 0 {
		tb.Skipf("lab tests need root to create network namespaces")
	}
	for _, tool := range []string{"ip", "openvpn", "openssl", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("lab tests need %s installed (run .ci/install-deps): %v", tool, err)
		}
	}
	sweepStale()

	n := labSeq.Add(1)
	base := fmt.Sprintf("ovl-%d-%d", os.Getpid(), n)
	l := &Lab{tb: tb, ServerNS: base + "-s", ClientNS: base + "-c"}
	dir, err := os.MkdirTemp("", base+"-")
	if err != nil {
		tb.Fatalf("lab: creating temp dir: %v", err)
	}
	l.Dir = dir
	tb.Cleanup(func() { os.RemoveAll(dir) })

	pki, err := SharedPKI()
	if err != nil {
		tb.Fatalf("lab: %v", err)
	}
	l.pki = pki

	for _, ns := range []string{l.ServerNS, l.ClientNS} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			tb.Fatalf("lab: ip netns add %s: %v: %s", ns, err, out)
		}
		tb.Cleanup(func() { removeNamespace(ns) })
	}
	if err := l.setupNetwork(opts); err != nil {
		tb.Fatalf("lab: %v", err)
	}
	return l
}

// setupNetwork creates the veth pair directly inside the namespaces so that no interface ever
// appears in the host namespace (and no name there can collide with another lab).
func (l *Lab) setupNetwork(opts Options) error {
	s, c := l.ServerNS, l.ClientNS
	cmds := [][]string{
		// DAD would leave addresses "tentative" for a second and make net-state snapshots racy.
		{"ip", "netns", "exec", s, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"},
		{"ip", "netns", "exec", c, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"},
		{"ip", "-n", s, "link", "set", "lo", "up"},
		{"ip", "-n", c, "link", "set", "lo", "up"},
		{"ip", "-n", s, "link", "add", vethName, "type", "veth", "peer", "name", vethName, "netns", c},
		{"ip", "-n", s, "addr", "add", ServerUnderlay4 + "/24", "dev", vethName},
		{"ip", "-n", c, "addr", "add", ClientUnderlay4 + "/24", "dev", vethName},
		{"ip", "-n", s, "addr", "add", ServerUnderlay6 + "/64", "dev", vethName, "nodad"},
		{"ip", "-n", c, "addr", "add", ClientUnderlay6 + "/64", "dev", vethName, "nodad"},
	}
	if opts.VethMTU > 0 {
		mtu := strconv.Itoa(opts.VethMTU)
		cmds = append(cmds,
			[]string{"ip", "-n", s, "link", "set", vethName, "mtu", mtu},
			[]string{"ip", "-n", c, "link", "set", vethName, "mtu", mtu})
	}
	cmds = append(cmds,
		[]string{"ip", "-n", s, "link", "set", vethName, "up"},
		[]string{"ip", "-n", c, "link", "set", vethName, "up"},
		// Local delivery is decided by rule 0 (table local); move it behind a blackhole rule so
		// tunnel addresses are unreachable over the underlay and only the tunnel can carry them.
		[]string{"ip", "-n", s, "-4", "rule", "add", "pref", "100", "lookup", "local"},
		[]string{"ip", "-n", s, "-4", "rule", "del", "pref", "0"},
		[]string{"ip", "-n", s, "-4", "rule", "add", "pref", "10", "iif", vethName, "to", tunnelNet4, "blackhole"},
		[]string{"ip", "-n", s, "-6", "rule", "add", "pref", "100", "lookup", "local"},
		[]string{"ip", "-n", s, "-6", "rule", "del", "pref", "0"},
		[]string{"ip", "-n", s, "-6", "rule", "add", "pref", "10", "iif", vethName, "to", tunnelNet6, "blackhole"},
	)
	if !opts.NoDefaultRoute {
		cmds = append(cmds,
			[]string{"ip", "-n", c, "-4", "route", "add", "default", "via", ServerUnderlay4},
			[]string{"ip", "-n", c, "-6", "route", "add", "default", "via", ServerUnderlay6})
	}
	for _, args := range cmds {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("setting up network (%s): %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return waitSettled(s, c)
}

// waitSettled waits until both veth ends are operationally up and carry their IPv6 link-local
// address. The kernel reports carrier through linkwatch up to a second late and only then adds
// the link-local address and its routes; a snapshot taken earlier would differ from one taken
// after a client exits and look like a leak.
func waitSettled(namespaces ...string) error {
	deadline := time.Now().Add(5 * time.Second)
	for _, ns := range namespaces {
		for {
			link, _ := exec.Command("ip", "-n", ns, "-o", "link", "show", vethName).Output()
			addr, _ := exec.Command("ip", "-n", ns, "-o", "-6", "addr", "show", "dev", vethName, "scope", "link").Output()
			if bytes.Contains(link, []byte("state UP")) && bytes.Contains(addr, []byte("fe80::")) &&
				!bytes.Contains(addr, []byte("tentative")) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("veth in %s did not come up: %s %s", ns, bytes.TrimSpace(link), bytes.TrimSpace(addr))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// removeNamespace kills whatever still runs inside ns and deletes it. Deleting a namespace
// does not kill its processes, and a leftover openvpn would hold the namespace alive.
func removeNamespace(ns string) {
	for range 3 {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

// PKI returns the key material the lab's server and clients use.
func (l *Lab) PKI() *PKI { return l.pki }

// TB returns the TB the lab reports to.
func (l *Lab) TB() TB { return l.tb }

// WriteFile writes content into the lab dir and returns its absolute path.
func (l *Lab) WriteFile(name, content string) string {
	l.tb.Helper()
	p := filepath.Join(l.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		l.tb.Fatalf("lab: writing %s: %v", p, err)
	}
	return p
}

// nextPort hands out TCP ports for helper servers so concurrent helpers in one lab never clash.
func (l *Lab) nextPort() int { return 7000 + int(l.portSeq.Add(1)) }

func nsCommand(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// ServerExec runs a command in the server namespace and returns its combined output.
func (l *Lab) ServerExec(ctx context.Context, args ...string) ([]byte, error) {
	return execIn(ctx, l.ServerNS, args...)
}

// ClientExec runs a command in the client namespace and returns its combined output.
func (l *Lab) ClientExec(ctx context.Context, args ...string) ([]byte, error) {
	return execIn(ctx, l.ClientNS, args...)
}

func execIn(ctx context.Context, ns string, args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, errors.New("no command")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	out, err := nsCommand(ctx, ns, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("running %q in %s: %w: %s", strings.Join(args, " "), ns, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// NetState is a text snapshot of a namespace's addresses and routes, for checking that a
// client removes exactly what it added.
type NetState struct {
	Route4, Route6, Addr string
}

// String renders the snapshot for failure messages.
func (s NetState) String() string {
	return "# ip -4 route\n" + s.Route4 + "# ip -6 route\n" + s.Route6 + "# ip addr\n" + s.Addr
}

// ClientNetState snapshots the client namespace.
func (l *Lab) ClientNetState() NetState {
	l.tb.Helper()
	get := func(args ...string) string {
		out, err := l.ClientExec(context.Background(), args...)
		if err != nil {
			l.tb.Fatalf("lab: %v", err)
		}
		return string(out)
	}
	return NetState{
		Route4: get("ip", "-4", "route", "show", "table", "all"),
		Route6: get("ip", "-6", "route", "show", "table", "all"),
		Addr:   dropNetnsNoise(get("ip", "addr")),
	}
}

// dropNetnsNoise removes the line `ip addr` prints to stderr when a namespace it is naming as
// a veth peer vanishes while it lists links: other labs on the machine come and go, and that
// says nothing about this namespace.
func dropNetnsNoise(s string) string {
	lines := strings.SplitAfter(s, "\n")
	kept := lines[:0]
	for _, line := range lines {
		if !strings.HasPrefix(line, "Error: Peer netns reference is invalid.") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "")
}

// WaitTunnel waits like WaitClientAddr for client's tunnel address, but fails as soon as the
// client process exits, with its exit status.
func (l *Lab) WaitTunnel(ctx context.Context, client *Process, addr string) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-client.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	dev, err := l.WaitClientAddr(ctx, addr)
	if err != nil && client.Exited() {
		status := "exit status 0"
		if werr := client.Wait(); werr != nil {
			status = werr.Error()
		}
		return "", errors.New("client exited before the tunnel came up: " + status)
	}
	return dev, err
}

// WaitClientAddr polls `ip -o addr show` in the client namespace until addr is configured on
// some interface, and returns that interface's name.
func (l *Lab) WaitClientAddr(ctx context.Context, addr string) (string, error) {
	for {
		out, err := l.ClientExec(ctx, "ip", "-o", "addr", "show")
		if err == nil {
			if dev := findAddr(string(out), addr); dev != "" {
				return dev, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s in client namespace: %w; last state:\n%s", addr, ctx.Err(), out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findAddr returns the interface in `ip -o addr` output that carries addr, or "".
func findAddr(out, addr string) string {
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		// "2: tun0    inet 10.8.0.2/24 brd ... scope global tun0"
		for i := 2; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				a, _, _ := strings.Cut(f[i+1], "/")
				if a == addr {
					return f[1]
				}
			}
		}
	}
	return ""
}

// syncBuffer collects a process's output; it is capped because a verbose client under a
// long test would otherwise grow without bound.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
}

const maxOutput = 8 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxOutput - b.buf.Len(); room < len(p) {
		if room > 0 {
			b.buf.Write(p[:room])
		}
		b.dropped += len(p) - max(room, 0)
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return b.buf.String() + fmt.Sprintf("\n[lab: %d more bytes of output dropped]\n", b.dropped)
	}
	return b.buf.String()
}

// Process is a long-running command inside one of the lab's namespaces. `ip netns exec`
// execs the command in place, so PID is the command's own process id (usable in /proc).
type Process struct {
	name  string
	cmd   *exec.Cmd
	out   syncBuffer
	tty   *os.File // the terminal's controlling side, for StartClientProcessTTY
	done  chan struct{}
	err   error
	start time.Time
}

// StartClientProcess starts a long-running command in the client namespace.
func (l *Lab) StartClientProcess(args ...string) *Process {
	l.tb.Helper()
	return l.startProcess(l.ClientNS, args...)
}

// StartServerProcess starts a long-running command in the server namespace.
func (l *Lab) StartServerProcess(args ...string) *Process {
	l.tb.Helper()
	return l.startProcess(l.ServerNS, args...)
}

func (l *Lab) startProcess(ns string, args ...string) *Process {
	l.tb.Helper()
	p, err := startProcess(ns, args...)
	if err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	l.tb.Cleanup(func() { p.Kill() })
	return p
}

func startProcess(ns string, args ...string) (*Process, error) {
	if len(args) == 0 {
		return nil, errors.New("starting process: no command")
	}
	p := &Process{name: filepath.Base(args[0]), done: make(chan struct{})}
	// Background: a Process ends through Stop or Kill, never through a context.
	p.cmd = nsCommand(context.Background(), ns, args...)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	// A grandchild holding the output pipe must not block Wait forever.
	p.cmd.WaitDelay = 2 * time.Second
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %q in %s: %w", strings.Join(args, " "), ns, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Started is when the process was started.
func (p *Process) Started() time.Time { return p.start }

// Output is everything the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the process exits and returns its exit error (nil for status 0).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// ExitCode is the exit status, or -1 while running or when killed by a signal.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM and waits up to timeout for the exit, then kills. It returns the exit
// error, or an error saying the process had to be killed.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", p.name, p.PID(), timeout)
	}
}

// Kill sends SIGKILL (if still running) and waits for the exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// WaitOutput waits until substr appears in the output. It fails early when the process exits.
func (p *Process) WaitOutput(ctx context.Context, substr string) error {
	for {
		if strings.Contains(p.Output(), substr) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), substr) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q", p.name, p.err, substr)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to print %q: %w", p.name, substr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sweepStale removes what crashed earlier runs left behind (a test binary killed by -timeout
// never runs its cleanups). Only names this package creates are touched, and only when the
// owning process is gone.
func sweepStale() {
	sweepOnce.Do(func() {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if pid, ok := ownerPID(e.Name(), "ovl-"); ok && !alive(pid) {
				removeNamespace(e.Name())
			}
		}
		tmp := os.TempDir()
		entries, _ = os.ReadDir(tmp)
		for _, e := range entries {
			if pid, ok := ownerPID(e.Name(), "ovl-"); ok && !alive(pid) {
				os.RemoveAll(filepath.Join(tmp, e.Name()))
			}
			if pid, ok := ownerPID(e.Name(), "ovpnd-lab-"); ok && !alive(pid) {
				os.RemoveAll(filepath.Join(tmp, e.Name()))
			}
		}
	})
}

var sweepOnce sync.Once

// ownerPID parses "<prefix><pid>-..." names.
func ownerPID(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, true
}

// LeftByDeadProcess reports whether name, made as "<prefix><pid>-...", belongs to a test
// process that no longer runs, so what carries it may be swept.
func LeftByDeadProcess(name, prefix string) bool {
	pid, ok := ownerPID(name, prefix)
	return ok && !alive(pid)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
