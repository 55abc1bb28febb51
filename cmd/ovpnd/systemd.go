package main

import (
	"context"
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
)

func init() {
	commands["instance"] = command{"run /etc/ovpnd/NAME.conf for ovpnd@NAME.service (sd_notify, journal, bus)", instanceCmd}
}

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
	notify.Name = name
	// fail logs msg once and leaves it as the unit's status. No ERRNO=: systemd would show
	// it as an errno name, and none describes a VPN failure.
	fail := func(code int, msg string) int {
		log.Log(0, name, "", msg)
		notify.Status(msg)
		return code
	}

	// The unit's ExecStartPre and ExecStopPost clean up too; this covers `ovpnd instance` run
	// by hand. Only this instance's records: other instances' are theirs.
	if err := routing.CleanUpInstance(*stateDir, daemon.InstanceStateName(name), func(format string, args ...any) { log.Log(1, name, "", fmt.Sprintf(format, args...)) }); err != nil {
		log.Log(1, name, "", fmt.Sprintf("cleaning up after an earlier run: %v", err))
	}
	// An encrypted key's passphrase comes from askpass FILE in the profile or, failing that,
	// from the systemd credential askpass (there is no terminal to ask on).
	askpass, err := daemon.PassphraseFromDirectory(os.Getenv("CREDENTIALS_DIRECTORY"))
	if err != nil {
		return fail(exitConfig, err.Error())
	}
	cfg, warns, err := config.LoadWith(*cfgPath, config.LoadOptions{Passphrase: askpass})
	for _, w := range warns {
		log.Log(1, name, "", w.String())
	}
	if err != nil {
		for _, e := range config.Errors(err) {
			log.Log(0, name, "", e.Error())
		}
		return fail(exitConfig, "invalid profile "+*cfgPath)
	}
	creds, err := daemon.CredentialsFromDirectory(os.Getenv("CREDENTIALS_DIRECTORY"))
	if err != nil {
		return fail(exitConfig, err.Error())
	}
	opts := daemon.InstanceOptions{Name: name, Config: cfg, Log: log, StateDir: *stateDir, Credentials: creds, Waiting: notify.Waiting}
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
		return fail(1, err.Error())
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
		// The session has logged the failure as it happened; the status keeps its reason.
		notify.Status(err.Error())
		return exitCode(err)
	}
	return 0
}
