package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// rekey measures data stalls around rekeys under load: the OpenVPN 2.6 server renegotiates
// every renegSec seconds (reneg-sec) and/or every renegBytes of traffic (reneg-bytes) while
// iperf3 pushes a single TCP stream through a link shaped
// to rate (tbf on both veth ends; this kernel has no netem). The receiving side's tun counters
// (/proc/PID/net/dev of the process that writes the decrypted data into its tun: the server
// uploading, the client downloading) are sampled every rekeySample; a stall is a span longer
// than gap in which no byte was delivered. The OpenVPN 2.6 client and ovpnd alternate, in a
// rotating order, over runs; every rekey is counted from the server's log (one completed TLS
// handshake each).
func rekey(t *cli, ovpndPath string, dur time.Duration, runs int, rate string, renegSec, renegBytes int, gap time.Duration) {
	if renegSec == 0 && renegBytes == 0 {
		t.Fatalf("rekey: set -reneg-sec or -reneg-bytes")
	}
	reneg := renegText(renegSec, renegBytes)
	if abs, err := absPath(ovpndPath); err == nil {
		ovpndPath = abs
	}
	for _, tool := range []string{"iperf3", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run .ci/install-deps", tool)
		}
	}
	printEnvironment()
	step("building the lab, shaping the link to %s each way, starting %s server (UDP, tls-crypt, AES-256-GCM, %s)",
		rate, openvpnVersion(), reneg)
	l := lab.New(t, lab.Options{})
	so := benchServer
	so.RenegSec = renegSec
	if renegBytes > 0 {
		so.Extra = append(append([]string(nil), so.Extra...), fmt.Sprintf("reneg-bytes %d", renegBytes))
	}
	srv := l.StartServer(so)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	for _, run := range []func(context.Context, ...string) ([]byte, error){l.ServerExec, l.ClientExec} {
		// A queue of about 20 ms at the rate, as a real bottleneck would have.
		if out, err := run(ctx, "tc", "qdisc", "replace", "dev", "veth0", "root", "tbf", "rate", rate,
			"burst", "64kb", "latency", "20ms"); err != nil {
			cancel()
			t.Fatalf("shaping the link: %v: %s", err, out)
		}
	}
	cancel()
	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))

	kinds := []string{"openvpn", "ovpnd"}
	var all []rekeyRun
	for i := range runs {
		for j := range kinds {
			kind := kinds[(i+j)%len(kinds)]
			args, err := clientArgs(kind, ovpndPath, cfg)
			if err != nil {
				t.Fatalf("%v", err)
			}
			step("run %d/%d: %s", i+1, runs, kind)
			rs, err := rekeyClient(l, srv, args, dur, gap)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			for k := range rs {
				rs[k].kind = kind
			}
			all = append(all, rs...)
		}
	}
	printRekeyTable(all, kinds, dur, runs, rate, reneg, gap)
}

// renegText names the server's rekey settings.
func renegText(sec, bytes int) string {
	var s []string
	if sec > 0 {
		s = append(s, fmt.Sprintf("reneg-sec %d", sec))
	}
	if bytes > 0 {
		s = append(s, fmt.Sprintf("reneg-bytes %d", bytes))
	}
	return strings.Join(s, ", ")
}

// rekeyRun is one iperf3 direction of one client.
type rekeyRun struct {
	kind    string
	reverse bool
	mbps    float64
	retrans int
	rekeys  int
	stalls  []stall
	// took is how long each rekey the server started during the run took, from its soft
	// reset to the completed handshake.
	took []time.Duration
}

// rekeyClient connects one client and runs iperf3 up, then down, sampling the receiver's tun.
func rekeyClient(l *lab.Lab, srv *lab.Server, args []string, dur, gap time.Duration) ([]rekeyRun, error) {
	client, err := connectedClient(l, srv, args)
	if err != nil {
		return nil, err
	}
	defer stopClient(client)
	var out []rekeyRun
	for _, reverse := range []bool{false, true} {
		pid := srv.PID() // uploads are delivered into the server's tun
		if reverse {
			pid = client.PID()
		}
		handshakes := func() (started, done int) {
			log := srv.Log()
			return strings.Count(log, "TLS: soft reset"), strings.Count(log, "Control Channel: TLS")
		}
		_, before := handshakes()
		s := startTunSampler(pid, handshakes)
		res, err := l.Iperf(srv.TunnelAddr(), dur, reverse)
		samples, rekeyAt, took, serr := s.stop()
		if err != nil {
			return nil, err
		}
		if serr != nil {
			return nil, serr
		}
		_, after := handshakes()
		r := rekeyRun{reverse: reverse, mbps: res.BitsPerSecond / 1e6, retrans: res.Retransmits, rekeys: after - before,
			stalls: atRekeys(findStalls(samples, gap), rekeyAt), took: took}
		dir := "up  "
		if reverse {
			dir = "down"
		}
		var worst time.Duration
		var near int
		for _, s := range r.stalls {
			worst = max(worst, s.d)
			if s.rekey {
				near++
			}
		}
		var slowest time.Duration
		for _, d := range r.took {
			slowest = max(slowest, d)
		}
		fmt.Printf("    %s: %.0f Mbit/s, %d TCP retransmits, %d rekeys (slowest %v), %d stalls > %v (%d at a rekey, longest %v)\n",
			dir, r.mbps, r.retrans, r.rekeys, slowest.Round(10*time.Millisecond), len(r.stalls), gap, near, worst.Round(time.Millisecond))
		out = append(out, r)
	}
	return out, nil
}

