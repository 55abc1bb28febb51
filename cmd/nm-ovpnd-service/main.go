// Command nm-ovpnd-service is ovpnd's NetworkManager VPN plugin. NetworkManager runs it as
// root with --bus-name SERVICE.Connection_N for each activated connection of type ovpnd; it
// implements org.freedesktop.NetworkManager.VPN.Plugin, starts the connection's profile as
// an ovpnd session in external network mode (ovpnd runs the protocol and the tun device,
// NetworkManager applies addresses, routes and DNS), and exits when the connection ends.
//
// Run as nm-ovpnd-auth-dialog (a link to the same program), it is the auth-dialog that
// NetworkManager's agents (nmcli --ask, passwd-file, gnome-shell) run in external-UI mode
// to learn which secrets to ask for.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/internal/nmvpn"
)

// idleQuit ends a plugin that NetworkManager started but never asked to connect.
const idleQuit = 180 * time.Second

// exitGrace lets the last signals leave before the process exits.
const exitGrace = 200 * time.Millisecond

func main() {
	if strings.HasSuffix(filepath.Base(os.Args[0]), "auth-dialog") {
		os.Exit(runAuthDialog(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(runService(os.Args[1:]))
}

func runService(args []string) int {
	fs := flag.NewFlagSet("nm-ovpnd-service", flag.ContinueOnError)
	busName := fs.String("bus-name", nmvpn.ServiceName, "the D-Bus name to own (NetworkManager passes SERVICE.Connection_N)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "nm-ovpnd-service: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *busName != nmvpn.ServiceName && !strings.HasPrefix(*busName, nmvpn.ServiceName+".") {
		fmt.Fprintf(os.Stderr, "nm-ovpnd-service: --bus-name %q is not %s or below it\n", *busName, nmvpn.ServiceName)
		return 2
	}
	// stdout goes to NetworkManager's journal; the pid tells connections apart.
	logger := log.New(os.Stdout, fmt.Sprintf("nm-ovpnd-service[%d]: ", os.Getpid()), 0)
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		logger.Printf("connecting to the system bus: %v", err)
		return 1
	}
	defer conn.Close()
	p := newPlugin(conn, logger.Printf)
	if err := p.export(); err != nil {
		logger.Printf("exporting the plugin: %v", err)
		return 1
	}
	reply, err := conn.RequestName(*busName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		logger.Printf("cannot own %s (reply %v): %v", *busName, reply, err)
		return 1
	}
	return p.serve(logger.Printf)
}

// serve waits until the connection is over, a signal arrives, or nobody connects.
func (p *plugin) serve(logf func(string, ...any)) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	idle := time.NewTimer(idleQuit)
	defer idle.Stop()
	for {
		select {
		case <-p.done:
			time.Sleep(exitGrace)
			return 0
		case s := <-sig:
			p.mu.Lock()
			d := p.drv
			p.mu.Unlock()
			if d == nil {
				return 0
			}
			logf("%v: disconnecting", s)
			d.stop(s.String())
		case <-idle.C:
			p.mu.Lock()
			d := p.drv
			p.mu.Unlock()
			if d == nil {
				logf("no connection requested within %v; exiting", idleQuit)
				return 0
			}
		}
	}
}
