package datachannel

import (
	"math/rand/v2"
	"testing"
)

func TestReplayWindow(t *testing.T) {
	type step struct {
		id uint64
		ok bool
	}
	tests := []struct {
		name  string
		size  int
		steps []step
	}{
		{"zero invalid", 64, []step{{0, false}, {1, true}, {0, false}}},
		{"in order", 64, []step{{1, true}, {2, true}, {3, true}}},
		{"duplicate", 64, []step{{1, true}, {1, false}, {2, true}, {1, false}, {2, false}}},
		{"reorder within window", 64, []step{{5, true}, {3, true}, {4, true}, {1, true}, {2, true}, {3, false}}},
		{"edge of window", 64, []step{{100, true}, {37, true}, {36, false}, {37, false}}},
		{"gaps", 64, []step{{1, true}, {10, true}, {5, true}, {9, true}, {5, false}, {2, true}}},
		{"word boundary", 64, []step{{63, true}, {64, true}, {65, true}, {127, true}, {128, true}, {66, true}, {66, false}, {64, false}}},
		{"big jump clears stale bits", 64, []step{{1, true}, {2, true}, {1 + 64*10, true}, {2 + 64*10, true}, {3 + 64*10, true}, {1 + 64*10, false}, {1 + 64*9 + 10, true}}},
		{"jump then old", 64, []step{{1000000, true}, {999937, true}, {999936, false}, {1, false}}},
		{"huge window", 1000, []step{{2000, true}, {1001, true}, {1000, false}, {1500, true}, {1500, false}}},
		{"max ids", 64, []step{{0xFFFFFFFE, true}, {0xFFFFFFFF, true}, {0xFFFFFFFE, false}, {0xFFFFFFC0, true}, {0xFFFFFFBF, false}}},
		{"48-bit epoch counters", 64, []step{{0xFFFFFFFF, true}, {0x100000000, true}, {0xFFFFFFFF, false}, {0xFFFFFFFFFFFF, true}, {0xFFFFFFFFFFC0, true}, {0xFFFFFFFFFFBF, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newReplayWindow(tt.size)
			for i, s := range tt.steps {
				if got := w.accept(s.id); got != s.ok {
					t.Fatalf("step %d: accept(%d) = %v, want %v", i, s.id, got, s.ok)
				}
			}
		})
	}
}

// TestReplayWindowModel compares the bitmap with a plain set over random
// id sequences with reordering, duplicates and jumps.
func TestReplayWindowModel(t *testing.T) {
	for _, size := range []int{1, 63, 64, 65, 200, 4096} {
		rng := rand.New(rand.NewPCG(uint64(size), 42))
		w := newReplayWindow(size)
		seen := map[uint64]bool{}
		var top uint64
		next := uint64(1)
		for i := 0; i < 20000; i++ {
			var id uint64
			switch r := rng.IntN(10); {
			case r < 5:
				id = next
				next++
			case r < 8:
				back := uint64(rng.IntN(size + 5))
				if back >= next {
					back = next - 1
				}
				id = next - back
			case r < 9:
				next += uint64(rng.IntN(3 * size))
				id = next
			default:
				id = uint64(rng.IntN(int(next) + 1))
			}
			want := id != 0 && !seen[id] && (id > top || top-id < uint64(size))
			if got := w.accept(id); got != want {
				t.Fatalf("size %d step %d: accept(%d) = %v, want %v (top %d)", size, i, id, got, want, top)
			}
			if want {
				seen[id] = true
				if id > top {
					top = id
				}
			}
		}
	}
}