// rekeySample is how often the tun counters are read.
const rekeySample = 5 * time.Millisecond

// tunSample is the bytes delivered into the tun devices of a namespace at one moment.
type tunSample struct {
	at    time.Time
	bytes uint64
}

// rekeyPoll is how often the server's log is looked at for rekeys (the resolution of their
// times), and lateRekey is when a rekey counts as late.
const (
	rekeyPoll = 10 * time.Millisecond
	lateRekey = time.Second
)

// tunSampler reads /proc/PID/net/dev until stopped, and notes when the server starts a rekey
// and when it completes a handshake.
type tunSampler struct {
	stopc   chan struct{}
	wg      sync.WaitGroup
	samples []tunSample
	rekeyAt []time.Time     // handshakes completed
	took    []time.Duration // soft reset to completed handshake
	err     error
}

// startTunSampler samples pid's tun counters; handshakes counts the server's soft resets and
// completed handshakes so far.
func startTunSampler(pid int, handshakes func() (started, done int)) *tunSampler {
	s := &tunSampler{stopc: make(chan struct{})}
	path := fmt.Sprintf("/proc/%d/net/dev", pid)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(rekeySample)
		defer tick.Stop()
		started, done := handshakes()
		var pending []time.Time // soft resets not yet completed
		polled := time.Now()
		for {
			if now := time.Now(); now.Sub(polled) >= rekeyPoll {
				st, dn := handshakes()
				for ; started < st; started++ {
					pending = append(pending, now)
				}
				for ; done < dn; done++ {
					s.rekeyAt = append(s.rekeyAt, now)
					if len(pending) > 0 {
						s.took = append(s.took, now.Sub(pending[0]))
						pending = pending[1:]
					}
				}
				polled = now
			}
			b, err := os.ReadFile(path)
			if err != nil {
				s.err = fmt.Errorf("reading %s: %w", path, err)
				return
			}
			n, err := tunRxBytes(string(b))
			if err != nil {
				s.err = fmt.Errorf("%s: %w", path, err)
				return
			}
			s.samples = append(s.samples, tunSample{at: time.Now(), bytes: n})
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *tunSampler) stop() ([]tunSample, []time.Time, []time.Duration, error) {
	close(s.stopc)
	s.wg.Wait()
	return s.samples, s.rekeyAt, s.took, s.err
}

// tunRxBytes sums the receive byte counters of the tun devices in a /proc/net/dev text: what
// the VPN process wrote into its tun, i.e. the data it delivered.
func tunRxBytes(text string) (uint64, error) {
	var sum uint64
	found := false
	for _, line := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(strings.TrimSpace(name), "tun") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			return 0, fmt.Errorf("no counters for %s", strings.TrimSpace(name))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("receive bytes of %s: %w", strings.TrimSpace(name), err)
		}
		sum += n
		found = true
	}
	if !found {
		return 0, errors.New("no tun device")
	}
	return sum, nil
}

// stall is a span without delivered data.
type stall struct {
	start time.Time
	d     time.Duration
	rekey bool // a handshake completed around it (atRekeys)
}

// rekeyWindow is how close to a stall a completed handshake must be for the stall to count
// as the rekey's: from a second before it starts (the key switch follows the handshake) to
// one poll after it ends.
const rekeyWindow = time.Second

// atRekeys marks the stalls around which one of the handshakes completed.
func atRekeys(stalls []stall, rekeyAt []time.Time) []stall {
	for i := range stalls {
		from, to := stalls[i].start.Add(-rekeyWindow), stalls[i].start.Add(stalls[i].d+rekeyPoll)
		for _, at := range rekeyAt {
			if !at.Before(from) && !at.After(to) {
				stalls[i].rekey = true
			}
		}
	}
	return stalls
}

