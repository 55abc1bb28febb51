package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// memoryBench is `labctl memory`: the client memory figures of issue 14, both clients against
// the same OpenVPN 2.6 server in one lab and one run.
//
//   - rekeys: one client at a time (OpenVPN's, then ovpnd) under iperf3 traffic for dur while
//     the server renegotiates every renegSec seconds; RSS when the tunnel is up, after the first
//     traffic, and at the end, with the number of renegotiations the server logged.
//   - sessions: n OpenVPN client processes, then one ovpnd daemon (on a private bus) with n
//     sessions started by ovpnctl, all connected and idle after a ping through each tunnel;
//     the daemon's RSS against the sum of the n OpenVPN processes' RSS (and PSS, which counts
//     the pages the ten processes share once).
func memoryBench(t *cli, ovpndPath, ovpnctlPath string, dur time.Duration, renegSec, sessions int, kinds []string) {
	var err error
	if ovpndPath, err = absPath(ovpndPath); err == nil {
		ovpnctlPath, err = absPath(ovpnctlPath)
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, p := range []string{ovpndPath, ovpnctlPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s missing: run `make build`", p)
		}
	}
	if _, err := exec.LookPath("iperf3"); err != nil && dur > 0 {
		t.Fatalf("iperf3 not installed: run .ci/install-deps")
	}
	printEnvironment()
	if dur > 0 {
		memoryRekeys(t, ovpndPath, dur, renegSec, kinds)
	}
	if sessions > 0 {
		memorySessions(t, ovpndPath, ovpnctlPath, sessions)
	}
}

// procMem is one process's memory in KiB: VmRSS and VmHWM from /proc/PID/status, the rest
// from /proc/PID/smaps_rollup.
type procMem struct {
	rss, hwm, pss, anon, file int
}

func readMem(pid int) (procMem, error) {
	var m procMem
	var err error
	if m.rss, m.hwm, err = memory(pid); err != nil {
		return m, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, fmt.Errorf("reading smaps_rollup: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Pss:":
			m.pss = v
		case "Anonymous:":
			m.anon = v
		}
	}
	// Resident pages are anonymous (heap, stacks, buffers) or file-backed (the binary's and the
	// libraries' text and data); RSS here also counts shared memory, which neither client has.
	m.file = m.rss - m.anon
	return m, nil
}

func (m procMem) String() string {
	return fmt.Sprintf("RSS %.1f MB (anonymous %.1f, file-backed %.1f), PSS %.1f MB, peak RSS %.1f MB",
		mb(m.rss), mb(m.anon), mb(m.file), mb(m.pss), mb(m.hwm))
}

func mb(kb int) float64 { return float64(kb) / 1024 }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// memSample is a client's memory after some renegotiations.
type memSample struct {
	when   string
	rekeys int
	mem    procMem
}

func memoryRekeys(t *cli, ovpndPath string, dur time.Duration, renegSec int, kinds []string) {
	step("rekeys: %s server renegotiating every %d s (reneg-sec), iperf3 for %v per client, one client at a time", openvpnVersion(), renegSec, dur)
	l := lab.New(t, lab.Options{})
	opts := benchServer
	opts.RenegSec = renegSec
	srv := l.StartServer(opts)
	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))
	samples := map[string][]memSample{}
	for _, kind := range kinds {
		args, err := clientArgs(kind, ovpndPath, cfg)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if kind == "ovpnd" {
			// A name of its own: the instance name is host-wide (/run/ovpnd), and another
			// lab on this machine may be running one called "lab".
			args = []string{ovpndPath, "run", "--name", fmt.Sprintf("mem-%d", os.Getpid()), cfg}
		}
		s, err := memRekeyRun(l, srv, args, dur)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		samples[kind] = s
	}
	fmt.Printf("\nmemory across rekeys: reneg-sec %d, iperf3 TCP traffic (10 s runs, up and down alternated) for %v per client\n", renegSec, dur)
	fmt.Printf("%-34s %22s %22s %14s\n", "client RSS (MB)", "openvpn 2.6", "ovpnd", "ovpnd/openvpn")
	ov, od := samples["openvpn"], samples["ovpnd"]
	if len(ov) == 0 || len(od) == 0 {
		return // one client only (-clients): its samples are printed above
	}
	for i := range ov {
		a, b := ov[i], od[i]
		fmt.Printf("%-34s %22s %22s %13.2fx\n", a.when,
			fmt.Sprintf("%.1f (%d rekeys)", mb(a.mem.rss), a.rekeys), fmt.Sprintf("%.1f (%d rekeys)", mb(b.mem.rss), b.rekeys),
			float64(b.mem.rss)/float64(a.mem.rss))
	}
	last := len(ov) - 1
	fmt.Printf("%-34s %22.1f %22.1f\n", "growth, 20 s of traffic to end (MB)", mb(ov[last].mem.rss-ov[1].mem.rss), mb(od[last].mem.rss-od[1].mem.rss))
	fmt.Printf("%-34s %22.1f %22.1f %13.2fx\n", "peak RSS, VmHWM (MB)", mb(ov[last].mem.hwm), mb(od[last].mem.hwm), float64(od[last].mem.hwm)/float64(ov[last].mem.hwm))
	for _, kind := range []string{"openvpn", "ovpnd"} {
		fmt.Printf("    %s at the end: %v\n", kind, samples[kind][last].mem)
	}
	fmt.Printf("target (issue 14): RSS <= 1.0x OpenVPN's: tunnel up %s, at the end %s; flat across rekeys: %+.1f MB (OpenVPN %+.1f MB)\n",
		met(float64(od[0].mem.rss)/float64(ov[0].mem.rss) <= 1), met(float64(od[last].mem.rss)/float64(ov[last].mem.rss) <= 1),
		mb(od[last].mem.rss-od[1].mem.rss), mb(ov[last].mem.rss-ov[1].mem.rss))
}

