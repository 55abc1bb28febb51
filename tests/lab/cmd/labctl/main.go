// Command labctl drives a throwaway namespace lab outside `go test`, for tests/demo.sh and
// tests/bench.sh. It needs root.
//
//	labctl demo  [-client ovpnd|openvpn] [-ovpnd PATH]
//	labctl bench [-ovpnd PATH] [-duration 6s] [-runs 3]
//	labctl faults [-ovpnd PATH] [-handshakes 6] [-loss 0,0.05,0.1,0.2,0.3] [-deadline 30s] [-trace] [-reconnect]
//	labctl rekey [-ovpnd PATH] [-duration 20s] [-runs 3] [-rate 200mbit] [-reneg-sec 0] [-reneg-bytes 33554432] [-gap 200ms]
//	labctl handshake [-ovpnd PATH] [-n 5] [-ovpnd-b PATH]
//	labctl memory [-ovpnd PATH] [-ovpnctl PATH] [-duration 60s] [-reneg-sec 2] [-sessions 10] [-clients openvpn,ovpnd]
//	labctl pacing [-ovpnd PATH] [-duration 6s] [-runs 3] [-rate 100m] [-queue 20ms] [-ovpnd-b PATH]
//
// Everything it creates (namespaces, processes, temp dirs) is removed on exit, on failure and
// on SIGINT/SIGTERM.
package main

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// cli implements lab.TB for a command-line program: failures print and exit after running
// every cleanup.
type cli struct {
	mu       sync.Mutex
	cleanups []func()
	done     bool
}

func (c *cli) Helper() {}

func (c *cli) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "    "+format+"\n", args...) }

func (c *cli) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAILED: "+format+"\n", args...)
	c.exit(1)
}

func (c *cli) Skipf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cannot run: "+format+"\n", args...)
	c.exit(1)
}

func (c *cli) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, f)
}

