// Command labctl drives a throwaway namespace lab outside `go test`, for tests/demo.sh and
// tests/bench.sh. It needs root.
//
//	labctl demo  [-client ovpnd|openvpn] [-ovpnd PATH]
//	labctl bench [-ovpnd PATH] [-duration 10s] [-handshakes 3]
//
// Everything it creates (namespaces, processes, temp dirs) is removed on exit, on failure and
// on SIGINT/SIGTERM.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
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
		fmt.Fprintln(os.Stderr, "usage: labctl demo|bench [flags]")
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
		dur := fs.Duration("duration", 10*time.Second, "iperf3 duration per direction")
		hs := fs.Int("handshakes", 3, "handshakes to time per client (median reported)")
		fs.Parse(os.Args[2:])
		bench(t, *ovpnd, *dur, *hs)
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
		return []string{ovpndPath, "run", "--name", "lab", config}, nil
	}
	return nil, fmt.Errorf("unknown client %q", kind)
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

// result is one client's bench figures; ok=false means the client did not run (why says so).
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
	handshakes []time.Duration
}

func bench(t *cli, ovpndPath string, dur time.Duration, handshakes int) {
	if abs, err := absPath(ovpndPath); err == nil {
		ovpndPath = abs
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 not installed: run .ci/install-deps")
	}
	load, _ := os.ReadFile("/proc/loadavg")
	step("building the lab and starting %s server (UDP, tls-crypt, AES-256-GCM); load average %s",
		openvpnVersion(), strings.Join(strings.Fields(string(load))[:3], " "))
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(benchServer)
	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))

	results := map[string]*result{}
	for _, kind := range []string{"openvpn", "ovpnd"} {
		r := &result{}
		results[kind] = r
		args, err := clientArgs(kind, ovpndPath, cfg)
		if err != nil {
			r.why = "n/a (bin/ovpnd missing)"
			step("%s: skipped: %v", kind, err)
			continue
		}
		step("%s: timing %d handshakes (process start to tunnel address present)", kind, handshakes)
		if err := benchClient(t, l, srv, args, dur, handshakes, r); err != nil {
			r.why = "failed"
			fmt.Fprintf(os.Stderr, "    %s: %v\n", kind, err)
			continue
		}
		r.ok = true
	}
	printTable(results["openvpn"], results["ovpnd"], dur)
	if !results["openvpn"].ok {
		t.Fatalf("the OpenVPN reference measurement failed")
	}
	if results["ovpnd"].why == "failed" {
		t.Fatalf("the ovpnd measurement failed")
	}
}

func benchClient(t *cli, l *lab.Lab, srv *lab.Server, args []string, dur time.Duration, handshakes int, r *result) error {
	var client *lab.Process
	for i := range handshakes {
		c, d, err := timedConnect(l, srv, args)
		if err != nil {
			return err
		}
		r.handshakes = append(r.handshakes, d)
		fmt.Printf("    handshake %d: %v\n", i+1, d.Round(100*time.Microsecond))
		if i < handshakes-1 {
			if err := c.Stop(15 * time.Second); err != nil {
				return fmt.Errorf("stopping client: %w", err)
			}
			// The server must notice the exit before the next connect reuses the address.
			time.Sleep(500 * time.Millisecond)
			continue
		}
		client = c
	}
	sorted := append([]time.Duration(nil), r.handshakes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	r.handshake = sorted[len(sorted)/2]

	if err := l.WaitPing(srv.TunnelAddr(), 10*time.Second); err != nil {
		return err
	}
	st, err := l.Ping(srv.TunnelAddr(), 10, 5*time.Second)
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
		fmt.Printf("    iperf3 %v single stream, %s ...\n", dur, dir)
		cpu0, err := cpuSeconds(client.PID())
		if err != nil {
			return err
		}
		res, err := l.Iperf(srv.TunnelAddr(), dur, reverse)
		if err != nil {
			return err
		}
		cpu1, err := cpuSeconds(client.PID())
		if err != nil {
			return err
		}
		perGB := (cpu1 - cpu0) / (float64(res.Bytes) / 1e9)
		fmt.Printf("      %.0f Mbit/s, %d bytes, client CPU %.2f s (%.2f CPU-s/GB)\n",
			res.BitsPerSecond/1e6, res.Bytes, cpu1-cpu0, perGB)
		if reverse {
			r.down, r.cpuDown = res, perGB
		} else {
			r.up, r.cpuUp = res, perGB
		}
	}
	r.rssKB, r.hwmKB, err = memory(client.PID())
	if err != nil {
		return err
	}
	if err := client.Stop(15 * time.Second); err != nil {
		return fmt.Errorf("stopping client: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	return nil
}

// timedConnect starts a client and measures until its tunnel address appears, using
// `ip monitor` so the moment is caught as the kernel announces it instead of by polling.
func timedConnect(l *lab.Lab, srv *lab.Server, args []string) (*lab.Process, time.Duration, error) {
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
	case <-time.After(20 * time.Second):
		client.Kill()
		return nil, 0, fmt.Errorf("no tunnel address after 20 s:\n%s", client.Output())
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

func printTable(ov, od *result, dur time.Duration) {
	type row struct {
		name string
		get  func(r *result) float64
		unit string
	}
	rows := []row{
		{"handshake, median (ms)", func(r *result) float64 { return float64(r.handshake) / 1e6 }, "%.1f"},
		{"ping RTT via tunnel (ms)", func(r *result) float64 { return float64(r.rtt) / 1e6 }, "%.3f"},
		{"throughput up (Mbit/s)", func(r *result) float64 { return r.up.BitsPerSecond / 1e6 }, "%.0f"},
		{"throughput down (Mbit/s)", func(r *result) float64 { return r.down.BitsPerSecond / 1e6 }, "%.0f"},
		{"client CPU-s/GB up", func(r *result) float64 { return r.cpuUp }, "%.2f"},
		{"client CPU-s/GB down", func(r *result) float64 { return r.cpuDown }, "%.2f"},
		{"client RSS (MB)", func(r *result) float64 { return float64(r.rssKB) / 1024 }, "%.1f"},
		{"client peak RSS, VmHWM (MB)", func(r *result) float64 { return float64(r.hwmKB) / 1024 }, "%.1f"},
	}
	cell := func(r *result, rw row) string {
		if !r.ok {
			if r.why == "" {
				return "n/a"
			}
			return r.why
		}
		return fmt.Sprintf(rw.unit, rw.get(r))
	}
	fmt.Printf("\nbench: same lab, same server, UDP + tls-crypt + AES-256-GCM, iperf3 single TCP stream %v per direction\n", dur)
	fmt.Printf("%-30s %16s %26s %14s\n", "metric", "openvpn 2.6", "ovpnd", "ovpnd/openvpn")
	for _, rw := range rows {
		ratio := "n/a"
		if ov.ok && od.ok && rw.get(ov) != 0 {
			ratio = fmt.Sprintf("%.2fx", rw.get(od)/rw.get(ov))
		}
		fmt.Printf("%-30s %16s %26s %14s\n", rw.name, cell(ov, rw), cell(od, rw), ratio)
	}
	fmt.Println("(lower is better for handshake, RTT, CPU and RSS; higher for throughput)")
}
