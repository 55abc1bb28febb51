package memtrim

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

func TestHoldCollection(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT set: HoldCollection leaves the collector alone")
	}
	pct := debug.SetGCPercent(100)
	defer debug.SetGCPercent(pct)
	HoldCollection(16 << 20)
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GC percent %d during the hold, want -1 (off)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 16<<20 {
		t.Errorf("memory limit %d during the hold, want %d", got, 16<<20)
	}
	EndHold()
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Errorf("GC percent %d after the hold, want 100 back", got)
	}
	debug.SetGCPercent(100)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d after the hold, want none", got)
	}
	EndHold() // without a hold: nothing
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Errorf("a second EndHold changed the GC percent to %d", got)
	}
}

func TestHoldCollectionLeavesUserSettings(t *testing.T) {
	t.Setenv("GOGC", "200")
	pct := debug.SetGCPercent(150)
	defer debug.SetGCPercent(pct)
	HoldCollection(16 << 20)
	defer EndHold()
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("HoldCollection changed the GC percent to %d although GOGC is set", got)
	}
}