// exit runs the cleanups once, newest first, and exits. A second caller (the signal handler
// racing the main goroutine) waits for the first to finish.
func (c *cli) exit(code int) {
	c.mu.Lock()
	if !c.done {
		c.done = true
		for i := len(c.cleanups) - 1; i >= 0; i-- {
			c.cleanups[i]()
		}
		lab.RemoveShared()
	}
	c.mu.Unlock()
	os.Exit(code)
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: labctl demo|bench|faults|rekey|memory|handshake|pacing [flags]")
		os.Exit(2)
	}
	t := &cli{}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\nlabctl: %v, cleaning up\n", s)
		t.exit(130)
	}()
	// labctl is an explicit opt-in; the env gate exists for `go test ./...`.
	os.Setenv(lab.EnvGate, "1")

	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	ovpnd := fs.String("ovpnd", "bin/ovpnd", "path of the ovpnd binary")
	switch os.Args[1] {
	case "demo":
		client := fs.String("client", "ovpnd", "client to demonstrate: ovpnd or openvpn")
		fs.Parse(os.Args[2:])
		demo(t, *client, *ovpnd)
	case "bench":
		dur := fs.Duration("duration", 6*time.Second, "iperf3 duration per direction")
		runs := fs.Int("runs", 3, "runs of every client, alternated (medians reported)")
		fs.Parse(os.Args[2:])
		bench(t, *ovpnd, *dur, max(*runs, 1))
	case "faults":
		n := fs.Int("handshakes", 6, "handshakes per client and loss level (alternated)")
		loss := fs.String("loss", "0,0.05,0.1,0.2,0.3", "comma-separated datagram loss levels, each direction")
		deadline := fs.Duration("deadline", 30*time.Second, "a handshake succeeds when a ping goes through within this")
		trace := fs.Bool("trace", false, "print every handshake's control packets (x: dropped)")
		reconnect := fs.Bool("reconnect", false, "also time a reconnect (SIGUSR1) to a ping through the new tunnel after each successful handshake")
		fs.Parse(os.Args[2:])
		levels, err := parseLevels(*loss)
		if err != nil {
			fmt.Fprintf(os.Stderr, "labctl faults: -loss: %v\n", err)
			os.Exit(2)
		}
		faults(t, *ovpnd, max(*n, 1), levels, max(*deadline, time.Second), *trace, *reconnect)
	case "rekey":
		dur := fs.Duration("duration", 20*time.Second, "iperf3 duration per direction")
		runs := fs.Int("runs", 3, "runs of every client, alternated")
		rate := fs.String("rate", "200mbit", "link rate each way (tc tbf)")
		renegSec := fs.Int("reneg-sec", 0, "the server's reneg-sec (0: none)")
		renegBytes := fs.Int("reneg-bytes", 32<<20, "the server's reneg-bytes (0: none)")
		gap := fs.Duration("gap", 200*time.Millisecond, "a span without delivered data longer than this is a stall")
		fs.Parse(os.Args[2:])
		rekey(t, *ovpnd, *dur, max(*runs, 1), *rate, max(*renegSec, 0), max(*renegBytes, 0), *gap)
	case "handshake":
		n := fs.Int("n", 5, "handshake cycles per client (alternated)")
		other := fs.String("ovpnd-b", "", "a second ovpnd binary measured alongside (A/B of a change)")
		fs.Parse(os.Args[2:])
		handshakes(t, *ovpnd, *other, max(*n, 1))
	case "memory":
		ovpnctl := fs.String("ovpnctl", "bin/ovpnctl", "path of the ovpnctl binary (starts the daemon's sessions)")
		dur := fs.Duration("duration", 60*time.Second, "iperf3 traffic per client while the server renegotiates (0: skip)")
		reneg := fs.Int("reneg-sec", 2, "the server's reneg-sec during the traffic")
		sessions := fs.Int("sessions", 10, "tunnels for the daemon vs OpenVPN processes comparison (0: skip)")
		clients := fs.String("clients", "openvpn,ovpnd", "clients measured across rekeys, in this order")
		fs.Parse(os.Args[2:])
		memoryBench(t, *ovpnd, *ovpnctl, *dur, max(*reneg, 1), *sessions, strings.Split(*clients, ","))
	case "pacing":
		dur := fs.Duration("duration", 6*time.Second, "iperf3 upload time per run")
		runs := fs.Int("runs", 3, "runs of every client per link, alternated (medians reported)")
		rate := fs.String("rate", "100m", "uplink rate limit for the second link setting, in tc units without \"bit\" (empty: none)")
		queue := fs.String("queue", "20ms", "queue of the rate-limited link, as tbf latency")
		other := fs.String("ovpnd-b", "", "a second ovpnd binary measured alongside (A/B of a change)")
		fs.Parse(os.Args[2:])
		pacing(t, *ovpnd, *other, *dur, max(*runs, 1), *rate, *queue)
	default:
		fmt.Fprintf(os.Stderr, "labctl: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	t.exit(0)
}

// clientArgs returns the command line for a client kind, or an error saying why it cannot run.
func clientArgs(kind, ovpndPath, config string) ([]string, error) {
	switch kind {
	case "openvpn":
		return []string{"openvpn", "--config", config}, nil
	case "ovpnd":
		if _, err := os.Stat(ovpndPath); err != nil {
			return nil, fmt.Errorf("bin/ovpnd missing (%s): run `make build`", ovpndPath)
		}
		// A state directory of the lab's own: labs of other runs on the machine use the same
		// instance name, whose routing lock lives in the state directory.
		return []string{ovpndPath, "run", "--name", "lab", "--state-dir", filepath.Join(filepath.Dir(config), "state"), config}, nil
	}
	return nil, fmt.Errorf("unknown client %q", kind)
}

// abClients are the clients a run alternates: OpenVPN's and ovpnd, and "ovpnd-b" when a
// second ovpnd build is given, to compare a change against its base in the same run.
type abClients struct {
	kinds        []string
	ovpnd, other string
}

func newABClients(ovpndPath, otherPath string) abClients {
	if abs, err := absPath(ovpndPath); err == nil {
		ovpndPath = abs
	}
	c := abClients{kinds: []string{"openvpn", "ovpnd"}, ovpnd: ovpndPath, other: otherPath}
	if otherPath != "" {
		if abs, err := absPath(otherPath); err == nil {
			c.other = abs
		}
		c.kinds = append(c.kinds, "ovpnd-b")
	}
	return c
}

// args is the command line of client kind with the given profile.
func (c abClients) args(kind, config string) ([]string, error) {
	if kind == "ovpnd-b" {
		return clientArgs("ovpnd", c.other, config)
	}
	return clientArgs(kind, c.ovpnd, config)
}

// connectedClient starts a client and waits for its tunnel and a ping through it. The
// caller stops it (stopClient); on failure it is stopped already.
func connectedClient(l *lab.Lab, srv *lab.Server, args []string) (*lab.Process, error) {
	client, _, err := timedConnect(l, srv, args, 20*time.Second)
	if err != nil {
		return nil, err
	}
	if err := l.WaitPing(srv.TunnelAddr(), 10*time.Second); err != nil {
		stopClient(client)
		return nil, err
	}
	return client, nil
}

// medianFloat is the median of v (which it sorts), 0 for none.
func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

var benchServer = lab.ServerOptions{Proto: "udp", Wrap: "tls-crypt", DataCiphers: []string{"AES-256-GCM"}}

func demo(t *cli, kind, ovpndPath string) {
	if kind == "ovpnd" {
		if abs, err := absPath(ovpndPath); err == nil {
			ovpndPath = abs
		}
	}
	if _, err := clientArgs(kind, ovpndPath, ""); err != nil {
		t.Fatalf("%v", err)
	}
	step("building the lab: two network namespaces joined by a veth pair, PKI from openssl")
	l := lab.New(t, lab.Options{})
	fmt.Printf("    server namespace %s: veth0 %s, %s\n", l.ServerNS, lab.ServerUnderlay4, lab.ServerUnderlay6)
	fmt.Printf("    client namespace %s: veth0 %s, %s\n", l.ClientNS, lab.ClientUnderlay4, lab.ClientUnderlay6)

	step("starting Debian's OpenVPN server (%s) in %s: UDP 1194, tls-crypt, AES-256-GCM, topology subnet", openvpnVersion(), l.ServerNS)
	srv := l.StartServer(benchServer)
	fmt.Printf("    server up, pid %d, tunnel address %s\n", srv.PID(), srv.TunnelAddr())
	before := l.ClientNetState()

	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))
	args, _ := clientArgs(kind, ovpndPath, cfg)
	step("running in %s: %s", l.ClientNS, strings.Join(args, " "))
	start := time.Now()
	client := l.StartClientProcess(args...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dev, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr())
	if err != nil {
		t.Fatalf("tunnel did not come up: %v\n--- client output ---\n%s", err, client.Output())
	}
	step("tunnel up after %v: %s on %s", time.Since(start).Round(time.Millisecond), srv.ClientTunnelAddr(), dev)
	show(l, "ip", "addr", "show", "dev", dev)
	show(l, "ip", "route")

	step("ping %s (the server's tunnel address) from the client namespace", srv.TunnelAddr())
	st, err := l.Ping(srv.TunnelAddr(), 3, 5*time.Second)
	fmt.Print(indent(st.Output))
	if err != nil || st.Lost() > 0 {
		t.Fatalf("ping through the tunnel: %v", err)
	}

	const n = 16 << 20
	step("moving %d MiB each way through the tunnel, checked byte for byte", n>>20)
	up, down := l.Transfer(t, srv.TunnelAddr(), n)
	fmt.Printf("    upload   %d bytes OK in %v\n", up.Bytes, up.Duration.Round(time.Millisecond))
	fmt.Printf("    download %d bytes OK in %v\n", down.Bytes, down.Duration.Round(time.Millisecond))

	step("stopping the client with SIGTERM")
	if err := client.Stop(15 * time.Second); err != nil {
		t.Fatalf("client exit: %v\n--- client output ---\n%s", err, client.Output())
	}
	fmt.Println("    exit status 0")
	if after := l.ClientNetState(); after != before {
		t.Fatalf("client namespace not restored:\n--- before ---\n%s\n--- after ---\n%s", before, after)
	}
	fmt.Println("    client namespace addresses and routes are back to what they were")
	step("cleaning up the lab")
	t.exit(0)
}

