package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// repoPath is a path relative to the repository root.
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sharedDir is a temp dir every user can enter; binaries and sockets go there.
func sharedDir(t *testing.T) string {
	t.Helper()
	// Not t.TempDir: its parent is private to root.
	d, err := os.MkdirTemp("", "ovpnd-daemon-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func copyExecutable(t *testing.T, src, dir string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Skipf("%s not available (run make build): %v", src, err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// startBus runs a private system-type dbus-daemon whose policy is the stock system policy
// plus the project's packaging/net.ovpnd1.conf, and root may own the polkit name.
func startBus(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon not installed")
	}
	sock := filepath.Join(dir, "system_bus_socket")
	conf := filepath.Join(dir, "bus.conf")
	text := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=` + sock + `</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
  <include>` + repoPath(t, "packaging/net.ovpnd1.conf") + `</include>
</busconfig>
`
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dbus-daemon output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbus-daemon did not start: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "unix:path=" + sock
}

// fakePolkit owns org.freedesktop.PolicyKit1 and answers CheckAuthorization from a table
// of uid -> allowed actions, looking the subject's uid up on the bus as polkitd does.
type fakePolkit struct {
	conn    *dbus.Conn
	mu      sync.Mutex
	allowed map[uint32]map[string]bool
	asked   []string
}

type polkitSubject struct {
	Kind    string
	Details map[string]dbus.Variant
}

type polkitResult struct {
	Authorized bool
	Challenge  bool
	Details    map[string]string
}

func (p *fakePolkit) CheckAuthorization(subject polkitSubject, action string, _ map[string]string, _ uint32, _ string) (polkitResult, *dbus.Error) {
	res := polkitResult{Details: map[string]string{}}
	if subject.Kind != "system-bus-name" {
		return res, dbus.MakeFailedError(fmt.Errorf("unexpected subject kind %q", subject.Kind))
	}
	name, _ := subject.Details["name"].Value().(string)
	var uid uint32
	if err := p.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, name).Store(&uid); err != nil {
		return res, dbus.MakeFailedError(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, fmt.Sprintf("%d:%s", uid, action))
	res.Authorized = p.allowed[uid][action]
	return res, nil
}

func startPolkit(t *testing.T, addr string, allowed map[uint32]map[string]bool) *fakePolkit {
	t.Helper()
	c, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &fakePolkit{conn: c, allowed: allowed}
	if err := c.Export(p, "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.PolicyKit1.Authority"); err != nil {
		t.Fatal(err)
	}
	if reply, err := c.RequestName("org.freedesktop.PolicyKit1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning the polkit name: %v %v", reply, err)
	}
	return p
}

// testUser is a throwaway system user.
type testUser struct {
	name     string
	uid, gid int
}

func addUser(t *testing.T, suffix string) testUser {
	t.Helper()
	name := fmt.Sprintf("ovt%d%s", os.Getpid()%100000, suffix)
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Skipf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return testUser{name, uid, gid}
}

// runAs runs a command as u (nil: as root) with the bus address, stdin text, and no
// controlling terminal; it returns stdout, stderr and the exit status.
func runAs(t *testing.T, u *testUser, addr string, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	if u != nil {
		args = append([]string{"setpriv", "--reuid", strconv.Itoa(u.uid), "--regid", strconv.Itoa(u.gid), "--init-groups"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append([]string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// notifySocket is a unixgram socket standing in for systemd's NOTIFY_SOCKET.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
	wake chan struct{}
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(dir, "notify"), wake: make(chan struct{}, 1)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, strings.Split(string(buf[:k]), "\n")...)
			n.mu.Unlock()
			select {
			case n.wake <- struct{}{}:
			default:
			}
		}
	}()
	return n
}

func (n *notifySocket) lines() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// wait returns once a line equal to (or, ending in "*", starting with) want arrived.
func (n *notifySocket) wait(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, l := range n.lines() {
			if l == want || strings.HasSuffix(want, "*") && strings.HasPrefix(l, strings.TrimSuffix(want, "*")) {
				return
			}
		}
		select {
		case <-n.wake:
		case <-deadline:
			t.Fatalf("no %q from sd_notify within %v; got %q", want, timeout, n.lines())
		}
	}
}

// daemonProc is an ovpnd process inside the client namespace.
type daemonProc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	err  error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startInNS(t *testing.T, ns string, env []string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &daemonProc{cmd: cmd, out: &syncBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", args[0], p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit status.
func (p *daemonProc) stop(t *testing.T, timeout time.Duration) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("no exit within %v of SIGTERM", timeout)
	}
	if p.err != nil {
		if ee, ok := p.err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatal(p.err)
	}
	return 0
}

var _ = io.Discard
