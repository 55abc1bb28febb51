package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	api "github.com/ovpnd/ovpnd/dbus"
)

// prompter asks the user for credentials: on the controlling terminal (echo off for
// secrets) when there is one, otherwise one line per answer from stdin, so scripts can
// pipe "user\npass\n" in.
type prompter struct {
	tty    *os.File
	in     *bufio.Reader
	stderr io.Writer
}

func newPrompter(stdin io.Reader, stderr io.Writer) *prompter {
	p := &prompter{stderr: stderr}
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p.tty = f
			p.in = bufio.NewReaderSize(f, 512)
			return p
		}
		f.Close()
	}
	p.in = bufio.NewReaderSize(stdin, 512)
	return p
}

func (p *prompter) close() {
	if p.tty != nil {
		p.tty.Close()
	}
}

// ask shows prompt and reads one line; secret turns echo off on a terminal.
func (p *prompter) ask(prompt string, secret bool) (string, error) {
	var out io.Writer = p.stderr
	if p.tty != nil {
		out = p.tty
	}
	fmt.Fprintf(out, "%s: ", prompt)
	if p.tty != nil && secret {
		fd := int(p.tty.Fd())
		old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return "", fmt.Errorf("reading terminal settings: %w", err)
		}
		noEcho := *old
		noEcho.Lflag &^= unix.ECHO
		noEcho.Lflag |= unix.ICANON
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
			return "", fmt.Errorf("turning off echo: %w", err)
		}
		defer func() {
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
			fmt.Fprintln(out)
		}()
	} else if p.tty == nil {
		defer fmt.Fprintln(out)
	}
	line, err := p.in.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("reading %s: %w", strings.ToLower(prompt), err)
	}
	line = strings.TrimRight(line, "\r\n")
	if len(line) > api.MaxInputLen {
		return "", fmt.Errorf("%s is longer than %d bytes", strings.ToLower(prompt), api.MaxInputLen)
	}
	return line, nil
}

// passphrase asks for the passphrase of an encrypted key (config.Passphrase). The key is
// decrypted here, as the user; the daemon only ever receives the decrypted key.
func (p *prompter) passphrase(what string) ([]byte, error) {
	s, err := p.ask("Enter Private Key Password for "+what, true)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}
