package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// pkttyagent is polkit's text authentication agent (Debian: package polkitd).
var pkttyagent = "/usr/bin/pkttyagent"

// agentRegisterTimeout bounds the wait for pkttyagent to register with polkit.
const agentRegisterTimeout = 15 * time.Second

// callInteractive makes a call that polkit may answer by asking for authentication, as
// systemctl does: when standard input is a terminal, a pkttyagent registered for this
// process asks for the password there, and the call carries ALLOW_INTERACTIVE_AUTHORIZATION
// so that the daemon lets polkit ask. Elsewhere (scripts, no agent) it is a plain call.
func callInteractive(c *dbus.Conn, dest string, path dbus.ObjectPath, method string, stderr io.Writer, args ...any) *dbus.Call {
	if !stdinIsTerminal() {
		return c.Object(dest, path).Call(method, 0, args...)
	}
	stop, err := startAgent()
	if err != nil {
		fmt.Fprintf(stderr, "ovpnctl: no polkit agent, so no authentication can be asked for: %v\n", err)
		return c.Object(dest, path).Call(method, 0, args...)
	}
	defer stop()
	return <-c.Send(interactiveCall(dest, path, method, args...), make(chan *dbus.Call, 1)).Done
}

// interactiveCall builds the method call by hand: godbus's BusObject.Call drops the
// ALLOW_INTERACTIVE_AUTHORIZATION flag.
func interactiveCall(dest string, path dbus.ObjectPath, method string, args ...any) *dbus.Message {
	iface, member := "", method
	if i := strings.LastIndexByte(method, '.'); i >= 0 {
		iface, member = method[:i], method[i+1:]
	}
	msg := &dbus.Message{
		Type:  dbus.TypeMethodCall,
		Flags: dbus.FlagAllowInteractiveAuthorization,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(dest),
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldMember:      dbus.MakeVariant(member),
		},
		Body: args,
	}
	if iface != "" {
		msg.Headers[dbus.FieldInterface] = dbus.MakeVariant(iface)
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return msg
}

func stdinIsTerminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}

// startAgent runs pkttyagent for this process and waits until it has registered; stop ends
// it and waits for it.
func startAgent() (stop func(), err error) {
	if _, err := os.Stat(pkttyagent); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// The agent gets fd 3 and closes it once registered (--notify-fd).
	cmd := exec.Command(pkttyagent, "--process", strconv.Itoa(os.Getpid()), "--notify-fd", "3", "--fallback")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	w.Close()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop = func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		<-exited
	}
	registered := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(r).ReadByte()
		if errors.Is(err, io.EOF) {
			err = nil
		}
		registered <- err
	}()
	select {
	case err := <-registered:
		if err != nil {
			stop()
			return nil, fmt.Errorf("waiting for %s: %w", pkttyagent, err)
		}
	case <-exited:
		return nil, fmt.Errorf("%s exited without registering", pkttyagent)
	case <-time.After(agentRegisterTimeout):
		stop()
		return nil, fmt.Errorf("%s did not register within %v", pkttyagent, agentRegisterTimeout)
	}
	return stop, nil
}
