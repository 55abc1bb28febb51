package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
)

func init() {
	register("remove", command{"delete a stored profile: remove NAME", runRemove})
}

// isStoredName says whether up's argument names a stored profile: a valid name that is no
// file here.
func isStoredName(arg string) bool {
	if strings.Contains(arg, "/") || !api.ValidName(arg) {
		return false
	}
	_, err := os.Stat(arg)
	return errors.Is(err, os.ErrNotExist)
}

// loadProfile reads the profile at path and every file it names as the caller, asking pr for
// an encrypted key's passphrase, and prints its warnings and errors to stderr. ok is false if
// the profile could not be loaded; the errors have then been printed.
func loadProfile(path string, pr *prompter, stderr io.Writer) (cfg *config.Config, ok bool) {
	cfg, warns, err := config.LoadWith(path, config.LoadOptions{Passphrase: pr.passphrase})
	for _, w := range warns {
		fmt.Fprintln(stderr, w.String())
	}
	if err != nil {
		for _, e := range config.Errors(err) {
			fmt.Fprintln(stderr, e.Error())
		}
		return nil, false
	}
	return cfg, true
}

// storeProfile is `import` without --nm: it reads the profile and every file it names as
// the caller, like up, and stores the self-contained result with the daemon, which keeps it
// root-only for this user.
func storeProfile(path, name string, stdout, stderr io.Writer) int {
	if name == "" {
		name = sessionName(path)
	}
	if !api.ValidName(name) {
		fmt.Fprintf(stderr, "ovpnctl: %q is not a profile name (1-%d characters of [A-Za-z0-9_.@-]); use --name\n", name, api.MaxNameLen)
		return exitUsage
	}
	pr := newPrompter(upStdin, stderr)
	defer pr.close()
	cfg, ok := loadProfile(path, pr, stderr)
	if !ok {
		return exitFail
	}
	c, err := connect()
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	if err := c.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".ImportProfile", 0, name, string(cfg.Format())).Err; err != nil {
		return report(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: stored; connect with: ovpnctl up %s\n", name, name)
	return exitOK
}

func runRemove(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("remove", "remove NAME", stderr)
	name, code, ok := oneName(fs, args, stderr, false)
	if !ok {
		return code
	}
	c, err := connect()
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	if err := c.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".RemoveProfile", 0, name).Err; err != nil {
		return report(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: removed\n", name)
	return exitOK
}

func listProfiles(asJSON bool, stdout, stderr io.Writer) int {
	c, err := connect()
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	var names []string
	if err := c.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".ListProfiles", 0).Store(&names); err != nil {
		return report(stderr, err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(names); err != nil {
			return report(stderr, err)
		}
		return exitOK
	}
	if len(names) == 0 {
		fmt.Fprintln(stdout, "no stored profiles")
		return exitOK
	}
	for _, n := range names {
		fmt.Fprintln(stdout, api.Printable(n))
	}
	return exitOK
}
