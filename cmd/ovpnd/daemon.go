package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/daemon"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/routing"
)

func init() {
	commands["daemon"] = command{"serve the D-Bus API (net.ovpnd1) that ovpnctl uses", daemonCmd}
}

// shutdownTimeout bounds SIGTERM: sessions get this long to tell their servers and undo
// their network settings (systemd's own stop timeout is longer).
const shutdownTimeout = 10 * time.Second

// connectBus connects to "system", "session" or a D-Bus address.
func connectBus(which string) (*dbus.Conn, error) {
	switch which {
	case "", "system":
		return dbus.ConnectSystemBus()
	case "session":
		return dbus.ConnectSessionBus()
	}
	if !strings.Contains(which, ":") {
		return nil, fmt.Errorf("--bus %q is neither system, session nor a D-Bus address", which)
	}
	return dbus.Connect(which)
}

func daemonCmd(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpnd daemon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	busFlag := fs.String("bus", "system", "bus to serve on: system, session or a D-Bus address")
	stateDir := fs.String("state-dir", routing.DefaultStateDir, "directory for crash-recovery records")
	profileDir := fs.String("profile-dir", "/var/lib/ovpnd/profiles", "where users' stored profiles are kept (root only)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ovpnd daemon [--bus system|session|ADDRESS] [--state-dir DIR] [--profile-dir DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	log := daemon.NewLogger(stderr)
	cleanStale(*stateDir, func(format string, args ...any) { log.Log(1, "", "", fmt.Sprintf(format, args...)) })
	notify := daemon.NewNotifier()
	conn, err := connectBus(*busFlag)
	if err != nil {
		log.Log(0, "", "", fmt.Sprintf("connecting to the %s bus: %v", *busFlag, err))
		return 1
	}
	defer conn.Close()
	m, err := daemon.NewManager(daemon.Options{Conn: conn, Log: log, StateDir: *stateDir, ProfileDir: *profileDir})
	if err != nil {
		log.Log(0, "", "", err.Error())
		return 1
	}
	// Signals are wired before the name is requested: a SIGTERM right after start-up must
	// still stop sessions cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	reply, err := conn.RequestName(api.BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		log.Log(0, "", "", fmt.Sprintf("requesting bus name %s: %v", api.BusName, err))
		return 1
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		log.Log(0, "", "", fmt.Sprintf("bus name %s is taken: is another ovpnd daemon running?", api.BusName))
		return 1
	}
	log.Log(1, "", "", fmt.Sprintf("serving %s on the %s bus", api.BusName, *busFlag))
	notify.Notify("READY=1\nSTATUS=serving " + api.BusName)

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Log(1, "", "", "SIGHUP: restarting every session")
				m.RestartAll()
				continue
			}
			log.Log(1, "", "", fmt.Sprintf("%v: stopping every session", sig))
			notify.Notify("STOPPING=1\nSTATUS=stopping sessions")
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			m.Shutdown(ctx)
			cancel()
			return 0
		case <-conn.Context().Done():
			log.Log(0, "", "", "lost the bus connection; stopping every session")
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			m.Shutdown(ctx)
			cancel()
			return 1
		}
	}
}
