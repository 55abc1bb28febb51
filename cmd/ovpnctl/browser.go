package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// webLogin shows a web-login URL and, in a graphical session, opens it with xdg-open.
type webLogin struct {
	// noBrowser is --no-browser: only print the URL.
	noBrowser bool
	stderr    io.Writer
	// opened remembers the URLs already handled, so a repeated announcement does not open a
	// second browser tab.
	opened map[string]bool
}

// safeURL reports whether u may be handed to a browser launcher: http or https, printable
// ASCII without spaces. The daemon checks this too; ovpnctl does not rely on it, since the
// URL becomes a program argument here.
func safeURL(u string) bool {
	l := strings.ToLower(u)
	if !strings.HasPrefix(l, "https://") && !strings.HasPrefix(l, "http://") || len(u) > 2048 {
		return false
	}
	for i := 0; i < len(u); i++ {
		if u[i] <= ' ' || u[i] >= 0x7f {
			return false
		}
	}
	return true
}

// graphical reports whether the user runs a graphical session a browser can open in.
func graphical() bool { return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "" }

// show prints the URL once and opens it when it can.
func (w *webLogin) show(name, url string) {
	if w.opened[url] {
		return
	}
	if w.opened == nil {
		w.opened = map[string]bool{}
	}
	w.opened[url] = true
	if !safeURL(url) {
		fmt.Fprintf(w.stderr, "%s: the server asks for a web login at an address ovpnctl will not open: %q\n", name, url)
		return
	}
	fmt.Fprintf(w.stderr, "%s: log in at %s\n", name, url)
	if w.noBrowser || !graphical() {
		fmt.Fprintf(w.stderr, "%s: waiting for the login to complete\n", name)
		return
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		fmt.Fprintf(w.stderr, "%s: no xdg-open to open a browser (%v); open the address yourself\n", name, err)
		return
	}
	// The URL is one argument, never shell text. xdg-open may stay until the browser closes,
	// so it is not waited for here; a goroutine reaps it whenever it exits.
	cmd := exec.Command(path, url)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(w.stderr, "%s: starting xdg-open: %v; open the address yourself\n", name, err)
		return
	}
	go cmd.Wait() //nolint:errcheck // only reaps the launcher
	fmt.Fprintf(w.stderr, "%s: opened the login page in your browser; waiting for the login to complete\n", name)
}
