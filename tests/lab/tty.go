package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// StartClientProcessTTY starts a long-running command in the client namespace with a new
// pseudo-terminal as its controlling terminal, stdin, stdout and stderr, the way a user runs
// it in a terminal window. Output holds what the terminal showed, including the echo of what
// Type sends while the program leaves echo on, so a test sees whether a secret was echoed.
func (l *Lab) StartClientProcessTTY(args ...string) *Process {
	l.tb.Helper()
	return l.StartClientProcessTTYEnv(nil, args...)
}

// StartClientProcessTTYEnv is StartClientProcessTTY with env added to the environment.
func (l *Lab) StartClientProcessTTYEnv(env []string, args ...string) *Process {
	l.tb.Helper()
	p, err := startProcessTTY(l.ClientNS, env, args...)
	if err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	l.tb.Cleanup(func() { p.Kill() })
	return p
}

func startProcessTTY(ns string, env []string, args ...string) (*Process, error) {
	if len(args) == 0 {
		return nil, errors.New("starting process: no command")
	}
	master, slave, err := openPTY()
	if err != nil {
		return nil, err
	}
	defer slave.Close()
	p := &Process{name: filepath.Base(args[0]), done: make(chan struct{}), tty: master}
	p.cmd = nsCommand(context.Background(), ns, args...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	// A new session whose controlling terminal is the pty (fd 0 in the child).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		master.Close()
		return nil, fmt.Errorf("starting %q in %s: %w", strings.Join(args, " "), ns, err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.out.Write(buf[:n])
			if err != nil {
				return // EIO once the last holder of the terminal closed it
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		select {
		case <-readDone:
		case <-time.After(2 * time.Second):
		}
		master.Close()
		<-readDone
		close(p.done)
	}()
	return p, nil
}

// Type writes s to the process's terminal as if typed (a newline ends a line).
func (p *Process) Type(s string) error {
	if p.tty == nil {
		return errors.New("lab: process has no terminal")
	}
	_, err := p.tty.Write([]byte(s))
	return err
}

// openPTY opens a new pseudo-terminal pair (/dev/ptmx, unlocked).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx: %w", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("unlocking pty: %w", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("finding pty number: %w", e)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("opening pty: %w", err)
	}
	return master, slave, nil
}