func openvpnVersion() string {
	out, _ := exec.Command("openvpn", "--version").Output()
	f := strings.Fields(string(out))
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return "OpenVPN"
}

func show(l *lab.Lab, args ...string) {
	out, err := l.ClientExec(context.Background(), args...)
	fmt.Printf("    $ %s\n%s", strings.Join(args, " "), indent(string(out)))
	if err != nil {
		fmt.Printf("    (%v)\n", err)
	}
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	return b.String()
}

func absPath(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + p, nil
}

// result is one client's bench figures, medians over the runs; ok=false means the client did
// not run (why says so).
type result struct {
	ok         bool
	why        string
	handshake  time.Duration
	rtt        time.Duration
	up, down   lab.IperfResult
	cpuUp      float64 // CPU-seconds per GB moved
	cpuDown    float64
	rssKB      int
	hwmKB      int
	handshakes []time.Duration // every start sample of every run (handshake.go); handshake is their median
	reconnect  time.Duration   // the median of reconnects
	reconnects []time.Duration
}

// run is one client's figures in one run.
type run struct {
	starts         []time.Duration // start-to-tunnel samples (handshake.go); none for wireguard-go
	reconnects     []time.Duration
	rtt            time.Duration
	up, down       lab.IperfResult
	cpuUp, cpuDown float64
	rssKB, hwmKB   int
}

// benchKinds are the clients compared; every run measures each, in a rotated order, so that a
// change in the machine's load during the bench spreads over all of them.
var benchKinds = []string{"openvpn", "ovpnd", "wireguard-go"}

func bench(t *cli, ovpndPath string, dur time.Duration, runs int) {
	if abs, err := absPath(ovpndPath); err == nil {
		ovpndPath = abs
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 not installed: run .ci/install-deps")
	}
	printEnvironment()
	step("building the lab and starting %s server (UDP, tls-crypt, AES-256-GCM)", openvpnVersion())
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(benchServer)
	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))
	wg, err := startWireGuard(t, l)
	if err != nil {
		fmt.Fprintf(os.Stderr, "    wireguard-go: %v\n", err)
	}

	runsOf := map[string][]run{}
	why := map[string]string{}
	for i := range runs {
		for j := range benchKinds {
			kind := benchKinds[(i+j)%len(benchKinds)]
			if why[kind] != "" {
				continue
			}
			var r run
			var err error
			switch kind {
			case "wireguard-go":
				if wg == nil {
					why[kind] = "failed"
					continue
				}
				step("run %d/%d: wireguard-go (userspace pair, same lab)", i+1, runs)
				err = measure(l, wgServerAddr, wg.PID(), dur, &r)
			default:
				args, aerr := clientArgs(kind, ovpndPath, cfg)
				if aerr != nil {
					why[kind] = "n/a (bin/ovpnd missing)"
					step("%s: skipped: %v", kind, aerr)
					continue
				}
				step("run %d/%d: %s", i+1, runs, kind)
				err = benchClient(l, srv, args, dur, &r)
			}
			if err != nil {
				why[kind] = "failed"
				fmt.Fprintf(os.Stderr, "    %s: %v\n", kind, err)
				continue
			}
			runsOf[kind] = append(runsOf[kind], r)
		}
	}
	results := map[string]*result{}
	for _, kind := range benchKinds {
		results[kind] = summarize(runsOf[kind], why[kind])
	}
	printTable(results, dur, runs)
	if !results["openvpn"].ok {
		t.Fatalf("the OpenVPN reference measurement failed")
	}
	if why["ovpnd"] == "failed" || why["wireguard-go"] == "failed" {
		t.Fatalf("a measurement failed")
	}
}

