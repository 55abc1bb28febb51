package main

// labctl pacing: how bursty each client's uploads are, measured as the TCP retransmits inside
// the tunnel, on the plain veth and on a rate-limited client uplink (a tbf qdisc on the client
// namespace's veth, since this kernel has no netem). Both OpenVPN clients upload to the same
// OpenVPN 2.6 server, alternated in every run; the table shows medians and ovpnd's ratios.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// pacingLink is one link setting of the pacing bench: no limit, or a tbf rate limit on the
// client's uplink with a queue of `latency` worth of bytes (what a home router's uplink keeps).
type pacingLink struct {
	name string
	tbf  []string // tc qdisc arguments after "root"; nil: no limit
}

// pacingRun is one upload of one client on one link.
type pacingRun struct {
	bps         float64
	retransmits int
	cpuPerGB    float64
	// serverDrops is the server namespace's UDP receive-buffer overflows (RcvbufErrors)
	// during the upload; qdiscDrops the client uplink qdisc's drops.
	serverDrops, qdiscDrops int
}

func pacing(t *cli, ovpndPath, otherPath string, dur time.Duration, runs int, rate, queue string) {
	clients := newABClients(ovpndPath, otherPath)
	kinds := clients.kinds
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 not installed: run .ci/install-deps")
	}
	if _, err := exec.LookPath("tc"); err != nil {
		t.Fatalf("tc not installed (iproute2): run .ci/install-deps")
	}
	printEnvironment()
	step("building the lab and starting %s server (UDP, tls-crypt, AES-256-GCM)", openvpnVersion())
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(benchServer)
	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))
	links := []pacingLink{{name: "veth, no limit"}}
	if rate != "" {
		// A queue of `queue` at the rate and a 32 KB token bucket, like a home router's uplink.
		links = append(links, pacingLink{name: rate + "bit/s uplink, " + queue + " queue",
			tbf: []string{"tbf", "rate", rate + "bit", "burst", "32kb", "latency", queue}})
	}
	res := map[string][]pacingRun{} // key: link name + "/" + kind
	for _, link := range links {
		if link.tbf != nil {
			args := append([]string{"tc", "-n", l.ClientNS, "qdisc", "replace", "dev", "veth0", "root"}, link.tbf...)
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		for i := range runs {
			for j := range kinds {
				kind := kinds[(i+j)%len(kinds)]
				args, err := clients.args(kind, cfg)
				if err != nil {
					t.Fatalf("%v", err)
				}
				step("%s, run %d/%d: %s", link.name, i+1, runs, kind)
				r, err := pacingUpload(l, srv, args, dur)
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
				fmt.Printf("    %.0f Mbit/s, %d retransmits, %.2f CPU-s/GB, server socket drops %d, uplink qdisc drops %d\n",
					r.bps/1e6, r.retransmits, r.cpuPerGB, r.serverDrops, r.qdiscDrops)
				res[link.name+"/"+kind] = append(res[link.name+"/"+kind], r)
			}
		}
		if link.tbf != nil {
			if out, err := exec.Command("tc", "-n", l.ClientNS, "qdisc", "del", "dev", "veth0", "root").CombinedOutput(); err != nil {
				t.Fatalf("removing the rate limit: %v: %s", err, out)
			}
		}
	}
	fmt.Printf("\npacing: iperf3 single TCP stream client -> server, %v per run, medians of %d runs, clients alternated;\n"+
		"server drops: UDP receive-buffer overflows in the server namespace; qdisc drops: the rate limit's queue\n", dur, runs)
	other := ""
	if len(kinds) > 2 {
		other = "ovpnd-b"
	}
	fmt.Printf("%-30s %-22s %12s %12s %14s %12s\n", "link", "metric", "openvpn 2.6", "ovpnd", "ovpnd/openvpn", other)
	for _, link := range links {
		rows := []struct {
			name string
			get  func(pacingRun) float64
			f    string
		}{
			{"throughput (Mbit/s)", func(r pacingRun) float64 { return r.bps / 1e6 }, "%.0f"},
			{"TCP retransmits", func(r pacingRun) float64 { return float64(r.retransmits) }, "%.0f"},
			{"client CPU-s/GB", func(r pacingRun) float64 { return r.cpuPerGB }, "%.2f"},
			{"server socket drops", func(r pacingRun) float64 { return float64(r.serverDrops) }, "%.0f"},
			{"uplink qdisc drops", func(r pacingRun) float64 { return float64(r.qdiscDrops) }, "%.0f"},
		}
		for _, row := range rows {
			o, d := median(res[link.name+"/openvpn"], row.get), median(res[link.name+"/ovpnd"], row.get)
			ratio := "n/a"
			if o > 0 {
				ratio = fmt.Sprintf("%.2fx", d/o)
			}
			b := ""
			if len(kinds) > 2 {
				b = fmt.Sprintf(row.f, median(res[link.name+"/ovpnd-b"], row.get))
			}
			fmt.Printf("%-30s %-22s %12s %12s %14s %12s\n", link.name, row.name, fmt.Sprintf(row.f, o), fmt.Sprintf(row.f, d), ratio, b)
		}
	}
}

