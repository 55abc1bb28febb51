// Package system boots a real Debian 12 machine for system tests: systemd as PID 1, the system
// bus, polkitd, logind and systemd-resolved, in a systemd-nspawn container whose network
// namespace is a lab's client namespace (tests/lab). Tests install packages into it, run
// commands inside and check what an administrator would see.
//
// The Debian root is made once with debootstrap and cached under CacheDir (about 40 s to
// 2 min when uncached); every machine boots it through its own overlay, so each starts clean
// and the cache is never written. A Machine owns an overlay mount, a temp dir, a cgroup
// (in every hierarchy systemd uses) and the nspawn process; Shutdown, registered as a cleanup,
// removes all of them even when the test fails, and Boot sweeps what a killed test binary
// left behind. Names carry the owning process id: ovs-PID-N.
package system

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// CacheDir holds the cached Debian roots; the tests own it. CI runs on the same machine, so
// later runs reuse the root.
const CacheDir = "/var/cache/ovpnd-test"

// Packages are installed into the cached root besides debootstrap's minbase: systemd as init,
// the bus, logind sessions for polkit, polkitd and pkttyagent, resolved, and network tools.
var Packages = []string{
	"systemd", "systemd-sysv", "dbus", "libpam-systemd", "polkitd", "pkexec",
	"systemd-resolved", "iproute2", "iputils-ping", "procps",
}

const (
	suite  = "bookworm"
	mirror = "http://deb.debian.org/debian"
	// recipe changes whenever the way the root is made changes, so old caches are rebuilt.
	recipe = "1"
	// stamp marks a complete root; a root without it is never booted.
	stamp = ".ovpnd-test-complete"
	// prefix names everything a Machine creates (with the pid: ovs-PID-N).
	prefix = "ovs-"
)

// Options shape a Machine.
type Options struct {
	// NetNS is the name of the network namespace (/run/netns/NAME) the machine uses, normally
	// a lab's ClientNS. Required: the machine never gets the host's network.
	NetNS string
	// Hostname defaults to "ovpnd-test".
	Hostname string
	// Flavor and ExtraPackages boot a root with more packages than Packages (the
	// NetworkManager test's network-manager): it is cached apart, under the flavor's name,
	// so that the plain root and each flavor are made once and never replace each other.
	Flavor        string
	ExtraPackages []string
}

// Machine is one booted container.
type Machine struct {
	tb     lab.TB
	name   string
	dir    string // temp dir: overlay upper, work and merged
	merged string
	cg     []string // cgroup directories, one per hierarchy
	cmd    *exec.Cmd
	done   chan struct{}
	leader int // PID of the container's systemd, in our pid namespace
	con    *syncBuffer

	shutdownOnce sync.Once
}

var seq atomic.Int64