// printEnvironment prints what the figures depend on: they are only comparable within one run.
func printEnvironment() {
	load, _ := os.ReadFile("/proc/loadavg")
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					cpu = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	goVersion, _ := exec.Command(goCmd(), "env", "GOVERSION").Output()
	wgVersion, _ := exec.Command(goCmd(), "list", "-m", "-f", "{{.Version}}", "golang.zx2c4.com/wireguard").Output()
	step("environment")
	fmt.Printf("    kernel %s, %d CPUs (%s), load average %s\n", strings.TrimSpace(string(kernel)), runtime.NumCPU(), cpu,
		strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("    %s, %s, wireguard-go %s (golang.zx2c4.com/wireguard, device + tun + conn.NewDefaultBind)\n",
		openvpnVersion(), strings.TrimSpace(string(goVersion)), strings.TrimSpace(string(wgVersion)))
	fmt.Println("    figures are comparable within this run only; on a loaded machine CPU-s/GB is steadier than Mbit/s")
}

// summarize takes the median of each figure over the runs.
func summarize(runs []run, why string) *result {
	r := &result{why: why}
	if len(runs) == 0 || why != "" {
		return r
	}
	r.ok = true
	med := func(get func(run) float64) float64 {
		v := make([]float64, len(runs))
		for i, x := range runs {
			v[i] = get(x)
		}
		return medianFloat(v)
	}
	r.rtt = time.Duration(med(func(x run) float64 { return float64(x.rtt) }))
	r.up.BitsPerSecond = med(func(x run) float64 { return x.up.BitsPerSecond })
	r.down.BitsPerSecond = med(func(x run) float64 { return x.down.BitsPerSecond })
	r.up.Retransmits = int(med(func(x run) float64 { return float64(x.up.Retransmits) }))
	r.cpuUp = med(func(x run) float64 { return x.cpuUp })
	r.cpuDown = med(func(x run) float64 { return x.cpuDown })
	r.rssKB = int(med(func(x run) float64 { return float64(x.rssKB) }))
	r.hwmKB = int(med(func(x run) float64 { return float64(x.hwmKB) }))
	for _, x := range runs {
		r.handshakes = append(r.handshakes, x.starts...)
		r.reconnects = append(r.reconnects, x.reconnects...)
	}
	r.handshake, r.reconnect = medianDuration(r.handshakes), medianDuration(r.reconnects)
	return r
}

func benchClient(l *lab.Lab, srv *lab.Server, args []string, dur time.Duration, r *run) error {
	if err := benchHandshakes(l, srv, args, r); err != nil {
		return err
	}
	client, d, err := timedConnect(l, srv, args, 20*time.Second)
	if err != nil {
		return err
	}
	r.starts = append(r.starts, d)
	fmt.Printf("    handshake: %v\n", d.Round(100*time.Microsecond))
	if err := measure(l, srv.TunnelAddr(), client.PID(), dur, r); err != nil {
		client.Kill()
		return err
	}
	return stopClient(client)
}

// stopClient stops a client with SIGTERM and then gives the server time to notice the exit,
// so that the next client's connect does not collide with the old one on the same address.
func stopClient(client *lab.Process) error {
	err := client.Stop(15 * time.Second)
	time.Sleep(500 * time.Millisecond)
	if err != nil {
		return fmt.Errorf("stopping client: %w", err)
	}
	return nil
}

// measure runs the ping and both iperf3 directions through the tunnel to addr, charging the
// CPU time of process pid (the client side).
func measure(l *lab.Lab, addr string, pid int, dur time.Duration, r *run) error {
	if err := l.WaitPing(addr, 10*time.Second); err != nil {
		return err
	}
	st, err := l.Ping(addr, 10, 5*time.Second)
	if err != nil {
		return err
	}
	r.rtt = st.AvgRTT
	fmt.Printf("    ping through tunnel: avg %v\n", r.rtt)
	for _, reverse := range []bool{false, true} {
		dir := "client -> server"
		if reverse {
			dir = "server -> client"
		}
		cpu0, err := cpuSeconds(pid)
		if err != nil {
			return err
		}
		res, err := l.Iperf(addr, dur, reverse)
		if err != nil {
			return err
		}
		cpu1, err := cpuSeconds(pid)
		if err != nil {
			return err
		}
		perGB := (cpu1 - cpu0) / (float64(res.Bytes) / 1e9)
		fmt.Printf("    iperf3 %v %s: %.0f Mbit/s, %d retransmits, client CPU %.2f s (%.2f CPU-s/GB)\n",
			dur, dir, res.BitsPerSecond/1e6, res.Retransmits, cpu1-cpu0, perGB)
		if reverse {
			r.down, r.cpuDown = res, perGB
		} else {
			r.up, r.cpuUp = res, perGB
		}
	}
	r.rssKB, r.hwmKB, err = memory(pid)
	return err
}

// goCmd is the go command tests/labctl.sh used ($GO, else go).
func goCmd() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// The wireguard-go pair's tunnel addresses and port.
const (
	wgServerAddr = "10.9.0.1"
	wgClientAddr = "10.9.0.2"
	wgPort       = 51820
)

// startWireGuard builds tests/lab/cmd/wgpeer and runs one peer in each namespace over the same
// veth as the OpenVPN server; it returns the client peer's process.
func startWireGuard(t *cli, l *lab.Lab) (*lab.Process, error) {
	dir, err := os.MkdirTemp("", "ovpnd-wgpeer-")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := dir + "/wgpeer"
	if out, err := exec.Command(goCmd(), "build", "-o", bin, "./tests/lab/cmd/wgpeer").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building wgpeer: %v: %s", err, out)
	}
	key := func() (priv, pub string, err error) {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return "", "", err
		}
		return hex.EncodeToString(k.Bytes()), hex.EncodeToString(k.PublicKey().Bytes()), nil
	}
	sPriv, sPub, err1 := key()
	cPriv, cPub, err2 := key()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	sCfg := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=%s/32\n", sPriv, wgPort, cPub, wgClientAddr)
	cCfg := fmt.Sprintf("private_key=%s\npublic_key=%s\nendpoint=%s:%d\nallowed_ip=%s/32\n", cPriv, sPub, lab.ServerUnderlay4, wgPort, wgServerAddr)
	var client *lab.Process
	for _, side := range []struct {
		cfg, ns, addr string
		server        bool
	}{{sCfg, l.ServerNS, wgServerAddr, true}, {cCfg, l.ClientNS, wgClientAddr, false}} {
		path := dir + "/" + side.ns + ".uapi"
		if err := os.WriteFile(path, []byte(side.cfg), 0o600); err != nil {
			return nil, err
		}
		args := []string{bin, "-name", "wg0", "-uapi", path}
		var p *lab.Process
		if side.server {
			p = l.StartServerProcess(args...)
		} else {
			p = l.StartClientProcess(args...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.WaitOutput(ctx, "ready")
		cancel()
		if err != nil {
			return nil, fmt.Errorf("wgpeer in %s: %w: %s", side.ns, err, p.Output())
		}
		for _, c := range [][]string{
			{"ip", "-n", side.ns, "addr", "add", side.addr + "/24", "dev", "wg0"},
			{"ip", "-n", side.ns, "link", "set", "wg0", "up"},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
			}
		}
		client = p
	}
	return client, nil
}

