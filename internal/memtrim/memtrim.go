// Package memtrim gives memory back to the kernel at the moments a VPN client knows it can:
// after a TLS handshake. The data path allocates nothing, so what the Go heap holds beyond
// its live set after a handshake is the handshake's garbage, which the runtime would
// otherwise keep (the heap goal is twice the live heap) and return only slowly. And most of
// the executable's code and read-only data — configuration parsing, netlink and D-Bus
// set-up, start-up, the TLS handshake — runs only while connecting or rekeying: on Linux
// 6.18 a page fault maps a whole
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

// AfterConnect is for a tunnel that just came up: it ends a HoldCollection, returns the
// heap's free pages to the kernel (FreeHeap) and pages out the executable's read-only
// mappings (PageOutExecutable).
// It blocks for a garbage collection (a few ms).
func AfterConnect() {
	EndHold()
	mu.Lock()
	defer mu.Unlock()
	freeHeap()
	PageOutExecutable()
}

// AfterRekey is for a tunnel that just installed renegotiated keys: it returns the heap's
// free pages to the kernel and pages the executable out again, unless that happened less
// than a second ago. A rekey runs much code the data path does not (TLS, certificate
// checks, key derivation: about 3 MB of the executable's pages in the bench's session), and
// it runs again only at the next rekey, an hour later with OpenVPN's default reneg-sec; the
// data path's own code (about 1 MB) comes back a page at a time. It blocks for a garbage
// collection (a few ms).
func AfterRekey() {
	mu.Lock()
	defer mu.Unlock()
	if freeHeap() {
		PageOutExecutable()
	}
}

// freeHeap runs a garbage collection and releases every free span to the kernel, at most
// once per minInterval; it reports whether it did. mu is held.
func freeHeap() bool {
	now := time.Now()
	if !lastFree.IsZero() && now.Sub(lastFree) < minInterval {
		return false
	}
	lastFree = now
	debug.FreeOSMemory()
	return true
}

// PageOutExecutable asks the kernel to reclaim the pages of the executable's read-only
// mappings (code, read-only data, the function tables). MADV_PAGEOUT never changes memory
// contents and leaves pages that another process maps; MADV_RANDOM first, so that what the
// running code touches afterwards comes back a page at a time instead of as large folios
// with read-ahead. The pages leave the page cache too, so cold code would be read from disk
// the next time it runs (a reconnect, the next start of the binary): RefillExecutable reads
// them back before that. Errors are ignored: nothing depends on the advice being taken.
func PageOutExecutable() {
	adviseExecutable(unix.MADV_RANDOM, unix.MADV_PAGEOUT)
}

// RefillExecutable reads the executable's read-only mappings back into the page cache
// (MADV_WILLNEED: read-ahead in the background; nothing is mapped, so the resident set does
// not grow). PageOutExecutable's MADV_PAGEOUT evicts the pages from the page cache too, and
// without this a reconnect, and the next start of the binary, read their code from disk a
// page at a time: in the bench lab a start then took 1.24x OpenVPN's (median 50.9 against 41.1
// ms, 12 alternated starts at load average ~8, the slowest 150-260 ms of it before main) and a
// reconnect 1.02x. The session calls it before it reconnects after a connection that was up
// and when it ends; the next AfterConnect trims the resident set again. Errors are ignored.
func RefillExecutable() {
	adviseExecutable(unix.MADV_WILLNEED)
}

// adviseExecutable gives each read-only mapping of the executable the advice, in order.
func adviseExecutable(advice ...int) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	for _, r := range readOnlyMappings(maps, exe) {
		for _, a := range advice {
			// The ranges are mappings, not Go memory: the raw call needs no slice over them.
			unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], uintptr(a))
		}
	}
}

// readOnlyMappings returns the [start, end) ranges of the mappings of file path in a
// /proc/PID/maps text that are not writable.
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
