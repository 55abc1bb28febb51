package daemon

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Logger receives the daemon's log lines. session and state are "" for lines that are not
// about one session.
type Logger interface {
	Log(level int, session, state, msg string)
}

// NewLogger logs to journald with the structured fields OVPND_SESSION and OVPND_STATE when
// the process runs under systemd (JOURNAL_STREAM is set and the journal socket is there),
// and to w (stderr when nil) otherwise.
func NewLogger(w io.Writer) Logger {
	if os.Getenv("JOURNAL_STREAM") != "" && journal.Enabled() {
		return journalLogger{}
	}
	if w == nil {
		// Without journald and without a writer, stderr: a nil writer used to make the
		// first line panic.
		w = os.Stderr
	}
	return &textLogger{w: w}
}

type journalLogger struct{}

func (journalLogger) Log(level int, session, state, msg string) {
	prio := journal.PriInfo
	switch {
	case level <= 0:
		prio = journal.PriErr
	case level >= 4:
		prio = journal.PriDebug
	}
	vars := map[string]string{}
	if session != "" {
		vars["OVPND_SESSION"] = session
	}
	if state != "" {
		vars["OVPND_STATE"] = state
	}
	if session != "" {
		// The name in the text too: `journalctl -u ovpnd` shows only the message.
		msg = "[" + session + "] " + msg
	}
	if err := journal.Send(msg, prio, vars); err != nil {
		fmt.Fprintf(os.Stderr, "%s\n", msg)
	}
}

type textLogger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *textLogger) Log(level int, session, state, msg string) {
	var b strings.Builder
	b.WriteString(time.Now().Format("2006-01-02 15:04:05 "))
	if session != "" {
		b.WriteString("[")
		b.WriteString(session)
		b.WriteString("] ")
	}
	b.WriteString(msg)
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, b.String())
}