// timedConnect starts a client and measures until its tunnel address appears, using
// `ip monitor` so the moment is caught as the kernel announces it instead of by polling.
func timedConnect(l *lab.Lab, srv *lab.Server, args []string, timeout time.Duration) (*lab.Process, time.Duration, error) {
	mon := exec.Command("ip", "-n", l.ClientNS, "-o", "monitor", "address")
	out, err := mon.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := mon.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting ip monitor: %w", err)
	}
	defer func() { mon.Process.Kill(); mon.Wait() }()
	seen := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), " "+srv.ClientTunnelAddr()+"/") ||
				strings.Contains(sc.Text(), " "+srv.ClientTunnelAddr()+" ") {
				seen <- time.Now()
				return
			}
		}
	}()
	// ip monitor subscribes asynchronously; give it a moment so the event is not missed.
	time.Sleep(100 * time.Millisecond)
	client := l.StartClientProcess(args...)
	select {
	case at := <-seen:
		return client, at.Sub(client.Started()), nil
	case <-client.Done():
		return nil, 0, fmt.Errorf("client exited: %v\n%s", client.Wait(), client.Output())
	case <-time.After(timeout):
		client.Kill()
		return nil, 0, fmt.Errorf("no tunnel address after %v:\n%s", timeout, client.Output())
	}
}

// cpuSeconds is utime+stime of the whole process (all threads) from /proc/PID/stat. USER_HZ
// is 100 on every Linux architecture Go supports for this lab.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading process stats: %w", err)
	}
	return parseCPU(string(b))
}

// parseCPU reads utime and stime from a /proc/PID/stat line. The command name comes in
// parentheses and may itself contain spaces and parentheses, so fields count from the last ')'.
func parseCPU(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing /proc/PID/stat: %w", err)
	}
	return float64(ut+st) / 100, nil
}

func memory(pid int) (rss, hwm int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading process status: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			switch f[0] {
			case "VmRSS:":
				rss, _ = strconv.Atoi(f[1])
			case "VmHWM:":
				hwm, _ = strconv.Atoi(f[1])
			}
		}
	}
	return rss, hwm, nil
}

