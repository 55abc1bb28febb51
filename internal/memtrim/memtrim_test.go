package memtrim

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestReadOnlyMappings(t *testing.T) {
	maps := []byte(`00400000-00903000 r-xp 00000000 fe:00 123 /usr/bin/ovpnd
00903000-00e13000 r--p 00503000 fe:00 123 /usr/bin/ovpnd
00e13000-00e49000 rw-p 00a13000 fe:00 123 /usr/bin/ovpnd
00e49000-02e8b000 rw-p 00000000 00:00 0
7f4261a73000-7f4261ac6000 r--p 00156000 fe:00 77 /usr/lib/x86_64-linux-gnu/libc.so.6
7f4261ac6000-7f4261aca000 r--p 00000000 fe:00 124 /usr/bin/ovpnd (deleted)
garbage line
zz-00 r-xp 0 0 0 /usr/bin/ovpnd
`)
	got := readOnlyMappings(maps, "/usr/bin/ovpnd")
	want := [][2]uintptr{{0x400000, 0x903000}, {0x903000, 0xe13000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("readOnlyMappings = %x, want %x", got, want)
	}
}

// rssFile is this process's RssFile in KiB.
func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssFile:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestPageOutExecutable checks that the executable's resident file pages shrink: the test
// binary, like ovpnd, has touched far more of itself than a short loop needs afterwards.
func TestPageOutExecutable(t *testing.T) {
	before := rssFile(t)
	PageOutExecutable()
	runtime.GC()
	after := rssFile(t)
	t.Logf("RssFile %d KiB -> %d KiB", before, after)
	if after >= before {
		t.Errorf("RssFile %d KiB after paging out the executable, %d KiB before", after, before)
	}
}

func TestAfterRekeySpacesCollections(t *testing.T) {
	var m0, m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m0)
	AfterConnect()
	runtime.ReadMemStats(&m1)
	AfterRekey() // within minInterval: nothing
	runtime.ReadMemStats(&m2)
	if m1.NumForcedGC <= m0.NumForcedGC {
		t.Errorf("AfterConnect did not collect: forced GCs %d -> %d", m0.NumForcedGC, m1.NumForcedGC)
	}
	if m2.NumForcedGC != m1.NumForcedGC {
		t.Errorf("AfterRekey within %v of a collection collected again: forced GCs %d -> %d", minInterval, m1.NumForcedGC, m2.NumForcedGC)
	}
}

// TestAfterRekeyPagesOut checks that a rekey, like a connect, pages the executable out: the
// TLS code a rekey runs is not needed again until the next one.
func TestAfterRekeyPagesOut(t *testing.T) {
	mu.Lock()
	lastFree = time.Time{} // as if the last collection were long ago
	mu.Unlock()
	before := rssFile(t)
	AfterRekey()
	after := rssFile(t)
	t.Logf("RssFile %d KiB -> %d KiB", before, after)
	if after >= before {
		t.Errorf("RssFile %d KiB after AfterRekey, %d KiB before", after, before)
	}
}
