package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/daemon"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/internal/memtrim"
	"github.com/ovpnd/ovpnd/routing"
	"github.com/ovpnd/ovpnd/session"
)

func runCmd(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpnd run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "tunnel name (routing state, logs); default: the profile's file name")
	verb := fs.Int("verb", -1, "log verbosity 0-11 as OpenVPN's --verb; default: the profile's verb")
	stateDir := fs.String("state-dir", routing.DefaultStateDir, "directory for crash-recovery records")
	dnsMode := fs.String("dns-mode", "", "force the DNS mechanism: systemd-resolved, resolv.conf or none (default: detect)")
	resolvConf := fs.String("resolv-conf", "", "resolv.conf to rewrite when systemd-resolved is not used (default /etc/resolv.conf; for tests and containers)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ovpnd run [--name NAME] [--verb N] [--state-dir DIR] [--dns-mode MODE] [--resolv-conf PATH] PROFILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	path := fs.Arg(0)
	logger := log.New(stderr, "", logFlags())
	switch *dnsMode {
	case "", routing.ModeResolved, routing.ModeResolvConf, routing.ModeNone:
	default:
		fmt.Fprintf(stderr, "ovpnd run: --dns-mode %q: want systemd-resolved, resolv.conf or none\n", *dnsMode)
		return 2
	}
	if *resolvConf != "" && !filepath.IsAbs(*resolvConf) {
		fmt.Fprintf(stderr, "ovpnd run: --resolv-conf %q: not an absolute path\n", *resolvConf)
		return 2
	}

	// No garbage collection until the first connection is up or has failed
	// (internal/memtrim): with 16 MiB as the heap's bound meanwhile.
	memtrim.HoldCollection(16 << 20)

	// Undoing what crashed instances left behind and reading the profile do not depend on
	// each other: they run side by side, and the session starts once both are done.
	cleaned := make(chan struct{})
	go func() {
		defer close(cleaned)
		cleanStale(*stateDir, logger.Printf)
	}()
	cfg, warns, err := config.LoadWith(path, config.LoadOptions{Passphrase: askPassphraseTerminal})
	<-cleaned
	for _, w := range warns {
		logger.Print(w.String())
	}
	if err != nil {
		for _, e := range config.Errors(err) {
			logger.Print(e)
		}
		return exitConfig
	}
	if *name == "" {
		*name = instanceName(path)
	}
	opts := session.Options{
		Name:       *name,
		StateDir:   *stateDir,
		DNSMode:    *dnsMode,
		ResolvConf: *resolvConf,
		Verb:       *verb,
		Logf:       logger.Printf,
	}
	if cfg.AuthUserPass != nil && (cfg.AuthUserPass.Ask || cfg.AuthUserPass.PasswordMissing) {
		opts.Credentials = askTerminal
	}
	if px := cfg.Proxy; px != nil && px.Ask {
		opts.ProxyCredentials = askProxyTerminal
	}
	// Challenges (static-challenge, CRV1, CR_TEXT) are asked on the terminal; web-login
	// URLs appear in the log for the user to open.
	opts.Respond = respondTerminal
	s, err := session.New(cfg, opts)
	if err != nil {
		logger.Print(err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	restart := make(chan os.Signal, 1)
	signal.Notify(restart, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(restart)
	go func() {
		for range restart {
			s.Restart()
		}
	}()

	err = s.Run(ctx)
	if err != nil {
		logger.Printf("exiting: %v", err)
		return exitCode(err)
	}
	logger.Print("exiting")
	return 0
}

// instanceName derives a tunnel name from the profile path: its base name
// without extension, reduced to characters routing accepts.
func instanceName(path string) string {
	base := path
	for i := len(base) - 1; i >= 0; i-- {
		if base[i] == '/' {
			base = base[i+1:]
			break
		}
	}
	if i := len(base) - len(".conf"); i > 0 && base[i:] == ".conf" {
		base = base[:i]
	} else if i := len(base) - len(".ovpn"); i > 0 && base[i:] == ".ovpn" {
		base = base[:i]
	}
	out := make([]byte, 0, len(base))
	for i := 0; i < len(base) && len(out) < 32; i++ {
		c := base[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			out = append(out, c)
		} else {
			out = append(out, '_')
		}
	}
	if len(out) == 0 {
		return "ovpnd"
	}
	return string(out)
}

func cleanupCmd(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpnd cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", routing.DefaultStateDir, "directory of crash-recovery records")
	instance := fs.String("instance", "", "undo only what ovpnd@NAME left behind (its ExecStartPre/ExecStopPost)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: ovpnd cleanup [--state-dir DIR] [--instance NAME]")
		return 2
	}
	logger := log.New(stderr, "", logFlags())
	var err error
	if *instance != "" {
		if !api.ValidName(*instance) {
			fmt.Fprintf(stderr, "ovpnd cleanup: name %q is not 1-%d characters of [A-Za-z0-9_.@-]\n", *instance, api.MaxNameLen)
			return 2
		}
		err = routing.CleanUpInstance(*stateDir, daemon.InstanceStateName(*instance), logger.Printf)
	} else {
		err = routing.CleanUp(*stateDir, logger.Printf)
	}
	if err != nil {
		logger.Printf("cleanup: %v", err)
		return 1
	}
	return 0
}

// Exit statuses of `ovpnd run` and `ovpnd instance` besides 0 (clean stop), 1 (any other
// failure; worth retrying) and 2 (usage). systemd names them NOPERM and CONFIG in
// `systemctl status`, and ovpnd@.service does not retry them (RestartPreventExitStatus=):
// retrying a refused password only risks locking the account.
const (
	exitAuthFailed = 77 // the server refused the credentials
	exitConfig     = 78 // the profile or the credential file is invalid
)

// exitCode is the exit status for the error a session ended with.
func exitCode(err error) int {
	if errors.Is(err, session.ErrAuthFailed) {
		return exitAuthFailed
	}
	return 1
}

// logFlags leaves out the timestamp when stderr goes to the journal, which adds its own.
func logFlags() int {
	if os.Getenv("JOURNAL_STREAM") != "" {
		return 0
	}
	return log.LstdFlags
}

// cleanStale runs before anything else in every long-running command: it undoes what crashed
// or SIGKILLed ovpnd processes left behind (routes, addresses, DNS, resolv.conf). Records of
// live processes, such as another tunnel running now, are left alone.
func cleanStale(stateDir string, logf func(format string, args ...any)) {
	if err := routing.CleanUp(stateDir, logf); err != nil {
		logf("cleaning up after earlier instances: %v", err)
	}
}