func printTable(results map[string]*result, dur time.Duration, runs int) {
	type row struct {
		name string
		get  func(r *result) float64
		unit string
	}
	rows := []row{
		{"handshake, median (ms)", func(r *result) float64 { return float64(r.handshake) / 1e6 }, "%.1f"},
		{"reconnect, median (ms)", func(r *result) float64 { return float64(r.reconnect) / 1e6 }, "%.1f"},
		{"ping RTT via tunnel (ms)", func(r *result) float64 { return float64(r.rtt) / 1e6 }, "%.3f"},
		{"throughput up (Mbit/s)", func(r *result) float64 { return r.up.BitsPerSecond / 1e6 }, "%.0f"},
		{"throughput down (Mbit/s)", func(r *result) float64 { return r.down.BitsPerSecond / 1e6 }, "%.0f"},
		{"TCP retransmits up", func(r *result) float64 { return float64(r.up.Retransmits) }, "%.0f"},
		{"client CPU-s/GB up", func(r *result) float64 { return r.cpuUp }, "%.2f"},
		{"client CPU-s/GB down", func(r *result) float64 { return r.cpuDown }, "%.2f"},
		{"client RSS (MB)", func(r *result) float64 { return float64(r.rssKB) / 1024 }, "%.1f"},
		{"client peak RSS, VmHWM (MB)", func(r *result) float64 { return float64(r.hwmKB) / 1024 }, "%.1f"},
	}
	ov, od, wg := results["openvpn"], results["ovpnd"], results["wireguard-go"]
	cell := func(r *result, rw row) string {
		if !r.ok {
			if r.why == "" {
				return "n/a"
			}
			return r.why
		}
		if (rw.name == "handshake, median (ms)" || rw.name == "reconnect, median (ms)") && r == wg {
			return "-"
		}
		return fmt.Sprintf(rw.unit, rw.get(r))
	}
	ratio := func(a, b *result, rw row) string {
		if !a.ok || !b.ok || rw.get(b) == 0 || rw.get(a) == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", rw.get(a)/rw.get(b))
	}
	fmt.Printf("\nbench: same lab, UDP; OpenVPN 2.6 server with tls-crypt + AES-256-GCM for both OpenVPN clients,\n"+
		"a wireguard-go pair over the same veth; iperf3 single TCP stream %v per direction;\n"+
		"medians of %d runs, clients alternated in rotating order\n", dur, runs)
	fmt.Printf("%-28s %12s %24s %13s %14s %13s\n", "metric", "openvpn 2.6", "ovpnd", "wireguard-go", "ovpnd/openvpn", "ovpnd/wg-go")
	for _, rw := range rows {
		fmt.Printf("%-28s %12s %24s %13s %14s %13s\n", rw.name, cell(ov, rw), cell(od, rw), cell(wg, rw), ratio(od, ov, rw), ratio(od, wg, rw))
	}
	fmt.Println("(lower is better for handshake, RTT, retransmits, CPU and RSS; higher for throughput)")
	printHandshakeSamples(results)
}

