// Package memtrim gives memory back to the kernel at the moments a VPN client knows it can:
// after a TLS handshake. The data path allocates nothing, so what the Go heap holds beyond
// its live set after a handshake is the handshake's garbage, which the runtime would
// otherwise keep (the heap goal is twice the live heap) and return only slowly. And most of
// the executable's code and read-only data — configuration parsing, netlink and D-Bus
// set-up, start-up — runs only while connecting: on Linux 6.18 a page fault maps a whole
// large folio of the file, so nearly all of a 10 MB binary stays resident for the process's
// life unless it is paged out.
package memtrim

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// minInterval spaces out collections: with many sessions in one process (the daemon) their
// rekeys need not each collect.
const minInterval = time.Second

var (
	mu       sync.Mutex
	lastFree time.Time
)

// AfterConnect is for a tunnel that just came up: it returns the heap's free pages to the
// kernel (FreeHeap) and pages out the executable's read-only mappings (PageOutExecutable).
// It blocks for a garbage collection (a few ms).
func AfterConnect() {
	mu.Lock()
	defer mu.Unlock()
	freeHeap()
	PageOutExecutable()
}

// AfterRekey is for a tunnel that just installed renegotiated keys: it returns the heap's
// free pages to the kernel, unless that happened less than a second ago. The code a rekey
// runs stays mapped: it runs again at the next one.
func AfterRekey() {
	mu.Lock()
	defer mu.Unlock()
	freeHeap()
}

// freeHeap runs a garbage collection and releases every free span to the kernel, at most
// once per minInterval. mu is held.
func freeHeap() {
	now := time.Now()
	if !lastFree.IsZero() && now.Sub(lastFree) < minInterval {
		return
	}
	lastFree = now
	debug.FreeOSMemory()
}

// PageOutExecutable drops the executable's read-only mappings (code, read-only data, the
// function tables) from this process's resident set. MADV_RANDOM first, so that what the
// running code touches afterwards comes back a page at a time instead of as large folios
// with read-ahead. Then MADV_DONTNEED, which only unmaps: the pages stay in the page cache,
// so code that runs again (a reconnect, the next start of the binary) maps them back with a
// minor fault. MADV_PAGEOUT, used before, also evicted them from the page cache: every start
// and reconnect after it read the code from disk again, which doubled the time from start to
// tunnel up in the bench lab (median 56 against 28 ms, 10 alternated starts) and added 30-45
// ms to a reconnect. A mapping that holds private copies of its pages (written before it
// became read-only, as relocated data of a PIE or cgo build is) keeps MADV_PAGEOUT:
// MADV_DONTNEED would put the file's unrelocated contents back. Errors are ignored: nothing
// depends on the advice being taken.
func PageOutExecutable() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return
	}
	copied := privateCopies(smaps)
	for _, r := range readOnlyMappings(smaps, exe) {
		advice := unix.MADV_DONTNEED
		if copied[r[0]] {
			advice = unix.MADV_PAGEOUT
		}
		// The ranges are mappings, not Go memory: the raw calls need no slice over them.
		unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], unix.MADV_RANDOM)
		unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], uintptr(advice))
	}
}

// privateCopies returns the start addresses of the mappings in a /proc/PID/smaps text that
// hold anonymous pages ("Anonymous:" above 0 kB): for a file mapping, private copies of
// pages written since they were mapped. A mapping whose count cannot be read counts as one.
func privateCopies(smaps []byte) map[uintptr]bool {
	out := map[uintptr]bool{}
	var start uintptr
	inMapping, seen := false, false
	end := func() {
		if inMapping && !seen {
			out[start] = true
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 5 && bytes.IndexByte(f[0], '-') > 0 && !bytes.HasSuffix(f[0], []byte(":")) {
			end()
			lo, _, _ := bytes.Cut(f[0], []byte("-"))
			v, err := strconv.ParseUint(string(lo), 16, 64)
			start, inMapping, seen = uintptr(v), err == nil, false
			continue
		}
		if inMapping && len(f) >= 2 && string(f[0]) == "Anonymous:" {
			seen = true
			if n, err := strconv.ParseUint(string(f[1]), 10, 64); err != nil || n > 0 {
				out[start] = true
			}
		}
	}
	end()
	return out
}

// readOnlyMappings returns the [start, end) ranges of the mappings of file path in a
// /proc/PID/maps or /proc/PID/smaps text that are not writable.
func readOnlyMappings(maps []byte, path string) [][2]uintptr {
	var out [][2]uintptr
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		// The path is the rest of the line: it may hold spaces, and a replaced executable
		// reads "PATH (deleted)" both here and in /proc/self/exe.
		if len(f) < 6 || string(bytes.Join(f[5:], []byte(" "))) != path || len(f[1]) < 2 || f[1][1] == 'w' {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, [2]uintptr{uintptr(start), uintptr(end)})
	}
	return out
}
