package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PingStats is the summary of one ping run.
type PingStats struct {
	Sent, Received int
	// AvgRTT is ping's average round-trip time (zero when nothing came back).
	AvgRTT time.Duration
	Output string
}

// Lost is how many echo requests went unanswered.
func (p PingStats) Lost() int { return p.Sent - p.Received }

var (
	pingCounts = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingRTT    = regexp.MustCompile(`= [\d.]+/([\d.]+)/`)
)

// Ping sends count echo requests 200 ms apart from the client namespace to addr and waits at
// most timeout overall. It returns an error only when nothing came back; callers decide how
// much loss they tolerate.
func (l *Lab) Ping(addr string, count int, timeout time.Duration) (PingStats, error) {
	secs := max(1, int(timeout.Seconds()+0.999))
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	out, _ := nsCommand(ctx, l.ClientNS, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2",
		"-W", "1", "-w", strconv.Itoa(secs), addr).CombinedOutput()
	st, err := parsePing(string(out))
	if err != nil {
		return st, fmt.Errorf("ping %s: %w", addr, err)
	}
	if st.Received == 0 {
		return st, fmt.Errorf("ping %s: no reply (%d sent)", addr, st.Sent)
	}
	return st, nil
}

// parsePing reads the summary lines of iputils ping.
func parsePing(out string) (PingStats, error) {
	st := PingStats{Output: out}
	m := pingCounts.FindStringSubmatch(out)
	if m == nil {
		return st, fmt.Errorf("no summary in output: %s", strings.TrimSpace(out))
	}
	var err1, err2 error
	st.Sent, err1 = strconv.Atoi(m[1])
	st.Received, err2 = strconv.Atoi(m[2])
	if err := errors.Join(err1, err2); err != nil || st.Received > st.Sent {
		return st, fmt.Errorf("bad summary %q: %v", m[0], err)
	}
	if r := pingRTT.FindStringSubmatch(out); r != nil {
		if ms, err := strconv.ParseFloat(r[1], 64); err == nil && ms >= 0 && ms < 1e7 {
			st.AvgRTT = time.Duration(ms * float64(time.Millisecond))
		}
	}
	return st, nil
}

// WaitPing pings addr once per second until a reply comes back or timeout passes; it is how
// tests wait for a client to reconnect.
func (l *Lab) WaitPing(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := l.Ping(addr, 1, time.Second)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no ping reply from %s within %v: %w", addr, timeout, err)
		}
	}
}

var (
	xferOnce sync.Once
	xferPath string
	xferErr  error
)

// helperBinary builds tests/lab/cmd/xfer once per process into the shared dir.
func helperBinary() (string, error) {
	xferOnce.Do(func() {
		dir, err := SharedDir()
		if err != nil {
			xferErr = err
			return
		}
		src, err := sourceDir()
		if err != nil {
			xferErr = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		out := filepath.Join(dir, "xfer")
		cmd := exec.Command(goTool, "build", "-o", out, ".")
		cmd.Dir = filepath.Join(src, "cmd", "xfer")
		if b, err := cmd.CombinedOutput(); err != nil {
			xferErr = fmt.Errorf("building xfer helper: %w: %s", err, bytes.TrimSpace(b))
			return
		}
		xferPath = out
	})
	return xferPath, xferErr
}

// sourceDir finds this package's source directory: from the compiled-in file name when it is
// absolute, else by looking for tests/lab under the working directory or its parents.
func sourceDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if _, err := os.Stat(file); err == nil {
			return filepath.Dir(file), nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating tests/lab sources: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "tests", "lab")
		if _, err := os.Stat(filepath.Join(cand, "cmd", "xfer", "main.go")); err == nil {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("locating tests/lab sources: not found from the working directory")
		}
	}
}

// XferOptions choose the direction and content of one transfer.
type XferOptions struct {
	// Download makes the server namespace send and the client namespace check.
	Download bool
	// Compressible sends a stream LZO compresses well (so a comp-lzo server really compresses).
	Compressible bool
}

// TransferResult describes one successful byte-for-byte transfer.
type TransferResult struct {
	Bytes    int64
	Duration time.Duration
	Output   string
}

// TransferErr moves n bytes of a seeded pseudo-random stream between the client namespace
// and addr (an address of the server namespace, normally its tunnel address) and checks every
// byte and the SHA-256 on the receiving side.
func (l *Lab) TransferErr(addr string, n int64, o XferOptions) (TransferResult, error) {
	bin, err := helperBinary()
	if err != nil {
		return TransferResult{}, err
	}
	hostPort := net.JoinHostPort(addr, strconv.Itoa(l.nextPort()))
	srv, err := startProcess(l.ServerNS, bin, "serve", hostPort)
	if err != nil {
		return TransferResult{}, err
	}
	defer srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitOutput(ctx, "listening"); err != nil {
		return TransferResult{}, fmt.Errorf("xfer server: %w: %s", err, srv.Output())
	}
	// Generous: a few MB take well under a second, but a rekey or a loaded CI machine can
	// stall TCP for seconds.
	timeout := 60*time.Second + time.Duration(n/(1<<20))*time.Second
	sctx, scancel := context.WithTimeout(context.Background(), timeout)
	defer scancel()
	args := []string{bin, "send"}
	if o.Download {
		args = append(args, "-download")
	}
	if o.Compressible {
		args = append(args, "-compressible")
	}
	args = append(args, hostPort, strconv.FormatInt(n, 10))
	start := time.Now()
	out, err := nsCommand(sctx, l.ClientNS, args...).CombinedOutput()
	res := TransferResult{Bytes: n, Duration: time.Since(start), Output: string(out)}
	if err != nil {
		return res, fmt.Errorf("transfer of %d bytes via %s (%+v) failed: %w\nclient side: %s\nserver side: %s",
			n, hostPort, o, err, bytes.TrimSpace(out), strings.TrimSpace(srv.Output()))
	}
	return res, nil
}