// faults times handshakes over an impaired link at several loss levels: tests/lab/cmd/lossy
// relays between the client and the server, dropping datagrams with a level's probability each
// way and delaying the rest by 20 ± 10 ms (which reorders them). At every level the OpenVPN 2.6
// client and ovpnd alternate, n handshakes each; a handshake's figure is the time from process
// start to the tunnel address (handshake and push done), and it succeeds when a ping goes
// through the tunnel within deadline of the start. The relay's packet log gives the control
// packets each handshake exposed to loss before its tunnel came up.
func faults(t *cli, ovpndPath string, n int, levels []float64, deadline time.Duration, trace, reconnect bool) {
	if abs, err := absPath(ovpndPath); err == nil {
		ovpndPath = abs
	}
	printEnvironment()
	step("building the lab, the impaired relay, and starting %s server (UDP, tls-crypt, AES-256-GCM)", openvpnVersion())
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(benchServer)
	dir, err := os.MkdirTemp("", "ovpnd-lossy-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := dir + "/lossy"
	if out, err := exec.Command(goCmd(), "build", "-o", bin, "./tests/lab/cmd/lossy").CombinedOutput(); err != nil {
		t.Fatalf("building lossy: %v: %s", err, out)
	}
	const relayPort = 1195
	direct := srv.ClientConfig(lab.ClientOptions{})
	viaRelay := strings.Replace(direct, fmt.Sprintf("remote %s 1194", lab.ServerUnderlay4), fmt.Sprintf("remote %s %d", lab.ServerUnderlay4, relayPort), 1)
	if viaRelay == direct {
		t.Fatalf("could not point the client configuration at the relay:\n%s", direct)
	}
	cfg := l.WriteFile("client.ovpn", viaRelay)

	kinds := []string{"openvpn", "ovpnd"}
	var results []levelResult
	for _, loss := range levels {
		step("%.0f%% loss each way: %d handshakes per client, alternated", loss*100, n)
		relay := l.StartServerProcess(bin, "-log", "-listen", fmt.Sprintf("%s:%d", lab.ServerUnderlay4, relayPort),
			"-to", "127.0.0.1:1194", "-loss", strconv.FormatFloat(loss, 'f', -1, 64), "-delay", "20ms", "-jitter", "10ms")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = relay.WaitOutput(ctx, "ready")
		cancel()
		if err != nil {
			t.Fatalf("lossy: %v: %s", err, relay.Output())
		}
		res := levelResult{loss: loss, runs: map[string][]faultRun{}}
		for i := range n {
			for j := range kinds {
				kind := kinds[(i+j)%len(kinds)]
				args, err := clientArgs(kind, ovpndPath, cfg)
				if err != nil {
					t.Fatalf("%v", err)
				}
				logged := len(relay.Output())
				r := faultHandshake(l, srv, args, deadline, reconnect)
				r.countPackets(relay.Output()[logged:])
				res.runs[kind] = append(res.runs[kind], r)
				if r.err != nil {
					fmt.Printf("    %d/%d %-8s failed: %v\n", i+1, n, kind, lastLines(r.err.Error(), 6))
					if trace {
						fmt.Printf("        %s\n", strings.Join(r.trace, "\n        "))
					}
					continue
				}
				fmt.Printf("    %d/%d %-8s tunnel up after %-8v control packets to it: c2s %d (%d lost), s2c %d (%d lost)\n",
					i+1, n, kind, r.up.Round(time.Millisecond), r.sent[0], r.lost[0], r.sent[1], r.lost[1])
				if trace {
					fmt.Printf("        %s\n", strings.Join(r.trace, "\n        "))
				}
				if reconnect {
					if r.reErr != nil {
						fmt.Printf("        reconnect failed: %v\n", r.reErr)
					} else {
						fmt.Printf("        reconnect (SIGUSR1) to a ping through the tunnel: %v\n", r.reconnect.Round(time.Millisecond))
						if trace {
							fmt.Printf("          %s\n", strings.Join(r.reTrace, "\n          "))
						}
					}
				}
			}
		}
		relay.Stop(5 * time.Second)
		results = append(results, res)
	}
	printFaults(results, kinds, n, deadline, reconnect)
}

// faultRun is one handshake through the impaired relay.
type faultRun struct {
	err   error         // nil: the tunnel came up and a ping went through within the deadline
	start time.Time     // the client's start
	up    time.Duration // from start to the tunnel address
	// Control packets (every opcode but data) the relay saw from start to tunnel up, [0] from
	// the client, [1] from the server, and how many of them it dropped.
	sent, lost [2]int
	// trace lists those packets: milliseconds since the start, direction, opcode name, length,
	// and an x when dropped.
	trace []string
	// reconnect is the time from SIGUSR1 to the first ping answered through the new tunnel;
	// reErr says why there was none (both only with -reconnect, after a successful run).
	reconnect time.Duration
	reErr     error
	reStart   time.Time // when SIGUSR1 was sent
	reTrace   []string  // the control packets from then to the reconnect's ping
}

// opNames are OpenVPN's control opcodes (ssl_pkt.h), for the packet trace.
var opNames = map[int]string{1: "HR_C_V1", 2: "HR_S_V1", 3: "SOFT_RESET", 4: "CONTROL", 5: "ACK", 7: "HR_C_V2", 8: "HR_S_V2", 10: "HR_C_V3", 11: "CONTROL_WKC"}

// countPackets reads the relay's packet log (lines "pkt UNIX-NS c2s|s2c OPCODE LEN pass|drop")
// and counts the control packets between the run's start and its tunnel coming up.
func (r *faultRun) countPackets(log string) {
	if r.err != nil {
		// A failed run's trace covers all it sent, to show where it stalled.
		_, _, r.trace = packetWindow(log, r.start, time.Now())
		return
	}
	r.sent, r.lost, r.trace = packetWindow(log, r.start, r.start.Add(r.up))
	if r.reErr == nil && r.reconnect > 0 {
		_, _, r.reTrace = packetWindow(log, r.reStart, r.reStart.Add(r.reconnect))
	}
}

// packetWindow counts the control packets in the relay's log between from and to, and lists
// them.
func packetWindow(log string, start, end time.Time) (sent, lost [2]int, trace []string) {
	from, to := start.UnixNano(), end.UnixNano()
	for line := range strings.SplitSeq(log, "\n") {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != "pkt" {
			continue
		}
		at, err1 := strconv.ParseInt(f[1], 10, 64)
		op, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || at < from || at > to || op == 6 || op == 9 { // P_DATA_V1, P_DATA_V2
			continue
		}
		d := 0
		if f[2] == "s2c" {
			d = 1
		}
		sent[d]++
		mark := ""
		if f[5] == "drop" {
			lost[d]++
			mark = " x"
		}
		name := opNames[op]
		if name == "" {
			name = "op" + f[3]
		}
		trace = append(trace, fmt.Sprintf("%5dms %s %-11s %4s%s", (at-from)/1e6, f[2], name, f[4], mark))
	}
	return sent, lost, trace
}

// levelResult is every handshake at one loss level, by client.
type levelResult struct {
	loss float64
	runs map[string][]faultRun
}

// summary is the median time to tunnel up over the successful runs, their count, and the
// median control packets each way.
func (lr levelResult) summary(kind string) (med time.Duration, ok int, c2s, s2c int) {
	var ups []time.Duration
	var cs, ss []int
	for _, r := range lr.runs[kind] {
		if r.err != nil {
			continue
		}
		ups = append(ups, r.up)
		cs = append(cs, r.sent[0])
		ss = append(ss, r.sent[1])
	}
	if len(ups) == 0 {
		return 0, 0, 0, 0
	}
	sortDurations(ups)
	sort.Ints(cs)
	sort.Ints(ss)
	return ups[len(ups)/2], len(ups), cs[len(cs)/2], ss[len(ss)/2]
}

// reconnects is the median time from SIGUSR1 to a ping through the new tunnel, over the runs
// that got one, and how many did.
func (lr levelResult) reconnects(kind string) (med time.Duration, ok, tried int) {
	var v []time.Duration
	for _, r := range lr.runs[kind] {
		if r.err != nil {
			continue
		}
		tried++
		if r.reErr == nil {
			v = append(v, r.reconnect)
		}
	}
	if len(v) == 0 {
		return 0, 0, tried
	}
	sortDurations(v)
	return v[len(v)/2], len(v), tried
}

func sortDurations(v []time.Duration) { sort.Slice(v, func(a, b int) bool { return v[a] < v[b] }) }

// printFaults prints one row per loss level and client, and whether ovpnd met the target (median
// at most OpenVPN's, success rate at least OpenVPN's) at every level. A failed run counts as
// not coming up at all, so the median is over the successful runs only.
func printFaults(results []levelResult, kinds []string, n int, deadline time.Duration, reconnect bool) {
	fmt.Printf("\nfaults: loss each way, 20 ± 10 ms one-way delay (reordering), %d handshakes per client and level, alternated;\n"+
		"success = tunnel up and a ping through it within %v; median over the successful handshakes;\n"+
		"control packets = median per handshake, from start to tunnel up, both directions counted at the relay\n", n, deadline)
	fmt.Printf("%-6s %-8s %9s %12s %14s %16s\n", "loss", "client", "success", "median", "ovpnd/openvpn", "ctl pkts c2s/s2c")
	met := true
	for _, lr := range results {
		mo, oko, _, _ := lr.summary("openvpn")
		md, okd, _, _ := lr.summary("ovpnd")
		ratio := "n/a"
		if mo > 0 && md > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(md)/float64(mo))
		}
		if okd < oko || (okd > 0 && oko > 0 && md > mo) || okd == 0 {
			met = false
		}
		for _, k := range kinds {
			med, ok, c2s, s2c := lr.summary(k)
			r := ""
			if k == "ovpnd" {
				r = ratio
			}
			fmt.Printf("%-6s %-8s %9s %12v %14s %16s\n", fmt.Sprintf("%.0f%%", lr.loss*100), k,
				fmt.Sprintf("%d/%d", ok, len(lr.runs[k])), med.Round(time.Millisecond), r, fmt.Sprintf("%d/%d", c2s, s2c))
		}
	}
	verdict := "yes"
	if !met {
		verdict = "no"
	}
	fmt.Printf("ovpnd median <= OpenVPN's and success >= OpenVPN's at every level: %s\n", verdict)
	if !reconnect {
		return
	}
	fmt.Printf("\nreconnect: SIGUSR1 to the first ping answered through the new tunnel (pings every 50 ms), after each successful run\n")
	fmt.Printf("%-6s %-8s %9s %12s %14s\n", "loss", "client", "success", "median", "ovpnd/openvpn")
	for _, lr := range results {
		mo, _, _ := lr.reconnects("openvpn")
		md, _, _ := lr.reconnects("ovpnd")
		ratio := "n/a"
		if mo > 0 && md > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(md)/float64(mo))
		}
		for _, k := range kinds {
			med, ok, tried := lr.reconnects(k)
			r := ""
			if k == "ovpnd" {
				r = ratio
			}
			fmt.Printf("%-6s %-8s %9s %12v %14s\n", fmt.Sprintf("%.0f%%", lr.loss*100), k, fmt.Sprintf("%d/%d", ok, tried), med.Round(time.Millisecond), r)
		}
	}
}

