// Command lossy is the fault benchmark's impaired link (this kernel has no sch_netem): a UDP
// relay between one client and one server that drops each datagram with a probability and
// delays the rest by a random time, so that datagrams also overtake each other (reorder), in
// both directions.
//
//	lossy -listen 198.18.0.1:1195 -to 127.0.0.1:1194 -loss 0.1 -delay 20ms -jitter 10ms
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
	flag.Parse()
	if err := run(*listen, *to, *loss, *delay, *jitter); err != nil {
		fmt.Fprintf(os.Stderr, "lossy: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, to string, loss float64, delay, jitter time.Duration) error {
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
	later := func(b []byte, send func([]byte)) {
		if rand.Float64() < loss {
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
			later(b, func(b []byte) { front.WriteToUDPAddrPort(b, to) })
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
		later(b, func(b []byte) { c.Write(b) })
	}
}
