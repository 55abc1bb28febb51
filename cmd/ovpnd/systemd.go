package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/daemon"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/routing"
	"github.com/ovpnd/ovpnd/session"
)

func init() {
	commands["instance"] = command{"run /etc/ovpnd/NAME.conf for ovpnd@NAME.service (sd_notify, journal, bus)", instanceCmd}
}

// systemdObserve is the hook for `ovpnd run --systemd`: it reports s to systemd (READY=1
// once the tunnel is up, STATUS=, STOPPING=1, WATCHDOG=1). Call before s.Run; call the
// returned function after Run returns.
func systemdObserve(ctx context.Context, s *session.Session) func() {
	return daemon.NewNotifier().Observe(ctx, s)
}

var _ = systemdObserve

func instanceCmd(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpnd instance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "profile to run (default /etc/ovpnd/NAME.conf)")
	busFlag := fs.String("bus", "system", "bus to register on: system, session, an address, or none")
	stateDir := fs.String("state-dir", routing.DefaultStateDir, "directory for crash-recovery records")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ovpnd instance [--config FILE] [--bus system|session|ADDRESS|none] NAME")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
	if !api.ValidName(name) {
		fmt.Fprintf(stderr, "ovpnd instance: name %q is not 1-%d characters of [A-Za-z0-9_.@-]\n", name, api.MaxNameLen)
		return 2
	}
	if *cfgPath == "" {
		*cfgPath = "/etc/ovpnd/" + name + ".conf"
	}
	log := daemon.NewLogger(stderr)
	notify := daemon.NewNotifier()
	fail := func(msg string) int {
		log.Log(0, name, "", msg)
		notify.Notify("STATUS=" + msg + "\nERRNO=1")
		return 1
	}

	cleanStale(*stateDir, func(format string, args ...any) { log.Log(1, name, "", fmt.Sprintf(format, args...)) })
	// An encrypted key's passphrase comes from askpass FILE in the profile or, failing that,
	// from the systemd credential askpass (there is no terminal to ask on).
	askpass, err := daemon.PassphraseFromDirectory(os.Getenv("CREDENTIALS_DIRECTORY"))
	if err != nil {
		return fail(err.Error())
	}
	cfg, warns, err := config.LoadWith(*cfgPath, config.LoadOptions{Passphrase: askpass})
	for _, w := range warns {
		log.Log(1, name, "", w.String())
	}
	if err != nil {
		for _, e := range config.Errors(err) {
			log.Log(0, name, "", e.Error())
		}
		return fail("invalid profile " + *cfgPath)
	}
	creds, err := daemon.CredentialsFromDirectory(os.Getenv("CREDENTIALS_DIRECTORY"))
	if err != nil {
		return fail(err.Error())
	}
	opts := daemon.InstanceOptions{Name: name, Config: cfg, Log: log, StateDir: *stateDir, Credentials: creds}
	if *busFlag != "none" {
		conn, err := connectBus(*busFlag)
		if err != nil {
			// The tunnel matters more than being listed: run without the bus.
			log.Log(1, name, "", fmt.Sprintf("not registering on the %s bus: %v", *busFlag, err))
		} else {
			defer conn.Close()
			opts.Conn = conn
		}
	}
	inst, err := daemon.NewInstance(opts)
	if err != nil {
		return fail(err.Error())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopNotify := notify.Observe(ctx, inst.Tunnel())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGHUP || sig == syscall.SIGUSR1 {
				inst.Restart()
				continue
			}
			inst.Disconnect()
		}
	}()
	err = inst.Run(ctx)
	stopNotify()
	if err != nil {
		if errors.Is(err, session.ErrAuthFailed) {
			return fail("authentication failed: " + err.Error())
		}
		return fail(err.Error())
	}
	return 0
}