// Boot starts a machine from the cached root and waits until systemd reports the system
// running (or degraded) and the system bus answers. It skips the test when the tools are
// missing or the caller is not root, and registers Shutdown as a cleanup.
func Boot(tb lab.TB, opts Options) *Machine {
	tb.Helper()
	if os.Getenv(lab.EnvGate) != "1" {
		tb.Skipf("system tests need %s=1 (and root); `make interop` sets it", lab.EnvGate)
	}
	if os.Geteuid() != 0 {
		tb.Skipf("system tests need root")
	}
	for _, tool := range []string{"systemd-nspawn", "debootstrap", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("system tests need %s (run .ci/install-deps): %v", tool, err)
		}
	}
	if opts.NetNS == "" {
		tb.Fatalf("system: Options.NetNS is required")
	}
	if opts.Hostname == "" {
		opts.Hostname = "ovpnd-test"
	}
	sweepStale()
	root, err := cachedRoot(opts.Flavor, opts.ExtraPackages, tb.Logf)
	if err != nil {
		tb.Fatalf("system: %v", err)
	}

	m := &Machine{tb: tb, name: fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1)), done: make(chan struct{}), con: &syncBuffer{}}
	tb.Cleanup(m.Shutdown)
	if m.dir, err = os.MkdirTemp("", m.name+"-"); err != nil {
		tb.Fatalf("system: %v", err)
	}
	m.merged = filepath.Join(m.dir, "merged")
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(m.dir, d), 0o755); err != nil {
			tb.Fatalf("system: %v", err)
		}
	}
	ovl := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", root, filepath.Join(m.dir, "upper"), filepath.Join(m.dir, "work"))
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", ovl, m.merged).CombinedOutput(); err != nil {
		tb.Fatalf("system: mounting the overlay: %v: %s", err, out)
	}
	// A cgroup of its own in each hierarchy, so that machines of parallel tests (and other
	// nspawn containers on the host) never share one: nspawn --keep-unit uses the caller's.
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h, m.name)
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatalf("system: creating cgroup %s: %v", d, err)
		}
		m.cg = append(m.cg, d)
	}

	// The shell joins the cgroups, then becomes nspawn.
	var join strings.Builder
	for _, d := range m.cg {
		fmt.Fprintf(&join, "echo $$ > %s/cgroup.procs && ", d)
	}
	args := []string{
		"-D", m.merged, "--boot", "--register=no", "--keep-unit", "--quiet",
		"--machine=" + m.name, "--hostname=" + opts.Hostname,
		"--network-namespace-path=/run/netns/" + opts.NetNS,
		"--capability=CAP_NET_ADMIN",
		"--bind=/dev/net/tun", "--property=DeviceAllow=/dev/net/tun rwm",
		"--console=read-only",
	}
	m.cmd = exec.Command("sh", "-c", join.String()+`exec systemd-nspawn "$@"`, "sh")
	m.cmd.Args = append(m.cmd.Args, args...)
	// /proc/sys/net must be writable inside (forwarding, rp_filter, disable_ipv6).
	m.cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network")
	m.cmd.Stdout, m.cmd.Stderr = m.con, m.con
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		tb.Fatalf("system: starting systemd-nspawn: %v", err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.waitBooted(ctx); err != nil {
		tb.Fatalf("system: booting %s: %v\nconsole:\n%s", m.name, err, m.con.String())
	}
	return m
}

// waitBooted finds the container's init and waits for `systemctl is-system-running`.
func (m *Machine) waitBooted(ctx context.Context) error {
	for {
		select {
		case <-m.done:
			return errors.New("systemd-nspawn exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if m.leader == 0 {
			m.leader = findLeader(m.cmd.Process.Pid)
			continue
		}
		out, _ := m.Run(ctx, "systemctl", "is-system-running", "--wait")
		switch strings.TrimSpace(out) {
		case "running":
			return nil
		case "degraded":
			failed, _ := m.Run(ctx, "systemctl", "--failed", "--no-legend", "--plain")
			m.tb.Logf("system: %s booted degraded; failed units:\n%s", m.name, failed)
			return nil
		}
	}
}

// findLeader returns the child of nspawn that runs in another pid namespace: the container's
// systemd. Zero while it does not exist yet.
func findLeader(nspawn int) int {
	self, _ := os.Readlink("/proc/self/ns/pid")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid(pid) != nspawn {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && ns != self {
			return pid
		}
	}
	return 0
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// Name is the machine's name (also its cgroup's and temp dir's prefix).
func (m *Machine) Name() string { return m.name }

// Console is what the container printed on its console so far.
func (m *Machine) Console() string { return m.con.String() }

// guestEnv is the environment of every command run inside: nothing of the test's own.
var guestEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TERM=dumb", "HOME=/root"}

// Command returns a command that runs args inside the machine (all its namespaces, as root,
// with a clean environment). The caller runs it.
func (m *Machine) Command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"-t", strconv.Itoa(m.leader), "-a", "env", "-i"}, guestEnv...)
	full = append(full, args...)
	return exec.CommandContext(ctx, "nsenter", full...)
}