// findStalls returns the spans longer than gap between two deliveries. The first and last
// deliveries bound the transfer, so iperf3's start and end are not stalls.
func findStalls(samples []tunSample, gap time.Duration) []stall {
	var stalls []stall
	var last time.Time // the last sample that saw new bytes
	for i := 1; i < len(samples); i++ {
		if samples[i].bytes == samples[i-1].bytes {
			continue
		}
		// New bytes arrived between samples i-1 and i; the stall (if any) ran from the
		// previous delivery to sample i-1.
		if !last.IsZero() {
			if d := samples[i-1].at.Sub(last); d > gap {
				stalls = append(stalls, stall{start: last, d: d})
			}
		}
		last = samples[i].at
	}
	return stalls
}

func printRekeyTable(all []rekeyRun, kinds []string, dur time.Duration, runs int, rate, reneg string, gap time.Duration) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nrekey: same lab, UDP; OpenVPN 2.6 server with tls-crypt + AES-256-GCM and %s;\n"+
		"link shaped to %s each way (tbf); iperf3 single TCP stream %v per direction; %d runs per client,\n"+
		"alternated; a stall is > %v without a byte delivered into the receiver's tun; load average now %s\n",
		reneg, rate, dur, runs, gap, strings.Join(strings.Fields(string(load))[:3], " "))
	type agg struct {
		rekeys, stalls, near, retrans int
		total, worst                  time.Duration
		mbps                          []float64
		took                          []float64 // seconds
	}
	sum := map[string]map[bool]*agg{}
	for _, k := range kinds {
		sum[k] = map[bool]*agg{false: {}, true: {}}
	}
	for _, r := range all {
		a := sum[r.kind][r.reverse]
		a.rekeys += r.rekeys
		a.stalls += len(r.stalls)
		for _, s := range r.stalls {
			a.total += s.d
			a.worst = max(a.worst, s.d)
			if s.rekey {
				a.near++
			}
		}
		a.mbps = append(a.mbps, r.mbps)
		a.retrans += r.retrans
		for _, d := range r.took {
			a.took = append(a.took, d.Seconds())
		}
	}
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = append([]float64(nil), v...)
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	perRekey := func(a *agg) float64 {
		if a.rekeys == 0 {
			return 0
		}
		return float64(a.stalls) / float64(a.rekeys)
	}
	ratio := func(x, y float64) string {
		if y == 0 {
			if x == 0 {
				return "equal (0)"
			}
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", x/y)
	}
	fmt.Printf("%-34s %16s %16s %14s\n", "metric", "openvpn 2.6", "ovpnd", "ovpnd/openvpn")
	for _, rev := range []bool{false, true} {
		dir := "up"
		if rev {
			dir = "down"
		}
		o, d := sum["openvpn"][rev], sum["ovpnd"][rev]
		fmt.Printf("%-34s %16.0f %16.0f %14s\n", "throughput "+dir+", median (Mbit/s)", median(o.mbps), median(d.mbps), ratio(median(d.mbps), median(o.mbps)))
		fmt.Printf("%-34s %16d %16d\n", "rekeys "+dir, o.rekeys, d.rekeys)
		late := func(a *agg) int {
			n := 0
			for _, s := range a.took {
				if s > lateRekey.Seconds() {
					n++
				}
			}
			return n
		}
		longest := func(a *agg) float64 {
			m := 0.0
			for _, s := range a.took {
				m = max(m, s)
			}
			return m
		}
		fmt.Printf("%-34s %16.2f %16.2f %14s\n", "rekey time "+dir+", median (s)", median(o.took), median(d.took), ratio(median(d.took), median(o.took)))
		fmt.Printf("%-34s %16.2f %16.2f\n", "rekey time "+dir+", longest (s)", longest(o), longest(d))
		fmt.Printf("%-34s %16s %16s\n", "rekeys over "+lateRekey.String()+" "+dir, fmt.Sprintf("%d/%d", late(o), len(o.took)), fmt.Sprintf("%d/%d", late(d), len(d.took)))
		fmt.Printf("%-34s %16d %16d %14s\n", "TCP retransmits "+dir, o.retrans, d.retrans, ratio(float64(d.retrans), float64(o.retrans)))
		fmt.Printf("%-34s %16d %16d %14s\n", "stalls "+dir, o.stalls, d.stalls, ratio(perRekey(d), perRekey(o))+"/rekey")
		fmt.Printf("%-34s %16d %16d\n", "  of them at a rekey", o.near, d.near)
		fmt.Printf("%-34s %16v %16v\n", "stalled time "+dir, o.total.Round(time.Millisecond), d.total.Round(time.Millisecond))
		fmt.Printf("%-34s %16v %16v\n", "longest stall "+dir, o.worst.Round(time.Millisecond), d.worst.Round(time.Millisecond))
	}
	fmt.Println("(the ratio of stalls is per rekey; lower is better for stalls, higher for throughput)")
}
