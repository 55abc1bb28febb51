package session

import (
	"testing"
	"unsafe"
)

func TestBufArenaTake(t *testing.T) {
	a := newBufArena(arenaSize(100, 100, 4096))
	defer a.release()
	if a.mem == nil {
		t.Fatal("no mapping")
	}
	x, y, z := a.take(100), a.take(100), a.take(4096)
	for _, b := range [][]byte{x, y, z} {
		if uintptr(unsafe.Pointer(&b[0]))%arenaAlign != 0 {
			t.Errorf("buffer at %p is not %d-byte aligned", &b[0], arenaAlign)
		}
	}
	if len(x) != 100 || cap(x) != 100 {
		t.Errorf("take(100): len %d cap %d", len(x), cap(x))
	}
	// An append past a buffer's end must not write into the next one.
	y[0] = 7
	if x2 := append(x, 1); y[0] != 7 || &x2[0] == &x[0] {
		t.Error("append to one buffer grew it in place, over the next")
	}
	z[4095] = 1 // the last byte of the arena is writable
	// Beyond the arena, take falls back to the heap.
	if w := a.take(64); len(w) != 64 || sameMemory(w, a.mem) {
		t.Errorf("take past the end: len %d, in the arena %v", len(w), sameMemory(w, a.mem))
	}
	a.release()
	a.release() // twice is harmless
	var none *bufArena
	none.release()
}

func sameMemory(b, mem []byte) bool {
	p := uintptr(unsafe.Pointer(&b[0]))
	lo := uintptr(unsafe.Pointer(&mem[0]))
	return p >= lo && p < lo+uintptr(len(mem))
}