// Run runs args inside the machine and returns its combined output.
func (m *Machine) Run(ctx context.Context, args ...string) (string, error) {
	if m.leader == 0 {
		return "", errors.New("machine is not running")
	}
	cmd := m.Command(ctx, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Sh runs a bash script inside the machine with a timeout of a minute and returns its
// combined output.
func (m *Machine) Sh(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return m.Run(ctx, "bash", "-c", script)
}

// MustSh is Sh that fails tb (the running test or subtest) on an error.
func (m *Machine) MustSh(tb lab.TB, script string) string {
	tb.Helper()
	out, err := m.Sh(script)
	if err != nil {
		tb.Fatalf("system: %v\n%s", err, out)
	}
	return out
}

// Exchange is one step of a terminal dialog: wait until the output so far contains Expect,
// then type Send.
type Exchange struct {
	Expect, Send string
}

// Converse runs a shell command inside the machine on a terminal of its own (util-linux
// script allocates a pty), answering prompts as dialog says: for programs that insist on a
// terminal, such as pkttyagent asking for a password. It returns everything the terminal
// showed and the command's error.
func (m *Machine) Converse(ctx context.Context, command string, dialog []Exchange) (string, error) {
	cmd := m.Command(ctx, "script", "-qfec", command, "/dev/null")
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	defer stdin.Close()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	seen := 0 // output before this offset was matched already
	for _, x := range dialog {
		for {
			text := out.String()
			if i := strings.Index(text[seen:], x.Expect); i >= 0 {
				seen += i + len(x.Expect)
				break
			}
			select {
			case err := <-exited:
				return out.String(), fmt.Errorf("exited before %q appeared: %v", x.Expect, err)
			case <-ctx.Done():
				return out.String(), fmt.Errorf("waiting for %q: %w", x.Expect, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		if _, err := io.WriteString(stdin, x.Send); err != nil {
			return out.String(), err
		}
	}
	select {
	case err := <-exited:
		return out.String(), err
	case <-ctx.Done():
		return out.String(), ctx.Err()
	}
}

// WriteFile writes data to path inside the machine with mode (owner root), creating parent
// directories. It writes from inside, so the guest's own symlinks are followed, not the host's.
func (m *Machine) WriteFile(path string, data []byte, mode os.FileMode) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := m.Command(ctx, "sh", "-c", `mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"`, "sh", path, fmt.Sprintf("%o", mode.Perm()))
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("writing %s: %w: %s", path, err, out)
	}
	return nil
}

// ReadFile reads path inside the machine.
func (m *Machine) ReadFile(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := m.Command(ctx, "cat", path)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("reading %s: %w: %s", path, err, errb.Bytes())
	}
	return out.Bytes(), nil
}

// CopyIn copies a host file into the machine.
func (m *Machine) CopyIn(hostPath, guestPath string, mode os.FileMode) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return err
	}
	return m.WriteFile(guestPath, data, mode)
}

// InstallDeb copies a .deb into the machine and installs it with apt, as the README tells an
// administrator to; the machine has no network, so every dependency must already be there.
func (m *Machine) InstallDeb(tb lab.TB, hostPath string) string {
	tb.Helper()
	guest := "/root/" + filepath.Base(hostPath)
	if err := m.CopyIn(hostPath, guest, 0o644); err != nil {
		tb.Fatalf("system: %v", err)
	}
	return m.MustSh(tb, "cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./"+filepath.Base(hostPath)+" 2>&1")
}

// Shutdown powers the machine off (SIGTERM to nspawn halts it cleanly; SIGKILL after 20 s),
// then kills whatever is left in its cgroups and removes them, the overlay and the temp dir.
// It is idempotent and registered as a cleanup by Boot.
func (m *Machine) Shutdown() {
	m.shutdownOnce.Do(func() {
		if m.cmd != nil && m.cmd.Process != nil {
			m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(20 * time.Second):
				m.tb.Logf("system: %s did not halt within 20 s; killing it", m.name)
				syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
				<-m.done
			}
		}
		m.leader = 0
		for _, d := range m.cg {
			if err := removeCgroup(d); err != nil {
				m.tb.Logf("system: %v", err)
			}
		}
		if m.merged != "" {
			if err := unmount(m.merged); err != nil {
				m.tb.Logf("system: %v", err)
			}
		}
		if m.dir != "" {
			os.RemoveAll(m.dir)
		}
	})
}

