package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

func init() {
	register("up", command{"connect: up [--name NAME] [--timeout D] [--no-browser] FILE", runUp})
}

// upStdin is where answers come from when there is no terminal (a test seam).
var upStdin io.Reader = os.Stdin

func runUp(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("up", "up [--name NAME] [--timeout D] [--verbose] [--no-browser] FILE|PROFILE", stderr)
	name := fs.String("name", "", "session name (default: the file name without .conf/.ovpn)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up (and disconnect) when not connected by then; 0 waits forever")
	verbose := fs.Bool("verbose", false, "print the session's log while connecting")
	noBrowser := fs.Bool("no-browser", false, "print a web login's address without opening a browser")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	path := fs.Arg(0)
	// A name that is no file is a profile stored with `ovpnctl import`; its session is
	// named after it.
	stored := isStoredName(path)
	if stored && *name != "" && *name != path {
		fmt.Fprintln(stderr, "ovpnctl: --name applies to profile files; a stored profile's session has its name")
		return exitUsage
	}
	if *name == "" {
		*name = sessionName(path)
	}
	if !api.ValidName(*name) {
		fmt.Fprintf(stderr, "ovpnctl: %q is not a session name (1-%d characters of [A-Za-z0-9_.@-]); use --name\n", *name, api.MaxNameLen)
		return exitUsage
	}
	// The profile and every file it names are read here, as the user; the daemon receives
	// the self-contained result and never opens a path.
	pr := newPrompter(upStdin, stderr)
	defer pr.close()
	var profile string
	if !stored {
		cfg, ok := loadProfile(path, pr, stderr)
		if !ok {
			return exitFail
		}
		profile = string(cfg.Format())
	}

	c, err := connect()
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	sigs := make(chan *dbus.Signal, 256)
	c.Signal(sigs)
	var p dbus.ObjectPath
	if stored {
		err = callInteractive(c, api.BusName, api.ManagerPath, api.ManagerInterface+".StartProfile", stderr, *name, map[string]dbus.Variant{}).Store(&p)
	} else {
		err = callInteractive(c, api.BusName, api.ManagerPath, api.ManagerInterface+".Start", stderr, *name, profile, map[string]dbus.Variant{}).Store(&p)
	}
	if err != nil {
		return report(stderr, err)
	}
	t, err := withOwner(c, target{dest: api.BusName, path: p})
	if err != nil {
		return report(stderr, err)
	}
	fmt.Fprintf(stderr, "%s: started\n", *name)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	u := &upper{c: c, t: t, name: *name, pr: pr, stdout: stdout, stderr: stderr, verbose: *verbose, answered: map[uint32]bool{},
		web: &webLogin{noBrowser: *noBrowser, stderr: stderr}}
	info, err := getInfo(c, t)
	if err != nil {
		return report(stderr, err)
	}
	u.info = info
	if code, done := u.progress(); done {
		return code
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "%s: interrupted; disconnecting\n", *name)
			u.disconnect()
			return exitFail
		case <-deadline:
			fmt.Fprintf(stderr, "%s: not connected after %v (state %s); disconnecting\n", *name, *timeout, u.info.State)
			u.disconnect()
			return exitFail
		case <-c.Context().Done():
			fmt.Fprintln(stderr, "ovpnctl: lost the bus connection")
			return exitUnreachable
		case s := <-sigs:
			if !t.from(s) {
				continue
			}
			switch s.Name {
			case api.PropertiesInterface + "." + api.SignalPropertiesChanged:
				if len(s.Body) == 3 {
					if ch, ok := s.Body[1].(map[string]dbus.Variant); ok {
						applyProps(u.info, ch)
					}
				}
			case api.SessionInterface + "." + api.SignalLog:
				var usec uint64
				var level uint32
				var msg string
				if *verbose && dbus.Store(s.Body, &usec, &level, &msg) == nil {
					fmt.Fprintf(stderr, "  %s\n", api.Printable(msg))
				}
				continue
			case api.SessionInterface + "." + api.SignalInputRequired, api.SessionInterface + "." + api.SignalOpenURL:
				// Answered below from PendingInput, which also covers requests made
				// before this client subscribed.
			default:
				continue
			}
			if code, done := u.progress(); done {
				return code
			}
		}
	}
}

