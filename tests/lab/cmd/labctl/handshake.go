package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// Handshake timing: "start" is process start to the tunnel address (the kernel announces it
// on `ip monitor address`); "reconnect" is SIGUSR1 to a connected client (OpenVPN's and
// ovpnd's restart signal: drop the connection, close the tun, wait connect-retry — 1 s in the
// lab's profile — and connect again) to the tunnel address coming back. Both clients are
// measured the same way in the same lab, alternated, so the ratio holds even when the
// machine's load makes the absolute figures noisy.

// addrWatch follows `ip monitor address` in the client namespace and reports when the
// client's tunnel address is added or deleted.
type addrWatch struct {
	mon    *exec.Cmd
	events chan addrEvent
	done   chan struct{}
}

type addrEvent struct {
	at      time.Time
	deleted bool
}

func watchTunnelAddr(l *lab.Lab, addr string) (*addrWatch, error) {
	mon := exec.Command("ip", "-n", l.ClientNS, "-o", "monitor", "address")
	out, err := mon.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := mon.Start(); err != nil {
		return nil, fmt.Errorf("starting ip monitor: %w", err)
	}
	w := &addrWatch{mon: mon, events: make(chan addrEvent, 64), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, " "+addr+"/") && !strings.Contains(line, " "+addr+" ") {
				continue
			}
			select {
			case w.events <- addrEvent{at: time.Now(), deleted: strings.HasPrefix(line, "Deleted")}:
			default: // nobody is waiting for this many events; the measurement drains first
			}
		}
	}()
	// ip monitor subscribes asynchronously; give it a moment so the first event is not missed.
	time.Sleep(100 * time.Millisecond)
	return w, nil
}

func (w *addrWatch) close() {
	w.mon.Process.Kill()
	w.mon.Wait()
	<-w.done
}

// drain forgets the events seen so far.
func (w *addrWatch) drain() {
	for {
		select {
		case <-w.events:
		default:
			return
		}
	}
}

// waitAdded waits for the tunnel address to be added (after a deletion first, when
// afterDelete), failing when the client exits or after timeout.
func (w *addrWatch) waitAdded(client *lab.Process, afterDelete bool, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case e := <-w.events:
			if e.deleted {
				afterDelete = false
			} else if !afterDelete {
				return e.at, nil
			}
		case <-client.Done():
			return time.Time{}, fmt.Errorf("client exited: %v\n%s", client.Wait(), client.Output())
		case <-w.done:
			return time.Time{}, errors.New("ip monitor ended")
		case <-deadline:
			return time.Time{}, fmt.Errorf("no tunnel address after %v:\n%s", timeout, lastLines(client.Output(), 20))
		}
	}
}

// handshakeCycles starts the client n times; each time it times the start to the tunnel
// address, waits for a ping through the tunnel, sends SIGUSR1, times the restart to the
// tunnel address coming back, waits for a ping again and stops the client.
func handshakeCycles(l *lab.Lab, srv *lab.Server, args []string, n int) (starts, reconnects []time.Duration, err error) {
	w, err := watchTunnelAddr(l, srv.ClientTunnelAddr())
	if err != nil {
		return nil, nil, err
	}
	defer w.close()
	for range n {
		s, r, err := handshakeCycle(l, srv, w, args)
		if err != nil {
			return nil, nil, err
		}
		starts, reconnects = append(starts, s), append(reconnects, r)
	}
	return starts, reconnects, nil
}

func handshakeCycle(l *lab.Lab, srv *lab.Server, w *addrWatch, args []string) (start, reconnect time.Duration, err error) {
	w.drain()
	client := l.StartClientProcess(args...)
	defer func() {
		if serr := stopClient(client); serr != nil && err == nil {
			err = serr
		}
	}()
	at, err := w.waitAdded(client, false, 20*time.Second)
	if err != nil {
		return 0, 0, err
	}
	start = at.Sub(client.Started())
	if err := l.WaitPing(srv.TunnelAddr(), 10*time.Second); err != nil {
		return 0, 0, err
	}
	w.drain()
	sent := time.Now()
	if err := syscall.Kill(client.PID(), syscall.SIGUSR1); err != nil {
		return 0, 0, fmt.Errorf("SIGUSR1: %w", err)
	}
	at, err = w.waitAdded(client, true, 20*time.Second)
	if err != nil {
		return 0, 0, fmt.Errorf("after SIGUSR1: %w", err)
	}
	reconnect = at.Sub(sent)
	if err := l.WaitPing(srv.TunnelAddr(), 10*time.Second); err != nil {
		return 0, 0, fmt.Errorf("after SIGUSR1: %w", err)
	}
	return start, reconnect, nil
}

