package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// askTerminal prompts for a username and password on the controlling terminal,
// with echo off for the password.
func askTerminal(ctx context.Context) (string, string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", "", fmt.Errorf("auth-user-pass needs a terminal or a credentials file: %w", err)
	}
	defer tty.Close()
	go func() {
		<-ctx.Done()
		tty.Close()
	}()
	r := bufio.NewReaderSize(tty, 512)
	fmt.Fprint(tty, "Enter Auth Username: ")
	user, err := r.ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("reading username: %w", err)
	}
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", "", fmt.Errorf("reading terminal settings: %w", err)
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", "", fmt.Errorf("turning off echo: %w", err)
	}
	fmt.Fprint(tty, "Enter Auth Password: ")
	pass, err := r.ReadString('\n')
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprintln(tty)
	if err != nil {
		return "", "", fmt.Errorf("reading password: %w", err)
	}
	user, pass = strings.TrimRight(user, "\r\n"), strings.TrimRight(pass, "\r\n")
	if user == "" {
		return "", "", errors.New("empty username")
	}
	return user, pass, nil
}

// askPassphraseTerminal asks for the passphrase of an encrypted key on the controlling
// terminal, with echo off, as OpenVPN does ("Enter Private Key Password").
func askPassphraseTerminal(what string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("an encrypted key needs a terminal to ask for its passphrase, or askpass FILE: %w", err)
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("reading terminal settings: %w", err)
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return nil, fmt.Errorf("turning off echo: %w", err)
	}
	fmt.Fprintf(tty, "Enter Private Key Password (%s): ", what)
	line, err := bufio.NewReaderSize(tty, 512).ReadString('\n')
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}