// memRekeyRun connects one client, samples its memory when the tunnel is up, then runs iperf3
// in 10 s pieces, upload and download alternating, until dur has passed, sampling after the
// first upload and download (both directions' buffers in use) and at the end, and stops the
// client.
func memRekeyRun(l *lab.Lab, srv *lab.Server, args []string, dur time.Duration) ([]memSample, error) {
	client := l.StartClientProcess(args...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	_, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr())
	cancel()
	if err == nil {
		err = l.WaitPing(srv.TunnelAddr(), 10*time.Second)
	}
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("tunnel: %w\n%s", err, client.Output())
	}
	base := strings.Count(srv.Log(), "Control Channel: TLS")
	var out []memSample
	sample := func(when string) error {
		m, err := readMem(client.PID())
		if err != nil {
			return err
		}
		// The first handshake's line is in base too: count renegotiations only.
		out = append(out, memSample{when, strings.Count(srv.Log(), "Control Channel: TLS") - base, m})
		fmt.Printf("    %-8s %-24s %v\n", filepath.Base(args[0]), when+":", m)
		return nil
	}
	fail := func(err error) ([]memSample, error) {
		client.Kill()
		return nil, err
	}
	if err := sample("tunnel up"); err != nil {
		return fail(err)
	}
	const piece = 10 * time.Second
	start := time.Now()
	for i := 0; i < 2 || time.Since(start) < dur-piece/2; i++ {
		res, err := l.Iperf(srv.TunnelAddr(), piece, i%2 == 1)
		if err != nil {
			return fail(fmt.Errorf("iperf3: %w\n%s", err, client.Output()))
		}
		if i < 2 {
			fmt.Printf("    %-8s iperf3 %-17s %.0f Mbit/s\n", filepath.Base(args[0]), map[bool]string{false: "up:", true: "down:"}[i == 1], res.BitsPerSecond/1e6)
		}
		if i == 1 {
			if err := sample("after 10 s up + 10 s down"); err != nil {
				return fail(err)
			}
		}
	}
	if err := sample(fmt.Sprintf("after %v of traffic", time.Since(start).Round(time.Second))); err != nil {
		return fail(err)
	}
	if err := stopClient(client); err != nil {
		return nil, err
	}
	return out, nil
}

