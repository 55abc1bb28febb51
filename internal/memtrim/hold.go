package memtrim

import (
	"os"
	"runtime/debug"
	"sync"
)

// A process's first connection allocates a few MB in a few ms (configuration, certificates,
// the tun device's tables, the TLS handshake), which makes the garbage collector run in the
// middle of it: about 2 ms of a start to tunnel up in `labctl handshake`, with the collection's
// pauses and its assists on the handshake's goroutines. Nothing of that is worth
// collecting before the tunnel is up, when AfterConnect collects anyway.

var hold struct {
	sync.Mutex
	on       bool
	oldPct   int
	oldLimit int64
}

// HoldCollection turns the garbage collector off until EndHold, for a process about to make
// its first connection. limit bounds the heap meanwhile (debug.SetMemoryLimit): a heap that
// reaches it is collected as usual. A user's GOGC or GOMEMLIMIT wins: then it does nothing.
func HoldCollection(limit int64) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	hold.Lock()
	defer hold.Unlock()
	if hold.on {
		return
	}
	hold.on = true
	hold.oldLimit = debug.SetMemoryLimit(limit)
	hold.oldPct = debug.SetGCPercent(-1)
}

// EndHold gives the garbage collector back its settings from before HoldCollection; without
// a hold it does nothing. AfterConnect calls it, and a session calls it when its first
// attempt ends without a connection.
func EndHold() {
	hold.Lock()
	defer hold.Unlock()
	if !hold.on {
		return
	}
	hold.on = false
	debug.SetGCPercent(hold.oldPct)
	debug.SetMemoryLimit(hold.oldLimit)
}
