// Command lossy is the fault benchmark's impaired link (this kernel has no sch_netem): a UDP
// relay between one client and one server that drops each datagram with a probability and
// delays the rest by a random time, so that datagrams also overtake each other (reorder), in
// both directions.
//
//	lossy -listen 198.18.0.1:1195 -to 127.0.0.1:1194 -loss 0.1 -delay 20ms -jitter 10ms [-log]
//
// With -log it prints one line per datagram, for counting what a handshake exposes to loss:
//
//	pkt UNIX-NANOSECONDS c2s|s2c OPCODE LENGTH pass|drop
//
// where OPCODE is the OpenVPN opcode (the first byte's top five bits) and c2s means from the
// client towards the server.
//
// Test-only: it serves one client at a time (the source of the latest datagram) and runs until
// killed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address:port the client sends to")
	to := flag.String("to", "", "the server's address:port")
	loss := flag.Float64("loss", 0.1, "probability of dropping a datagram, each direction")
	delay := flag.Duration("delay", 20*time.Millisecond, "mean one-way delay")
	jitter := flag.Duration("jitter", 10*time.Millisecond, "delay varies uniformly by ± this much")
	logPkts := flag.Bool("log", false, "print one line per datagram")
	flag.Parse()
	if err := run(*listen, *to, *loss, *delay, *jitter, *logPkts); err != nil {
		fmt.Fprintf(os.Stderr, "lossy: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, to string, loss float64, delay, jitter time.Duration, logPkts bool) error {
	la, err := netip.ParseAddrPort(listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	ta, err := netip.ParseAddrPort(to)
	if err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	front, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(la))
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var client netip.AddrPort
	// later sends b after the impairment, or drops it.
	later := func(dir string, b []byte, send func([]byte)) {
		drop := rand.Float64() < loss
		if logPkts && len(b) > 0 {
			verdict := "pass"
			if drop {
				verdict = "drop"
			}
			// One write per line: lines from both directions never interleave.
			fmt.Printf("pkt %d %s %d %d %s\n", time.Now().UnixNano(), dir, b[0]>>3, len(b), verdict)
		}
		if drop {
			return
		}
		d := delay - jitter + time.Duration(rand.Int64N(int64(2*jitter)+1))
		time.AfterFunc(max(d, 0), func() { send(b) })
	}
	// Each client (source address and port) gets its own socket towards the server, as it
	// would through a NAT: a restarted client must not look like the previous one.
	var back *net.UDPConn
	reader := func(c *net.UDPConn, to netip.AddrPort) {
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // ICMP errors while the server restarts
			}
			b := append([]byte(nil), buf[:n]...)
			later("s2c", b, func(b []byte) { front.WriteToUDPAddrPort(b, to) })
		}
	}
	fmt.Println("ready")
	buf := make([]byte, 65536)
	for {
		n, from, err := front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		mu.Lock()
		if from != client {
			if back != nil {
				back.Close()
			}
			back, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ta))
			if err != nil {
				mu.Unlock()
				return err
			}
			client = from
			go reader(back, from)
		}
		c := back
		mu.Unlock()
		b := append([]byte(nil), buf[:n]...)
		later("c2s", b, func(b []byte) { c.Write(b) })
	}
}
