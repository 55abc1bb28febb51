package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ovpnd/ovpnd/session"
)

// askTerminal prompts for a username and password on the controlling terminal,
// with echo off for the password.
func askTerminal(ctx context.Context) (string, string, error) {
	t, err := openTerminal(ctx, "auth-user-pass needs a terminal or a credentials file")
	if err != nil {
		return "", "", err
	}
	defer t.close()
	user, err := t.ask("Enter Auth Username: ", true)
	if err != nil {
		return "", "", fmt.Errorf("reading username: %w", err)
	}
	pass, err := t.ask("Enter Auth Password: ", false)
	if err != nil {
		return "", "", fmt.Errorf("reading password: %w", err)
	}
	if user == "" {
		return "", "", errors.New("empty username")
	}
	return user, pass, nil
}

// askProxyTerminal asks for a proxy's username and password ("HTTP proxy", "SOCKS proxy") on
// the controlling terminal, as OpenVPN does ("Enter HTTP Proxy Username").
func askProxyTerminal(ctx context.Context, proxy string) (string, string, error) {
	label := strings.Replace(proxy, "proxy", "Proxy", 1)
	t, err := openTerminal(ctx, "the "+proxy+" needs a terminal or a credentials file")
	if err != nil {
		return "", "", err
	}
	defer t.close()
	user, err := t.ask("Enter "+label+" Username: ", true)
	if err != nil {
		return "", "", fmt.Errorf("reading username: %w", err)
	}
	pass, err := t.ask("Enter "+label+" Password: ", false)
	if err != nil {
		return "", "", fmt.Errorf("reading password: %w", err)
	}
	if user == "" {
		return "", "", errors.New("empty username")
	}
	return user, pass, nil
}

// respondTerminal asks for the answer to a challenge on the controlling terminal, echoed only
// when the challenge allows it, as OpenVPN does ("CHALLENGE: text").
func respondTerminal(ctx context.Context, p session.Prompt) (string, error) {
	t, err := openTerminal(ctx, "the server's challenge needs a terminal to answer it")
	if err != nil {
		return "", err
	}
	defer t.close()
	return t.ask("CHALLENGE: "+p.Text+" ", p.Echo)
}

// terminal is the controlling terminal, open for one exchange of prompts and answers.
type terminal struct {
	f    *os.File
	r    *bufio.Reader
	stop func() bool

	mu sync.Mutex
	// saved is the terminal's setting while echo is off for a secret; whoever ends the read
	// (the answer, or a cancelled request) puts it back.
	saved *unix.Termios
}

// openTerminal opens /dev/tty; cancelling ctx ends a pending read (echo is restored first).
func openTerminal(ctx context.Context, why string) (*terminal, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", why, err)
	}
	t := &terminal{f: f, r: bufio.NewReaderSize(f, 512)}
	t.stop = context.AfterFunc(ctx, func() {
		t.restore()
		f.Close()
	})
	return t, nil
}

func (t *terminal) close() {
	t.stop()
	t.restore()
	t.f.Close()
}

// restore turns echo back on if ask turned it off.
func (t *terminal) restore() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.saved != nil {
		_ = unix.IoctlSetTermios(int(t.f.Fd()), unix.TCSETS, t.saved)
		t.saved = nil
		fmt.Fprintln(t.f)
	}
}

// ask shows prompt and reads one line; without echo the terminal's echo is off while reading.
func (t *terminal) ask(prompt string, echo bool) (string, error) {
	if !echo {
		fd := int(t.f.Fd())
		old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return "", fmt.Errorf("reading terminal settings: %w", err)
		}
		noEcho := *old
		noEcho.Lflag &^= unix.ECHO
		t.mu.Lock()
		err = unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho)
		if err == nil {
			t.saved = old
		}
		t.mu.Unlock()
		if err != nil {
			return "", fmt.Errorf("turning off echo: %w", err)
		}
		defer t.restore()
	}
	fmt.Fprint(t.f, prompt)
	line, err := t.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// askPassphraseTerminal asks for the passphrase of an encrypted key on the controlling
// terminal, with echo off, as OpenVPN does ("Enter Private Key Password").
func askPassphraseTerminal(what string) ([]byte, error) {
	t, err := openTerminal(context.Background(), "an encrypted key needs a terminal to ask for its passphrase, or askpass FILE")
	if err != nil {
		return nil, err
	}
	defer t.close()
	line, err := t.ask(fmt.Sprintf("Enter Private Key Password (%s): ", what), false)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return []byte(line), nil
}