func medianDuration(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtDurations(v []time.Duration) string {
	s := make([]string, len(v))
	for i, d := range v {
		s[i] = fmt.Sprintf("%.1f", float64(d)/1e6)
	}
	return strings.Join(s, " ")
}

// handshakes is `labctl handshake`: n handshake cycles of each client, alternated, without
// the throughput runs; it prints every figure and the medians. otherPath, if set, is a second
// ovpnd build measured alongside ("ovpnd-b"), to compare a change against its base in the
// same run.
func handshakes(t *cli, ovpndPath, otherPath string, n int) {
	clients := newABClients(ovpndPath, otherPath)
	kinds := clients.kinds
	printEnvironment()
	step("building the lab and starting %s server (UDP, tls-crypt, AES-256-GCM)", openvpnVersion())
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(benchServer)
	cfg := l.WriteFile("client.ovpn", srv.ClientConfig(lab.ClientOptions{}))
	starts := map[string][]time.Duration{}
	reconnects := map[string][]time.Duration{}
	for i := range n {
		for j := range kinds {
			kind := kinds[(i+j)%len(kinds)]
			args, err := clients.args(kind, cfg)
			if err != nil {
				t.Fatalf("%v", err)
			}
			s, r, err := handshakeCycles(l, srv, args, 1)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			fmt.Printf("    %d/%d %-8s start %.1f ms, reconnect %.1f ms\n", i+1, n, kind, float64(s[0])/1e6, float64(r[0])/1e6)
			starts[kind] = append(starts[kind], s...)
			reconnects[kind] = append(reconnects[kind], r...)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nhandshakes: %d per client, alternated; load average now %s\n", n, strings.Join(strings.Fields(string(load))[:3], " "))
	header := fmt.Sprintf("%-36s %12s %12s %14s", "metric (median, ms)", "openvpn 2.6", "ovpnd", "ovpnd/openvpn")
	if otherPath != "" {
		header += fmt.Sprintf(" %12s %14s", "ovpnd-b", "b/openvpn")
	}
	fmt.Println(header)
	for _, m := range []struct {
		name string
		v    map[string][]time.Duration
	}{{"start to tunnel address", starts}, {"SIGUSR1 to tunnel address again", reconnects}} {
		o, d := medianDuration(m.v["openvpn"]), medianDuration(m.v["ovpnd"])
		line := fmt.Sprintf("%-36s %12.1f %12.1f %13.2fx", m.name, float64(o)/1e6, float64(d)/1e6, float64(d)/float64(o))
		if otherPath != "" {
			b := medianDuration(m.v["ovpnd-b"])
			line += fmt.Sprintf(" %12.1f %13.2fx", float64(b)/1e6, float64(b)/float64(o))
		}
		fmt.Println(line)
	}
	for _, kind := range kinds {
		fmt.Printf("    %s start: %s; reconnect: %s\n", kind, fmtDurations(starts[kind]), fmtDurations(reconnects[kind]))
	}
}

// benchHandshakes is the handshake part of one bench run of an OpenVPN client:
// benchHandshakeCycles start and reconnect samples, before the run's own connection
// (timedConnect, whose start is one more sample).
func benchHandshakes(l *lab.Lab, srv *lab.Server, args []string, r *run) error {
	starts, reconnects, err := handshakeCycles(l, srv, args, benchHandshakeCycles)
	if err != nil {
		return err
	}
	r.starts, r.reconnects = append(r.starts, starts...), append(r.reconnects, reconnects...)
	fmt.Printf("    start to tunnel address: %s ms; SIGUSR1 to tunnel address again: %s ms\n", fmtDurations(starts), fmtDurations(reconnects))
	return nil
}

// benchHandshakeCycles is how many start+reconnect cycles each bench run adds per client
// (about 2.5 s each): one handshake per run is too noisy on a shared machine to compare.
const benchHandshakeCycles = 3

// printHandshakeSamples lists the samples behind the two handshake medians of the bench.
func printHandshakeSamples(results map[string]*result) {
	for _, kind := range []string{"openvpn", "ovpnd"} {
		if r := results[kind]; r != nil && r.ok && len(r.handshakes) > 0 {
			fmt.Printf("handshake samples (ms), %s: start %s; reconnect %s\n", kind, fmtDurations(r.handshakes), fmtDurations(r.reconnects))
		}
	}
}