func memorySessions(t *cli, ovpndPath, ovpnctlPath string, n int) {
	step("sessions: %d OpenVPN client processes, then one ovpnd daemon with %d sessions (duplicate-cn, idle after a ping each)", n, n)
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Fatalf("dbus-daemon not installed: run .ci/install-deps")
	}
	l := lab.New(t, lab.Options{})
	opts := benchServer
	opts.Extra = []string{"duplicate-cn"}
	srv := l.StartServer(opts)
	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))

	// OpenVPN: one process per tunnel.
	var ovpnMem []procMem
	var procs []*lab.Process
	for range n {
		procs = append(procs, l.StartClientProcess("openvpn", "--config", cfg))
	}
	for _, p := range procs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := p.WaitOutput(ctx, "Initialization Sequence Completed")
		cancel()
		if err != nil {
			t.Fatalf("openvpn: %v\n%s", err, p.Output())
		}
	}
	if err := pingEach(l, srv, n); err != nil {
		t.Fatalf("openvpn tunnels: %v", err)
	}
	time.Sleep(2 * time.Second)
	for _, p := range procs {
		m, err := readMem(p.PID())
		if err != nil {
			t.Fatalf("%v", err)
		}
		ovpnMem = append(ovpnMem, m)
	}
	for _, p := range procs {
		p.Stop(15 * time.Second)
	}
	time.Sleep(time.Second)

	// ovpnd: one daemon on a private system-type bus, sessions started by root with ovpnctl.
	d, bus, err := startDaemon(t, l, ovpndPath)
	if err != nil {
		t.Fatalf("%v", err)
	}
	idle, err := readMem(d.PID())
	if err != nil {
		t.Fatalf("%v", err)
	}
	fmt.Printf("    daemon with no session: %v\n", idle)
	var one procMem
	for i := range n {
		cmd := exec.Command(ovpnctlPath, "up", "--name", fmt.Sprintf("m%d", i), cfg)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ovpnctl up m%d: %v\n%s\n--- daemon ---\n%s", i, err, out, d.Output())
		}
		if i == 0 {
			if err := pingEach(l, srv, 1); err != nil {
				t.Fatalf("ovpnd tunnel: %v", err)
			}
			time.Sleep(2 * time.Second)
			if one, err = readMem(d.PID()); err != nil {
				t.Fatalf("%v", err)
			}
			fmt.Printf("    daemon with 1 session:  %v\n", one)
		}
	}
	if err := pingEach(l, srv, n); err != nil {
		t.Fatalf("ovpnd tunnels: %v\n--- daemon ---\n%s", err, d.Output())
	}
	time.Sleep(2 * time.Second)
	all, err := readMem(d.PID())
	if err != nil {
		t.Fatalf("%v", err)
	}
	fmt.Printf("    daemon with %d sessions: %v\n", n, all)
	if err := d.Stop(20 * time.Second); err != nil {
		t.Fatalf("stopping the daemon: %v\n%s", err, d.Output())
	}

	var sum procMem
	for _, m := range ovpnMem {
		sum.rss += m.rss
		sum.pss += m.pss
		sum.anon += m.anon
	}
	fmt.Printf("\nmemory of %d idle tunnels: %d OpenVPN 2.6 client processes vs one ovpnd daemon with %d sessions\n", n, n, n)
	fmt.Printf("%-34s %14s %14s %14s\n", "metric (MB)", "openvpn 2.6", "ovpnd daemon", "ovpnd/openvpn")
	row := func(name string, a, b int) {
		fmt.Printf("%-34s %14.1f %14.1f %13.2fx\n", name, mb(a), mb(b), float64(b)/float64(a))
	}
	row(fmt.Sprintf("RSS, %d tunnels", n), sum.rss, all.rss)
	row(fmt.Sprintf("PSS, %d tunnels", n), sum.pss, all.pss)
	row(fmt.Sprintf("anonymous, %d tunnels", n), sum.anon, all.anon)
	row("RSS per additional tunnel", sum.rss/n, (all.rss-one.rss)/max(n-1, 1))
	fmt.Printf("target (issue 14): daemon RSS <= 0.5x the %d processes': %s (%.2fx)\n", n, met(float64(all.rss) <= 0.5*float64(sum.rss)), float64(all.rss)/float64(sum.rss))
}

// pingEach pings the server's tunnel address through each of the first n tunnel devices
// (tun0, tun1, ...), so every tunnel has carried traffic.
func pingEach(l *lab.Lab, srv *lab.Server, n int) error {
	out, err := l.ClientExec(context.Background(), "ip", "-o", "link", "show", "type", "tun")
	if err != nil {
		return fmt.Errorf("listing tun devices: %v: %s", err, out)
	}
	var devs []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			devs = append(devs, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	if len(devs) < n {
		return fmt.Errorf("%d tun devices, want %d: %s", len(devs), n, out)
	}
	for _, dev := range devs {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := l.ClientExec(ctx, "ping", "-c", "1", "-W", "5", "-I", dev, srv.TunnelAddr())
		cancel()
		if err != nil {
			return fmt.Errorf("ping via %s: %v: %s", dev, err, out)
		}
	}
	return nil
}

// startDaemon runs a private system-type dbus-daemon (root may own and call net.ovpnd1, as
// packaging/net.ovpnd1.conf allows) and `ovpnd daemon` on it in the client namespace; it
// returns the daemon and the bus address.
func startDaemon(t *cli, l *lab.Lab, ovpndPath string) (*lab.Process, string, error) {
	dir, err := os.MkdirTemp("", "ovpnd-membus-")
	if err != nil {
		return nil, "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "bus")
	conf := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=` + sock + `</listen>
  <policy user="root">
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
`
	confPath := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, "", err
	}
	bus := exec.Command("dbus-daemon", "--config-file="+confPath, "--nofork", "--nopidfile")
	// dbus-daemon complains on stderr that it may not raise its fd limit; nothing to see.
	bus.Stdout, bus.Stderr = nil, nil
	if err := bus.Start(); err != nil {
		return nil, "", fmt.Errorf("starting dbus-daemon: %w", err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, "", errors.New("dbus-daemon did not create its socket within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	addr := "unix:path=" + sock
	d := l.StartClientProcess(ovpndPath, "daemon", "--bus", addr, "--state-dir", filepath.Join(dir, "state"),
		"--profile-dir", filepath.Join(dir, "profiles"))
	// The daemon owns its name once it serves; ovpnctl needs that.
	for deadline := time.Now().Add(10 * time.Second); ; {
		cmd := exec.Command("dbus-send", "--bus="+addr, "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
			"org.freedesktop.DBus.NameHasOwner", "string:net.ovpnd1")
		if out, err := cmd.Output(); err == nil && strings.Contains(string(out), "boolean true") {
			break
		}
		if d.Exited() || time.Now().After(deadline) {
			return nil, "", fmt.Errorf("ovpnd daemon did not take net.ovpnd1:\n%s", d.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, addr, nil
}