// upper follows one session from Start to connected or failed.
type upper struct {
	c              *dbus.Conn
	t              target
	name           string
	pr             *prompter
	stdout, stderr io.Writer
	verbose        bool
	info           *sessionInfo
	lastState      string
	answered       map[uint32]bool
	web            *webLogin
}

// progress reports the current state, answers pending prompts, and says whether `up` is
// finished (with which exit status).
func (u *upper) progress() (int, bool) {
	if st := u.info.State; st != u.lastState {
		u.lastState = st
		switch st {
		case api.StateConnected:
			addrs := strings.Join(u.info.TunnelAddresses, " ")
			fmt.Fprintf(u.stdout, "%s: connected to %s, device %s, address %s\n", u.name, dash(u.info.Remote), dash(u.info.Device), dash(addrs))
			return exitOK, true
		case api.StateFailed, api.StateDisconnected:
			// The session ended before it was up: say why, once, and exit with the status
			// documented for that reason.
			if u.info.StateReason == "" {
				fmt.Fprintf(u.stderr, "%s: disconnected before connecting\n", u.name)
				return exitFail, true
			}
			fmt.Fprintf(u.stderr, "%s: failed: %s\n", u.name, u.info.StateReason)
			return failureCode(u.info.StateReason), true
		case api.StateWaitingInput:
		default:
			if u.info.StateReason != "" {
				fmt.Fprintf(u.stderr, "%s: %s (%s)\n", u.name, st, u.info.StateReason)
			} else {
				fmt.Fprintf(u.stderr, "%s: %s\n", u.name, st)
			}
		}
	}
	if u.info.State == api.StateWaitingInput || u.info.State == api.StateAuthPending {
		if err := u.answer(); err != nil {
			fmt.Fprintf(u.stderr, "ovpnctl: %v; disconnecting\n", err)
			u.disconnect()
			return classify(err).code, true
		}
	}
	return 0, false
}

func (u *upper) answer() error {
	var reqs []api.InputEntry
	if err := u.t.obj(u.c).Call(api.SessionInterface+".PendingInput", 0).Store(&reqs); err != nil {
		return err
	}
	for _, r := range reqs {
		if u.answered[r.ID] {
			continue
		}
		if r.Kind == api.InputWebLogin {
			u.answered[r.ID] = true
			u.web.show(u.name, r.URL)
			continue
		}
		v, err := u.pr.ask(promptLabel(r), r.Secret || r.Kind == api.InputPassword)
		if err != nil {
			return err
		}
		u.answered[r.ID] = true
		if err := u.t.obj(u.c).Call(api.SessionInterface+".ProvideInput", 0, r.ID, v).Err; err != nil {
			return err
		}
	}
	return nil
}

// promptLabel is how a request is shown: challenges as OpenVPN shows them.
func promptLabel(r api.InputEntry) string {
	switch r.Kind {
	case api.InputStaticChallenge, api.InputChallenge, api.InputCRText:
		return "CHALLENGE: " + api.Printable(r.Prompt)
	}
	return api.Printable(r.Prompt)
}

func (u *upper) disconnect() {
	_ = u.t.obj(u.c).Call(api.SessionInterface+".Disconnect", 0).Err
}

// sessionName derives a session name from a profile path: the file name without .conf or
// .ovpn, other characters replaced by '_'.
func sessionName(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".conf", ".ovpn"} {
		if b, ok := strings.CutSuffix(base, ext); ok && b != "" {
			base = b
			break
		}
	}
	out := []byte(base)
	for i, c := range out {
		if !api.ValidName(string(c)) {
			out[i] = '_'
		}
	}
	if len(out) > api.MaxNameLen {
		out = out[:api.MaxNameLen]
	}
	if len(out) == 0 {
		return "vpn"
	}
	return string(out)
}