// faultHandshake starts a client and measures the time from its start to its tunnel address
// (the handshake and push done), then checks that a ping goes through within deadline of the
// start, and stops the client.
func faultHandshake(l *lab.Lab, srv *lab.Server, args []string, deadline time.Duration, reconnect bool) faultRun {
	before := time.Now()
	client, d, err := timedConnect(l, srv, args, deadline)
	if err != nil {
		return faultRun{err: err, start: before}
	}
	r := faultRun{start: client.Started(), up: d}
	defer stopClient(client)
	end := client.Started().Add(deadline)
	for time.Now().Before(end) {
		if _, err := l.Ping(srv.TunnelAddr(), 3, time.Second); err == nil {
			if reconnect {
				r.reStart = time.Now()
				r.reconnect, r.reErr = timedReconnect(l, srv, client, deadline)
			}
			return r
		}
	}
	r.err = fmt.Errorf("tunnel up, but no ping answered within %v", deadline)
	return r
}

// timedReconnect sends the client SIGUSR1 (both OpenVPN and ovpnd drop the connection and
// connect again) and measures until a ping through the tunnel is answered, pinging every
// 50 ms from 100 ms after the signal, when the old connection is surely gone.
func timedReconnect(l *lab.Lab, srv *lab.Server, client *lab.Process, deadline time.Duration) (time.Duration, error) {
	if err := syscall.Kill(client.PID(), syscall.SIGUSR1); err != nil {
		return 0, fmt.Errorf("signalling the client: %w", err)
	}
	sent := time.Now()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), deadline+5*time.Second)
	defer cancel()
	ping := exec.CommandContext(ctx, "ip", "netns", "exec", l.ClientNS, "ping", "-n", "-i", "0.05", "-W", "1",
		"-w", strconv.Itoa(int(deadline.Seconds())), srv.TunnelAddr())
	out, err := ping.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := ping.Start(); err != nil {
		return 0, fmt.Errorf("starting ping: %w", err)
	}
	defer func() { ping.Process.Kill(); ping.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "bytes from") {
			return time.Since(sent), nil
		}
	}
	return 0, fmt.Errorf("no ping answered within %v of SIGUSR1", deadline)
}

// parseLevels reads a comma-separated list of loss probabilities.
func parseLevels(s string) ([]float64, error) {
	var levels []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v >= 0 && v < 1) { // also refuses NaN
			return nil, fmt.Errorf("%q is not a loss probability in [0, 1)", f)
		}
		levels = append(levels, v)
	}
	return levels, nil
}

// lastLines is the first line of s and its last n lines (a client's latest log lines).
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n+1 {
		return strings.Join(lines, "\n        ")
	}
	return lines[0] + "\n        ...\n        " + strings.Join(lines[len(lines)-n:], "\n        ")
}
