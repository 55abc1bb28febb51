package interop

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// routeSampler asks the kernel of the client namespace, as `ip route get` does, which device
// reaches addr, over and over, and keeps every answer that was not a tun device.
type routeSampler struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	n     int
	leaks []string
}

func sampleRoutes(t *testing.T, ns, addr string) *routeSampler {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	nh, err := netlink.NewHandleAt(h)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := &routeSampler{stop: make(chan struct{}), done: make(chan struct{})}
	ip := net.ParseIP(addr)
	names := map[int]string{}
	go func() {
		defer close(s.done)
		defer nh.Close()
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			dev := "unreachable"
			if rs, err := nh.RouteGet(ip); err == nil && len(rs) > 0 {
				idx := rs[0].LinkIndex
				if names[idx] == "" {
					if l, err := nh.LinkByIndex(idx); err == nil {
						names[idx] = l.Attrs().Name
					} else {
						names[idx] = "gone"
					}
				}
				dev = names[idx]
			}
			s.mu.Lock()
			s.n++
			if !strings.HasPrefix(dev, "tun") {
				s.leaks = append(s.leaks, dev)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// finish stops sampling and returns how many samples were taken and the non-tun answers.
func (s *routeSampler) finish() (int, []string) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.leaks
}

// TestRoutingTwoFullTunnels: two full tunnels (def1, or replacing the default route) on one
// host, either going down first. The most recent carries the traffic; when one goes the other
// takes over with no instant in which `ip route get` answers the underlay (sampled without
// pause from before the first goes until the second starts going); resolv.conf holds the
// servers of exactly the tunnels up, and the original after the last. Before the host ledger,
// the second def1 tunnel could not install its routes and the underlay carried its traffic
// once the first went; without def1 the first one's teardown put the physical default back
// over the second's, and the second's teardown then left no default route at all.
func TestRoutingTwoFullTunnels(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Proto: "tcp", Wrap: "tls-crypt", Extra: []string{"duplicate-cn"}})
	const orig = "nameserver 192.0.2.53\nsearch home.test\n"
	resolv := rl.WriteFile("resolv.conf", orig)
	for _, redirect := range []string{"redirect-gateway def1", "redirect-gateway"} {
		for _, firstGoes := range []string{"a", "b"} {
			t.Run(strings.ReplaceAll(redirect, " ", "-")+"/"+firstGoes+"-leaves-first", func(t *testing.T) {
				dns := map[string]string{"a": "10.8.0.11", "b": "10.8.0.12"}
				procs, devs := map[string]*lab.Process{}, map[string]string{}
				for _, n := range []string{"a", "b"} {
					procs[n], devs[n] = rl.start(t, n, lab.ClientOptions{Remote: remoteBehindGW,
						Extra: []string{redirect, "dhcp-option DNS " + dns[n]}},
						"--dns-mode", "resolv.conf", "--resolv-conf", resolv)
				}
				servers := func() string {
					b, _ := os.ReadFile(resolv)
					var ns []string
					for _, l := range strings.Split(string(b), "\n") {
						if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
							ns = append(ns, f[1])
						}
					}
					return strings.Join(ns, " ")
				}
				if got := rl.ClientRouteGet(onlyViaTunnel4); !strings.Contains(got, " dev "+devs["b"]+" ") {
					t.Errorf("with both up: %q, want the most recent tunnel %s", got, devs["b"])
				}
				if got := servers(); got != dns["b"]+" "+dns["a"] {
					t.Errorf("resolv.conf servers with both up: %q, want b's then a's", got)
				}
				secondStays := map[string]string{"a": "b", "b": "a"}[firstGoes]
				s := sampleRoutes(t, rl.ClientNS, onlyViaTunnel4)
				time.Sleep(50 * time.Millisecond)
				stop(t, procs[firstGoes])
				time.Sleep(200 * time.Millisecond)
				n, leaks := s.finish()
				t.Logf("%d route samples while %s went down", n, firstGoes)
				if len(leaks) > 0 {
					t.Errorf("%d of %d samples left the tunnels while %s went down: %v", len(leaks), n, firstGoes, leaks[:min(len(leaks), 5)])
				}
				pingThroughTunnel(t, rl.Lab, devs[secondStays], onlyViaTunnel4)
				if got := servers(); got != dns[secondStays] {
					t.Errorf("resolv.conf servers after %s went: %q, want only %s's", firstGoes, got, secondStays)
				}
				stop(t, procs[secondStays])
				if b, _ := os.ReadFile(resolv); string(b) != orig {
					t.Errorf("resolv.conf after both: %q, want the original", b)
				}
				rl.checkRestored(t, "after both tunnels went down")
			})
		}
	}
}

