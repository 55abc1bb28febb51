package daemon

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
)

// TestLogRingKeepsUTF8: an over-long line cut at MaxLogLine must stay valid UTF-8 (D-Bus
// requires it), and the ring stays bounded.
func TestLogRingKeepsUTF8(t *testing.T) {
	o := newObject(nil, "t", 1000, &config.Config{}, nil)
	tests := []struct {
		name string
		msg  string
	}{
		{"cut inside a character", strings.Repeat("a", api.MaxLogLine-1) + "é and more"},
		{"cut inside a 4-byte character", strings.Repeat("a", api.MaxLogLine-2) + "😀 more"},
		{"invalid bytes", "bad \xff\xfe bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o.addLog(time.Unix(0, 0), 1, tt.msg)
			got := o.ring[len(o.ring)-1].msg
			if !utf8.ValidString(got) {
				t.Errorf("kept line is not valid UTF-8: %q", got[max(0, len(got)-8):])
			}
			if len(got) > api.MaxLogLine+len("\uFFFD") {
				t.Errorf("kept line is %d bytes", len(got))
			}
		})
	}
	for range 2 * api.LogHistoryLines {
		o.addLog(time.Unix(0, 0), 1, "x")
	}
	if len(o.ring) != api.LogHistoryLines {
		t.Errorf("ring holds %d lines, want %d", len(o.ring), api.LogHistoryLines)
	}
}