// Transfer moves n bytes up (client to server) and n bytes down through addr and fails the
// test on any error or mismatch. It returns the upload and download results.
func (l *Lab) Transfer(tb TB, addr string, n int64) (up, down TransferResult) {
	tb.Helper()
	up, err := l.TransferErr(addr, n, XferOptions{})
	if err != nil {
		tb.Fatalf("%v", err)
	}
	down, err = l.TransferErr(addr, n, XferOptions{Download: true})
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return up, down
}

// waitListening waits until a TCP listener on port exists in the server namespace. (iperf3
// block-buffers its banner when writing to a pipe, so its output cannot tell.)
func (l *Lab) waitListening(port string, p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := l.ServerExec(context.Background(), "ss", "-Hltn", "sport = :"+port)
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("exited before listening on %s: %v: %s", port, p.Wait(), p.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on port %s after %v", port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// IperfResult is one iperf3 run, measured at the receiving end.
type IperfResult struct {
	// Reverse is true when the server sent (iperf3 -R): the client namespace downloads.
	Reverse       bool
	BitsPerSecond float64
	Bytes         int64
	Seconds       float64
	// Retransmits is the TCP retransmission count reported by the sender.
	Retransmits int
}

type iperfJSON struct {
	End struct {
		SumSent struct {
			Bytes         int64   `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         int64   `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// Iperf runs one single-stream iperf3 TCP test for dur between an iperf3 server in the server
// namespace (bound to addr) and a client in the client namespace; reverse makes the server send.
func (l *Lab) Iperf(addr string, dur time.Duration, reverse bool) (IperfResult, error) {
	port := strconv.Itoa(l.nextPort())
	srv, err := startProcess(l.ServerNS, "iperf3", "-s", "-1", "-B", addr, "-p", port)
	if err != nil {
		return IperfResult{}, err
	}
	defer srv.Kill()
	if err := l.waitListening(port, srv, 10*time.Second); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 server: %w", err)
	}
	args := []string{"iperf3", "-c", addr, "-p", port, "-t", strconv.Itoa(max(1, int(dur.Seconds()))), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	cctx, ccancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer ccancel()
	out, runErr := nsCommand(cctx, l.ClientNS, args...).Output()
	var j iperfJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3: parsing JSON (%v): %w: %s", runErr, err, bytes.TrimSpace(out))
	}
	if j.Error != "" || runErr != nil {
		return IperfResult{}, fmt.Errorf("iperf3: %v %s", runErr, j.Error)
	}
	return IperfResult{
		Reverse:       reverse,
		BitsPerSecond: j.End.SumReceived.BitsPerSecond,
		Bytes:         j.End.SumReceived.Bytes,
		Seconds:       j.End.SumReceived.Seconds,
		Retransmits:   j.End.SumSent.Retransmits,
	}, nil
}

// UDPIperfResult is one iperf3 UDP run as the receiving end saw it.
type UDPIperfResult struct {
	Reverse       bool
	Bytes         int64
	Seconds       float64
	BitsPerSecond float64
	Packets       int64
	Lost          int64
	OutOfOrder    int64
}

type iperfUDPJSON struct {
	End struct {
		Sum struct {
			Bytes         int64   `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Packets       int64   `json:"packets"`
			LostPackets   int64   `json:"lost_packets"`
			OutOfOrder    int64   `json:"out_of_order"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

// IperfUDP runs one iperf3 UDP test for dur at rate bits per second with size-byte datagrams,
// from the client namespace to an iperf3 server bound to addr (reverse: the other way). Both
// ends get 4 MB socket buffers so a busy test machine does not count its own socket drops as
// tunnel loss.
func (l *Lab) IperfUDP(addr string, dur time.Duration, rate int64, size int, reverse bool) (UDPIperfResult, error) {
	port := strconv.Itoa(l.nextPort())
	srv, err := startProcess(l.ServerNS, "iperf3", "-s", "-1", "-B", addr, "-p", port)
	if err != nil {
		return UDPIperfResult{}, err
	}
	defer srv.Kill()
	if err := l.waitListening(port, srv, 10*time.Second); err != nil {
		return UDPIperfResult{}, fmt.Errorf("iperf3 server: %w", err)
	}
	args := []string{"iperf3", "-c", addr, "-p", port, "-u", "-b", strconv.FormatInt(rate, 10),
		"-l", strconv.Itoa(size), "-w", "4M", "-t", strconv.Itoa(max(1, int(dur.Seconds()))), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	cctx, ccancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer ccancel()
	out, runErr := nsCommand(cctx, l.ClientNS, args...).Output()
	var j iperfUDPJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return UDPIperfResult{}, fmt.Errorf("iperf3 -u: parsing JSON (%v): %w: %s", runErr, err, bytes.TrimSpace(out))
	}
	if j.Error != "" || runErr != nil {
		return UDPIperfResult{}, fmt.Errorf("iperf3 -u: %v %s", runErr, j.Error)
	}
	s := j.End.Sum
	return UDPIperfResult{Reverse: reverse, Bytes: s.Bytes, Seconds: s.Seconds, BitsPerSecond: s.BitsPerSecond,
		Packets: s.Packets, Lost: s.LostPackets, OutOfOrder: s.OutOfOrder}, nil
}