// TestRoutingResolvConfReadOnlyEtc: resolv.conf mode as the shipped units run it
// (ProtectSystem=strict: the directory read-only, only the file itself writable through its
// own bind mount). The file is rewritten in place and restored. With the file read-only too,
// the tunnel comes up degraded, and says so in its state, instead of a plain "connected".
// Before, the temporary file could not be created next to resolv.conf: DNS silently stayed the
// host's while the session reported success.
func TestRoutingResolvConfReadOnlyEtc(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Push: []string{"redirect-gateway def1", "dhcp-option DNS 10.8.0.1"}})
	const orig = "nameserver 192.0.2.53\n"
	etc := filepath.Join(rl.Dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(etc, "resolv.conf")
	cfg := rl.WriteFile("ro.conf", rl.srv.ClientConfig(lab.ClientOptions{}))
	for _, tc := range []struct {
		name         string
		fileWritable bool
	}{{"file-writable", true}, {"all-read-only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(resolv, []byte(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			// The mounts live in a private mount namespace that ends with the process.
			script := `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"`
			if tc.fileWritable {
				script += ` && mount --bind "$1/resolv.conf" "$1/resolv.conf" && mount -o remount,bind,rw "$1/resolv.conf"`
			}
			script += ` && shift && exec "$@"`
			p := rl.StartClientProcess("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", etc,
				ovpndBinary(), "run", "--name", "ro", "--state-dir", rl.stateDir, "--dns-mode", "resolv.conf", "--resolv-conf", resolv, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := p.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
				t.Fatalf("%v\n%s", err, p.Output())
			}
			b, _ := os.ReadFile(resolv)
			degraded := strings.Contains(p.Output(), "state connected: DNS degraded")
			if tc.fileWritable {
				if !strings.Contains(string(b), "nameserver 10.8.0.1") || degraded {
					t.Errorf("resolv.conf while connected:\n%s\nlog:\n%s", b, p.Output())
				}
			} else if string(b) != orig || !degraded {
				t.Errorf("with resolv.conf read-only: file %q, want it untouched and the state degraded; log:\n%s", b, p.Output())
			}
			stop(t, p)
			if b, _ := os.ReadFile(resolv); string(b) != orig {
				t.Errorf("resolv.conf after SIGTERM: %q", b)
			}
			rl.checkRestored(t, "after SIGTERM")
		})
	}
}

// TestRoutingCrashCleanupSparesOthers: of two full tunnels (replacing the default route), the
// first is SIGKILLed and `ovpnd cleanup` undoes what it left: the second keeps carrying the
// traffic throughout (sampled without pause), resolv.conf keeps the second's server, and the
// host's default route and resolv.conf come back only when the second goes. Before, the
// cleanup put the host's default route back over the second tunnel's.
func TestRoutingCrashCleanupSparesOthers(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Proto: "tcp", Wrap: "tls-crypt", Extra: []string{"duplicate-cn"}})
	const orig = "nameserver 192.0.2.53\n"
	resolv := rl.WriteFile("resolv.conf", orig)
	procs, devs := map[string]*lab.Process{}, map[string]string{}
	dns := map[string]string{"a": "10.8.0.11", "b": "10.8.0.12"}
	for _, n := range []string{"a", "b"} {
		procs[n], devs[n] = rl.start(t, n, lab.ClientOptions{Remote: remoteBehindGW,
			Extra: []string{"redirect-gateway", "dhcp-option DNS " + dns[n]}},
			"--dns-mode", "resolv.conf", "--resolv-conf", resolv)
	}
	// Whichever came up last carries the traffic; kill the other one.
	carrier := "b"
	if got := rl.ClientRouteGet(onlyViaTunnel4); strings.Contains(got, " dev "+devs["a"]+" ") {
		carrier = "a"
	}
	victim := map[string]string{"a": "b", "b": "a"}[carrier]
	s := sampleRoutes(t, rl.ClientNS, onlyViaTunnel4)
	procs[victim].Kill()
	out := rl.cleanup(t)
	time.Sleep(100 * time.Millisecond)
	n, leaks := s.finish()
	t.Logf("%d route samples while %s was killed and cleaned up:\n%s", n, victim, out)
	if len(leaks) > 0 {
		t.Errorf("%d of %d samples left the tunnels: %v", len(leaks), n, leaks[:min(len(leaks), 5)])
	}
	pingThroughTunnel(t, rl.Lab, devs[carrier], onlyViaTunnel4)
	if b, _ := os.ReadFile(resolv); !strings.Contains(string(b), "nameserver "+dns[carrier]+"\n") || strings.Count(string(b), "nameserver") != 1 {
		t.Errorf("resolv.conf after the cleanup of %s:\n%s", victim, b)
	}
	stop(t, procs[carrier])
	if b, _ := os.ReadFile(resolv); string(b) != orig {
		t.Errorf("resolv.conf after both: %q", b)
	}
	rl.checkRestored(t, "after both tunnels went down")
}
