package tlspipe

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// echo reads lines and writes back each one upper-cased; "quit" ends it with an error and
// "panic" panics.
func echo(conn net.Conn) error {
	buf := make([]byte, 0, 64)
	tmp := make([]byte, 3) // small reads: Feed must wait for all input to be consumed
	for {
		n, err := conn.Read(tmp)
		if err != nil {
			return err
		}
		buf = append(buf, tmp[:n]...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			line := string(buf[:i])
			buf = buf[i+1:]
			switch line {
			case "quit":
				return errors.New("asked to quit")
			case "panic":
				panic("asked to panic")
			}
			if _, err := conn.Write([]byte(strings.ToUpper(line) + "\n")); err != nil {
				return err
			}
		}
	}
}

func TestPipe(t *testing.T) {
	tests := []struct {
		name    string
		feeds   []string
		want    string // TakeOutput after all feeds
		exited  bool
		wantErr string
	}{
		{"nothing", nil, "", false, ""},
		{"one line", []string{"abc\n"}, "ABC\n", false, ""},
		{"line split across feeds", []string{"ab", "cdefg", "h\nij", "\n"}, "ABCDEFGH\nIJ\n", false, ""},
		{"several lines in one feed", []string{"a\nbb\nccc\ndddd\n"}, "A\nBB\nCCC\nDDDD\n", false, ""},
		{"empty feed", []string{"", "x\n", ""}, "X\n", false, ""},
		{"fn returns error", []string{"a\nquit\nb\n"}, "A\n", true, "asked to quit"},
		{"fn panics", []string{"a\npanic\n"}, "A\n", true, "panicked: asked to panic"},
		{"feed after exit ignored", []string{"quit\n", "a\n"}, "", true, "asked to quit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			p := New()
			p.Start(echo)
			for _, f := range tt.feeds {
				p.Feed([]byte(f))
			}
			if got := string(p.TakeOutput()); got != tt.want {
				t.Fatalf("output %q, want %q", got, tt.want)
			}
			if got := p.TakeOutput(); got != nil {
				t.Fatalf("output not drained: %q", got)
			}
			if p.Exited() != tt.exited {
				t.Fatalf("Exited = %v, want %v", p.Exited(), tt.exited)
			}
			p.Close()
			err := p.Err()
			if tt.wantErr == "" {
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Err after Close = %v, want net.ErrClosed", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Err = %v, want %q", err, tt.wantErr)
			}
			checkNoLeak(t, base)
		})
	}
}

func TestPipeStartWaitsForFirstRead(t *testing.T) {
	p := New()
	p.Start(func(conn net.Conn) error {
		// Output written before the first Read must be visible when Start returns.
		if _, err := conn.Write([]byte("hello")); err != nil {
			return err
		}
		_, err := conn.Read(make([]byte, 1))
		return err
	})
	if got := string(p.TakeOutput()); got != "hello" {
		t.Fatalf("after Start: %q", got)
	}
	p.Close()
}

func TestPipeFeedBeforeStart(t *testing.T) {
	p := New()
	p.Feed([]byte("early\n"))
	p.Start(echo)
	if got := string(p.TakeOutput()); got != "EARLY\n" {
		t.Fatalf("buffered input not processed by Start: %q", got)
	}
	p.Start(echo) // second Start does nothing
	p.Feed([]byte("again\n"))
	if got := string(p.TakeOutput()); got != "AGAIN\n" {
		t.Fatalf("%q", got)
	}
	p.Close()
}

func TestPipeCloseBeforeStart(t *testing.T) {
	p := New()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Feed([]byte("x")) // closed: discarded, does not block
	if p.Err() != nil || p.Exited() {
		t.Fatalf("never-started pipe: Err %v Exited %v", p.Err(), p.Exited())
	}
}

func TestPipeFnReturnsWithoutReading(t *testing.T) {
	p := New()
	p.Start(func(conn net.Conn) error {
		_, err := conn.Write([]byte("bye"))
		return err
	})
	<-p.Done()
	if p.Err() != nil || string(p.TakeOutput()) != "bye" {
		t.Fatalf("Err %v", p.Err())
	}
	p.Feed([]byte("nobody listens")) // must not block
	p.Close()
	p.Close() // idempotent
}

func TestPipeConnSide(t *testing.T) {
	p := New()
	c := p.Conn()
	if c.LocalAddr().String() != "tlspipe" || c.RemoteAddr().Network() != "tlspipe" {
		t.Fatalf("addrs %v %v", c.LocalAddr(), c.RemoteAddr())
	}
	for _, f := range []func(time.Time) error{c.SetDeadline, c.SetReadDeadline, c.SetWriteDeadline} {
		if err := f(time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	var readErr, writeErr error
	var zeroRead int
	p.Start(func(conn net.Conn) error {
		zeroRead, _ = conn.Read(nil) // an empty read must not block
		// The TLS side closes its end (as tls.Conn.Close does) from its own goroutine; that
		// must not wait for itself.
		if err := conn.Close(); err != nil {
			return err
		}
		_, readErr = conn.Read(make([]byte, 1))
		_, writeErr = conn.Write([]byte("x"))
		return io.EOF
	})
	<-p.Done()
	if zeroRead != 0 || !errors.Is(readErr, net.ErrClosed) || !errors.Is(writeErr, net.ErrClosed) {
		t.Fatalf("after Conn.Close: read %v write %v", readErr, writeErr)
	}
	if !errors.Is(p.Err(), io.EOF) {
		t.Fatalf("Err = %v", p.Err())
	}
	p.Close()
}

// checkNoLeak waits (without sleeping) until the goroutine count is back at base.
func checkNoLeak(t *testing.T, base int) {
	t.Helper()
	for range 100_000 {
		if runtime.NumGoroutine() <= base {
			return
		}
		runtime.Gosched()
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
}