func median(runs []pacingRun, get func(pacingRun) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = get(r)
	}
	return medianFloat(v)
}

// pacingUpload connects a client, runs one upload and stops the client.
func pacingUpload(l *lab.Lab, srv *lab.Server, args []string, dur time.Duration) (pacingRun, error) {
	var r pacingRun
	client, err := connectedClient(l, srv, args)
	if err != nil {
		return r, err
	}
	defer stopClient(client)
	if os.Getenv("LABCTL_SHOW_PID") != "" {
		fmt.Printf("    client pid %d\n", client.PID())
	}
	cpu0, err := cpuSeconds(client.PID())
	if err != nil {
		return r, err
	}
	drops0, qd0 := udpRcvbufErrors(l.ServerNS), qdiscDrops(l.ClientNS)
	res, err := l.Iperf(srv.TunnelAddr(), dur, false)
	if err != nil {
		return r, err
	}
	cpu1, err := cpuSeconds(client.PID())
	if err != nil {
		return r, err
	}
	r.bps, r.retransmits = res.BitsPerSecond, res.Retransmits
	r.cpuPerGB = (cpu1 - cpu0) / (float64(res.Bytes) / 1e9)
	r.serverDrops = udpRcvbufErrors(l.ServerNS) - drops0
	r.qdiscDrops = qdiscDrops(l.ClientNS) - qd0
	return r, nil
}

// udpRcvbufErrors reads Udp RcvbufErrors from the namespace's /proc/net/snmp (-1 if unreadable).
func udpRcvbufErrors(ns string) int {
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return -1
	}
	return parseRcvbufErrors(string(out))
}

// parseRcvbufErrors finds RcvbufErrors in the Udp lines of /proc/net/snmp: a line of names,
// then a line of values (-1 if absent).
func parseRcvbufErrors(snmp string) int {
	var names []string
	for line := range strings.SplitSeq(snmp, "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		f := strings.Fields(line)
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				if v, err := strconv.Atoi(f[i]); err == nil {
					return v
				}
			}
		}
		return -1
	}
	return -1
}

// qdiscDrops is the dropped count of the client veth's root qdisc (0 without one).
func qdiscDrops(ns string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tc", "-n", ns, "-s", "qdisc", "show", "dev", "veth0", "root").Output()
	if err != nil {
		return 0
	}
	return parseQdiscDrops(string(out))
}

// parseQdiscDrops reads the first "dropped N" count of `tc -s qdisc show` output: the root
// qdisc's, which includes its children's.
func parseQdiscDrops(out string) int {
	for line := range strings.SplitSeq(out, "\n") {
		if _, rest, ok := strings.Cut(line, "dropped "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.Atoi(strings.TrimRight(f[0], ","))
				return v
			}
		}
	}
	return 0
}