// cgroupHierarchies are the cgroup directories systemd uses on this host: the unified one,
// and on a hybrid (v1) host also the named systemd hierarchy.
func cgroupHierarchies() []string {
	var hs []string
	for _, h := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err == nil {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		hs = append(hs, "/sys/fs/cgroup") // pure cgroup v2
	}
	return hs
}

// removeCgroup kills every process left in the cgroup tree and removes it bottom-up.
func removeCgroup(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for range 50 {
		var dirs []string
		n := 0
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			dirs = append(dirs, p)
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
					n++
				}
			}
			return nil
		})
		if n == 0 {
			var errs []error
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			if len(errs) == 0 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cgroup %s: could not remove it", dir)
}

// unmount detaches the overlay, lazily if something still holds it.
func unmount(dir string) error {
	if err := syscall.Unmount(dir, 0); err != nil {
		if errors.Is(err, syscall.EINVAL) {
			return nil // not mounted
		}
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", dir, err)
		}
	}
	return nil
}

// sweepStale removes machines of test processes that died without cleaning up (killed by
// go test -timeout): their cgroups, overlays and temp dirs.
func sweepStale() {
	sweepOnce.Do(func() {
		for _, h := range cgroupHierarchies() {
			entries, _ := os.ReadDir(h)
			for _, e := range entries {
				if lab.LeftByDeadProcess(e.Name(), prefix) {
					removeCgroup(filepath.Join(h, e.Name()))
				}
			}
		}
		mounts, _ := os.ReadFile("/proc/self/mounts")
		for _, line := range strings.Split(string(mounts), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "overlay" {
				continue
			}
			if lab.LeftByDeadProcess(filepath.Base(filepath.Dir(f[1])), prefix) {
				unmount(f[1])
			}
		}
		tmp := os.TempDir()
		entries, _ := os.ReadDir(tmp)
		for _, e := range entries {
			if lab.LeftByDeadProcess(e.Name(), prefix) {
				os.RemoveAll(filepath.Join(tmp, e.Name()))
			}
		}
	})
}

var sweepOnce sync.Once

// CachedRoot returns the cached Debian root, making it with debootstrap first if needed. A
// lock serialises test processes. Roots are keyed by the recipe and the package list.
func CachedRoot(logf func(string, ...any)) (string, error) {
	return cachedRoot("", nil, logf)
}

// cachedRoot is CachedRoot for a flavor: Packages plus extra, cached as SUITE-FLAVOR-HASH
// (the plain root keeps SUITE-HASH).
func cachedRoot(flavor string, extra []string, logf func(string, ...any)) (string, error) {
	pkgs := append(append([]string(nil), Packages...), extra...)
	key := sha256.Sum256([]byte(recipe + "\n" + suite + "\n" + strings.Join(pkgs, ",")))
	name := suite + "-"
	if flavor != "" {
		name += flavor + "-"
	}
	root := filepath.Join(CacheDir, name+hex.EncodeToString(key[:6]))
	if _, err := os.Stat(filepath.Join(root, stamp)); err == nil {
		return root, nil
	}
	if err := os.MkdirAll(CacheDir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", CacheDir, err)
	}
	lock, err := os.OpenFile(filepath.Join(CacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", CacheDir, err)
	}
	if _, err := os.Stat(filepath.Join(root, stamp)); err == nil {
		return root, nil // another process made it meanwhile
	}
	// Roots of other package lists stay: another test process may be booting one (its
	// overlay's lower layer) right now. `rm -rf /var/cache/ovpnd-test` reclaims them.
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	logf("system: debootstrap %s into %s (once; cached afterwards)", suite, root)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(pkgs, ","), suite, tmp, mirror)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("debootstrap: %w\n%s", err, tail(out.String(), 40))
	}
	// An empty machine-id makes systemd generate a fresh one at each boot (overlay).
	if err := os.WriteFile(filepath.Join(tmp, "etc/machine-id"), nil, 0o444); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, stamp), []byte(strings.Join(pkgs, "\n")+"\n"), 0o644); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, root); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return root, nil
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// syncBuffer collects output of a running process; it keeps the last 1 MiB.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const maxBuffer = 1 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > maxBuffer {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-maxBuffer:]...)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
