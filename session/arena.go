package session

import "golang.org/x/sys/unix"

// bufArena is the packet memory of one data path (its send and receive buffers, the head
// buffers of coalesced tun writes and the decompression scratch), carved from one anonymous
// mapping outside the Go heap. The buffers live as long as the tun device and hold no
// pointers, so the garbage collector has nothing to do with them; on the heap they were
// about 400 allocations, which made their allocation start the process's first collection
// in the middle of connecting, and they doubled the heap's goal for the rest of its life.
// Pages are touched, and so resident, only once packets use them, as before.
type bufArena struct {
	mem []byte // the mapping; nil when mmap failed and the heap backs the buffers
	off int
}

// arenaAlign keeps every buffer cache-line aligned.
const arenaAlign = 64

// arenaSize is what take needs for buffers of the given sizes.
func arenaSize(sizes ...int) int {
	n := 0
	for _, s := range sizes {
		n += (s + arenaAlign - 1) &^ (arenaAlign - 1)
	}
	return n
}

func newBufArena(size int) *bufArena {
	if size <= 0 {
		return &bufArena{}
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return &bufArena{} // the heap will do
	}
	return &bufArena{mem: mem}
}

// take returns the next n bytes of the arena (zeroed, as fresh mappings are), or a heap
// buffer when the arena cannot hold them. Its capacity ends at n, so an append never runs
// into the next buffer.
func (a *bufArena) take(n int) []byte {
	if a.mem == nil || a.off+n > len(a.mem) {
		return make([]byte, n)
	}
	b := a.mem[a.off : a.off+n : a.off+n]
	a.off += (n + arenaAlign - 1) &^ (arenaAlign - 1)
	return b
}

// release unmaps the arena. Every goroutine that used its buffers must have returned:
// a later access would fault.
func (a *bufArena) release() {
	if a != nil && a.mem != nil {
		unix.Munmap(a.mem)
		a.mem = nil
	}
}
