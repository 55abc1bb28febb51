package session

import (
	"testing"
)

// BenchmarkClampMSS measures the per-packet mssfix check: a SYN that is
// rewritten (then restored, so every round does the work) and a full-size
// data segment that is only looked at.
func BenchmarkClampMSS(b *testing.B) {
	clamp := mssClamp{v4: 1400, v6: 1380}
	b.Run("syn", func(b *testing.B) {
		p := tcpPacket(false, 0x02, synOpts(1460), nil, nil)
		orig := append([]byte(nil), p...)
		b.ReportAllocs()
		for b.Loop() {
			clampMSS(p, clamp)
			copy(p, orig)
		}
	})
	b.Run("data", func(b *testing.B) {
		p := tcpPacket(false, 0x10, nil, nil, make([]byte, 1400))
		b.ReportAllocs()
		for b.Loop() {
			clampMSS(p, clamp)
		}
	})
}

func TestClampMSSAllocatesNothing(t *testing.T) {
	p := tcpPacket(true, 0x02, synOpts(1460), nil, nil)
	if a := testing.AllocsPerRun(100, func() { clampMSS(p, mssClamp{v4: 1000, v6: 900}) }); a != 0 {
		t.Errorf("clampMSS: %v allocations, want 0", a)
	}
}
