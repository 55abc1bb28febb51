package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ManagementSocket is the unix socket of the server's management interface (with
// ManagementClientAuth or Management).
func (s *Server) ManagementSocket() string { return filepath.Join(s.dir, "management.sock") }

// Management is a connection to the server's management interface: commands and their
// SUCCESS/ERROR replies, and the real-time notifications (">CLIENT:...") in order.
type Management struct {
	conn net.Conn

	mu      sync.Mutex
	cond    *sync.Cond
	lines   []string // notifications not yet taken
	replies []string
	closed  bool
}

// Management connects to the server's management interface; the connection closes with the
// test.
func (s *Server) Management() *Management {
	s.lab.tb.Helper()
	c, err := net.Dial("unix", s.ManagementSocket())
	if err != nil {
		s.lab.tb.Fatalf("lab: connecting to the management interface: %v", err)
	}
	m := &Management{conn: c}
	m.cond = sync.NewCond(&m.mu)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(c)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			m.mu.Lock()
			switch {
			case strings.HasPrefix(line, ">"):
				m.lines = append(m.lines, line)
			case strings.HasPrefix(line, "SUCCESS:"), strings.HasPrefix(line, "ERROR:"):
				m.replies = append(m.replies, line)
			}
			m.cond.Broadcast()
			m.mu.Unlock()
		}
		m.mu.Lock()
		m.closed = true
		m.cond.Broadcast()
		m.mu.Unlock()
	}()
	s.lab.tb.Cleanup(func() {
		c.Close()
		<-done
	})
	return m
}

// wait blocks until cond holds (with m.mu held) or the deadline passes.
func (m *Management) wait(timeout time.Duration, cond func() bool) bool {
	t := time.AfterFunc(timeout, func() {
		m.mu.Lock()
		m.cond.Broadcast()
		m.mu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if m.closed || time.Now().After(deadline) {
			return cond()
		}
		m.cond.Wait()
	}
	return true
}

// Command sends one command and returns its SUCCESS line, or an error with the ERROR line.
func (m *Management) Command(cmd string) (string, error) {
	m.mu.Lock()
	n := len(m.replies)
	m.mu.Unlock()
	if _, err := fmt.Fprintf(m.conn, "%s\n", cmd); err != nil {
		return "", fmt.Errorf("management %q: %w", cmd, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.wait(10*time.Second, func() bool { return len(m.replies) > n }) {
		return "", fmt.Errorf("management %q: no reply", cmd)
	}
	r := m.replies[n]
	if strings.HasPrefix(r, "ERROR:") {
		return "", fmt.Errorf("management %q: %s", cmd, r)
	}
	return r, nil
}

// Next removes and returns the first notification that starts with prefix, waiting for it
// until ctx ends; notifications before it are dropped.
func (m *Management) Next(ctx context.Context, prefix string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		for i, l := range m.lines {
			if strings.HasPrefix(l, prefix) {
				m.lines = m.lines[i+1:]
				return l, nil
			}
		}
		m.lines = m.lines[:0]
		if m.closed {
			return "", fmt.Errorf("management interface closed while waiting for %q", prefix)
		}
		d, ok := ctx.Deadline()
		if !ok {
			d = time.Now().Add(time.Minute)
		}
		if time.Until(d) <= 0 || ctx.Err() != nil {
			return "", fmt.Errorf("waiting for management notification %q: %w", prefix, context.DeadlineExceeded)
		}
		m.wait(time.Until(d), func() bool { return len(m.lines) > 0 })
	}
}
