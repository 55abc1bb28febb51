package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/tests/lab"
)

// spoofEnv makes the test binary act as a local attacker with no rights (see spoofMain): it
// sends every other connection on the bus a fake PropertiesChanged ("connected" with a
// made-up address) and a fake Log line with terminal escapes for the session path in the
// variable, and sends the daemon a fake NameOwnerChanged for every connection.
const spoofEnv = "OVPND_TEST_SPOOF"

func spoofMain() int {
	path := dbus.ObjectPath(os.Getenv(spoofEnv))
	c, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer c.Close()
	var names []string
	if err := c.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
		fmt.Println("ListNames:", err)
		return 1
	}
	var daemon string
	if err := c.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, api.BusName).Store(&daemon); err != nil {
		fmt.Println("GetNameOwner:", err)
		return 1
	}
	signal := func(dest string, path dbus.ObjectPath, iface, member string, body ...any) error {
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(iface),
			dbus.FieldMember:      dbus.MakeVariant(member),
			dbus.FieldDestination: dbus.MakeVariant(dest),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(body...)),
		}, Body: body}
		return c.Send(msg, nil).Err
	}
	sent := 0
	for _, n := range names {
		if !strings.HasPrefix(n, ":") || n == c.Names()[0] || n == daemon {
			continue
		}
		props := map[string]dbus.Variant{
			api.PropState:           dbus.MakeVariant(api.StateConnected),
			api.PropTunnelAddresses: dbus.MakeVariant([]string{"10.8.0.99/24"}),
			api.PropRemote:          dbus.MakeVariant("udp:SPOOFED"),
		}
		if err := signal(n, path, api.PropertiesInterface, api.SignalPropertiesChanged, api.SessionInterface, props, []string{}); err != nil {
			fmt.Println("send:", err)
			return 1
		}
		if err := signal(n, path, api.SessionInterface, api.SignalLog, uint64(time.Now().UnixMicro()), uint32(1), "SPOOFED \x1b[2J\x1b]0;owned\x07"); err != nil {
			fmt.Println("send:", err)
			return 1
		}
		// Tell the daemon that this connection left the bus.
		if err := signal(daemon, "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged", n, n, ""); err != nil {
			fmt.Println("send:", err)
			return 1
		}
		sent++
	}
	// A round trip to the bus after the signals: they are on their way when this returns.
	c.BusObject().Call("org.freedesktop.DBus.GetId", 0)
	fmt.Println("spoofed", sent)
	return 0
}

// TestSpoofedSignals: another local user, with no rights, sends the daemon a fake
// NameOwnerChanged for Alice's `ovpnctl up` (so the daemon would stop telling it anything),
// and sends `ovpnctl up` a fake PropertiesChanged saying "connected … 10.8.0.99" and a Log
// line with terminal escapes. Before, ovpnctl printed the fake address and exited 0 while
// the session was still connecting, and the escapes reached the terminal. Now ovpnctl
// believes only the daemon, the daemon believes only the bus, and `ovpnctl down` is reported
// to the still-subscribed `up` as it happens.
func TestSpoofedSignals(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{})
	shared := sharedDir(t)
	ovpnd := copyExecutable(t, repoPath(t, "bin/ovpnd"), shared)
	ovpnctl := copyExecutable(t, repoPath(t, "bin/ovpnctl"), shared)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := copyExecutable(t, self, shared)
	addr := startBus(t, shared)
	alice, mallory := addUser(t, "a"), addUser(t, "m")
	startPolkit(t, addr, map[uint32]map[string]bool{uint32(alice.uid): {api.ActionStart: true}})
	notify := listenNotify(t, shared)
	startInNS(t, l.ClientNS, []string{"NOTIFY_SOCKET=" + notify.path}, ovpnd, "daemon", "--bus", addr, "--state-dir", filepath.Join(l.Dir, "state"))
	notify.wait(t, "READY=1", 10*time.Second)

	// A server port nobody answers on: the session keeps trying, never connected.
	cfgText := regexp.MustCompile(`(?m)^remote (\S+) (\d+)`).ReplaceAllString(srv.ClientConfig(lab.ClientOptions{}), "remote $1 1199")
	cfg := writeOwned(t, sharedDir(t), "work.conf", cfgText+"connect-retry 1\n", alice)

	type result struct {
		out, stderr string
		code        int
	}
	upDone := make(chan result, 1)
	go func() {
		out, stderr, code := runAs(t, &alice, addr, nil, "", ovpnctl, "up", "--verbose", "--timeout", "50s", "--name", "work", cfg)
		upDone <- result{out, stderr, code}
	}()
	// Root finds Alice's session (and its path, which the attacker is assumed to know).
	root, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var path dbus.ObjectPath
	deadline := time.Now().Add(30 * time.Second)
	for root.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Lookup", 0, "work").Store(&path) != nil {
		if time.Now().After(deadline) {
			t.Fatal("alice's session never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, stderr, code := runAs(t, &mallory, addr, []string{spoofEnv + "=" + string(path)}, "", helper)
	if code != 0 || !strings.Contains(out, "spoofed") || strings.Contains(out, "spoofed 0") {
		t.Fatalf("spoofer: exit %d: %s %s", code, out, stderr)
	}
	// The daemon handles bus signals on their own goroutine; give it the moment it takes
	// to (not) act on them before the real change comes.
	time.Sleep(500 * time.Millisecond)
	if out, stderr, code := runAs(t, &alice, addr, nil, "", ovpnctl, "down", "work"); code != 0 {
		t.Fatalf("ovpnctl down: exit %d: %s %s", code, out, stderr)
	}
	var r result
	select {
	case r = <-upDone:
	case <-time.After(90 * time.Second):
		t.Fatal("ovpnctl up did not return")
	}
	if strings.Contains(r.out+r.stderr, "10.8.0.99") || strings.Contains(r.out+r.stderr, "SPOOFED") || strings.Contains(r.out, "connected") {
		t.Errorf("ovpnctl up believed a spoofed signal:\nstdout: %s\nstderr: %s", r.out, r.stderr)
	}
	if strings.ContainsAny(r.out+r.stderr, "\x1b\x07") {
		t.Errorf("terminal escapes reached the terminal: %q", r.stderr)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "work: disconnected") {
		t.Errorf("ovpnctl up did not hear the real disconnect (its subscription was dropped?): exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.stderr)
	}
}
