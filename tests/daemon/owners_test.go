package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/tests/lab"
)

// TestOwners: what one user's session may do to another's and to the host, with the real
// daemon, two users (setpriv), an ovpnd@-style instance beside them and Debian's OpenVPN 2.6.
//
//   - Names belong to their owner and kind: alice's and bob's sessions are both "work", and
//     root's instance "work" runs beside them, each with its own state files. Before, bob's
//     Start failed with "a session called work is running" (telling him alice's name) and the
//     instance found "work.routing.json" in use.
//   - Cross-user capture: alice routes 10.50.0.0/16 into her tunnel; bob's profile routes both
//     /17 halves, a host on the directly connected network, and redirect-gateway def1. Bob's
//     tunnel comes up with the full-tunnel redirect, his refused routes are in his state reason,
//     and alice's subnet and the LAN host stay where they were. Before, bob's halves pulled
//     alice's subnet into his tunnel while her session still said connected.
//   - A persistent tun that root created, and lport 53, are refused to bob at Start.
//   - Root's external-network session (NetworkManager's) applies nothing, but its route
//     10.60.0.0/16 is a claim in the host ledger: bob's session is refused 10.60.0.0/17, and
//     the claim goes when the session's caller leaves the bus.
func TestOwners(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", Extra: []string{"duplicate-cn"}})
	before := l.ClientNetState()

	shared := sharedDir(t)
	ovpnd := copyExecutable(t, repoPath(t, "bin/ovpnd"), shared)
	ovpnctl := copyExecutable(t, repoPath(t, "bin/ovpnctl"), shared)
	addr := startBus(t, shared)
	alice, bob := addUser(t, "a"), addUser(t, "b")
	startPolkit(t, addr, map[uint32]map[string]bool{
		uint32(alice.uid): {api.ActionStart: true},
		uint32(bob.uid):   {api.ActionStart: true},
	})
	stateDir := filepath.Join(l.Dir, "state")
	dNotify := listenNotify(t, shared)
	d := startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + dNotify.path}, ovpnd, "daemon", "--bus", addr, "--state-dir", stateDir)
	dNotify.wait(t, "READY=1", 10*time.Second)

	userDir := sharedDir(t)
	profile := func(extra ...string) string { return srv.ClientConfig(lab.ClientOptions{Extra: extra}) }
	up := func(u *testUser, name string, extra ...string) (string, int) {
		t.Helper()
		cfg := writeOwned(t, userDir, name+"-"+u.name+".conf", profile(extra...), *u)
		out, stderr, code := runAs(t, u, addr, nil, "", ovpnctl, "up", "--name", name, cfg)
		return out + stderr, code
	}
	status := func(u *testUser, name string) (dev, state, reason string) {
		t.Helper()
		out, stderr, code := runAs(t, u, addr, nil, "", ovpnctl, "status", "--json", name)
		if code != 0 {
			t.Fatalf("ovpnctl status %s: exit %d: %s", name, code, stderr)
		}
		var info struct {
			Device string `json:"device"`
			State  string `json:"state"`
			Reason string `json:"state_reason"`
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return info.Device, info.State, info.Reason
	}

	if out, code := up(&alice, "work", "route 10.50.0.0 255.255.0.0"); code != 0 {
		t.Fatalf("alice's ovpnctl up: exit %d: %s", code, out)
	}
	devA, _, _ := status(&alice, "work")
	out, code := up(&bob, "work", "route 10.50.0.0 255.255.128.0", "route 10.50.128.0 255.255.128.0",
		"route 198.18.0.53 255.255.255.255", "redirect-gateway def1")
	if code != 0 {
		t.Fatalf("bob's ovpnctl up of his own work beside alice's: exit %d: %s", code, out)
	}
	if strings.Contains(out, strings.TrimSpace(alice.name)) {
		t.Errorf("bob's ovpnctl up mentions alice: %s", out)
	}
	devB, state, reason := status(&bob, "work")
	if devA == devB || devB == "" {
		t.Fatalf("devices %q and %q", devA, devB)
	}
	if state != api.StateConnected || !strings.Contains(reason, "refused: route 10.50.0.0/17") {
		t.Errorf("bob's session: %s, reason %q; want connected with the refusal", state, reason)
	}
	for addr, want := range map[string]string{"10.50.1.1": devA, "10.50.200.1": devA, "198.18.0.53": "veth", "203.0.113.99": devB} {
		if got := l.ClientRouteGet(addr); !strings.Contains(got, " dev "+want) {
			t.Errorf("ip route get %s: %q, want dev %s", addr, got, want)
		}
	}
	if _, st, reason := status(&alice, "work"); st != api.StateConnected || reason != "" {
		t.Errorf("alice's session: %s %q", st, reason)
	}

	// Root's session in external network mode, as NetworkManager's plugin starts it.
	rootBus, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rootBus.Close()
	ext := map[string]dbus.Variant{api.StartOptionExternalNetwork: dbus.MakeVariant(true)}
	if err := rootBus.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, "nm", profile("route 10.60.0.0 255.255.0.0"), ext).Err; err != nil {
		t.Fatalf("root's external-network Start: %v", err)
	}
	ledger := func() string {
		b, _ := os.ReadFile(filepath.Join(stateDir, "host.json"))
		return string(b)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(ledger(), `"10.60.0.0/16"`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the external session's claims are not in the host ledger:\n%s", ledger())
		}
	}
	if got := l.ClientRouteGet("10.60.1.1"); !strings.Contains(got, " dev "+devB) {
		t.Errorf("the external session applied its route: ip route get 10.60.1.1: %q", got)
	}
	if out, code := up(&bob, "grab", "route 10.60.0.0 255.255.128.0"); code != 0 {
		t.Errorf("bob's ovpnctl up beside root's external session: exit %d: %s", code, out)
	} else if _, st, reason := status(&bob, "grab"); st != api.StateConnected || !strings.Contains(reason, "refused: route 10.60.0.0/17") {
		t.Errorf("bob's session beside root's external one: %s, reason %q; want the route refused", st, reason)
	}
	if out, stderr, code := runAs(t, &bob, addr, nil, "", ovpnctl, "down", "grab"); code != 0 {
		t.Errorf("bob: ovpnctl down grab: exit %d: %s %s", code, out, stderr)
	}
	rootBus.Close() // the applier leaves: the daemon ends the session and drops its claims
	for deadline := time.Now().Add(30 * time.Second); strings.Contains(ledger(), `"10.60.0.0/16"`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the external session's claims outlived it:\n%s", ledger())
		}
	}

	// Root's instance "work" beside the two users' sessions.
	instCfg := l.WriteFile("inst.conf", profile())
	notify := listenNotify(t, sharedDir(t))
	inst := startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + notify.path}, ovpnd, "instance", "--config", instCfg,
		"--bus", addr, "--state-dir", stateDir, "work")
	notify.wait(t, "READY=1", 20*time.Second)
	for _, f := range []string{"user-" + strconv.Itoa(alice.uid) + "-work", "user-" + strconv.Itoa(bob.uid) + "-work", "instance-work"} {
		if _, err := os.Stat(filepath.Join(stateDir, f+".routing.json")); err != nil {
			t.Errorf("state of %s: %v", f, err)
		}
	}
	if _, st, _ := status(&alice, "work"); st != api.StateConnected {
		t.Errorf("alice's work after the instance started: %s", st)
	}

	// Someone else's persistent tun, and a privileged port.
	if out, err := l.ClientExec(t.Context(), "ip", "tuntap", "add", "dev", "roottun", "mode", "tun"); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "exec", l.ClientNS, "ip", "link", "del", "roottun").Run() })
	if out, code := up(&bob, "grab", "dev roottun", "dev-type tun"); code == 0 || !strings.Contains(out, "dev roottun: the interface exists already") {
		t.Errorf("bob on root's persistent tun: exit %d: %q", code, out)
	}
	if out, code := up(&bob, "low", "lport 53"); code == 0 || !strings.Contains(out, "lport 53") {
		t.Errorf("bob with lport 53: exit %d: %s", code, out)
	}

	for _, u := range []*testUser{&alice, &bob} {
		if out, stderr, code := runAs(t, u, addr, nil, "", ovpnctl, "down", "work"); code != 0 {
			t.Errorf("%s: ovpnctl down: exit %d: %s %s", u.name, code, out, stderr)
		}
	}
	if code := inst.stop(t, 20*time.Second); code != 0 {
		t.Errorf("instance exit status %d", code)
	}
	if code := d.stop(t, 20*time.Second); code != 0 {
		t.Errorf("daemon exit status %d", code)
	}
	exec.Command("ip", "netns", "exec", l.ClientNS, "ip", "link", "del", "roottun").Run()
	if after := l.ClientNetState(); after.String() != before.String() {
		t.Errorf("client namespace changed:\nbefore: %s\nafter:  %s", before, after)
	}
	if left, _ := filepath.Glob(filepath.Join(stateDir, "*")); len(left) > 0 {
		t.Errorf("state left behind: %v", left)
	}
}
