package session

import (
	"sync"
	"testing"
)

func TestCBCConcurrentSealOpen(t *testing.T) {
	ck, sk := realKeyPair(t, "AES-256-CBC", "SHA256")
	// server->client packets for the client to open while it seals.
	var in [][]byte
	for i := 0; i < 3000; i++ {
		buf := make([]byte, 200+100+64)
		p, _ := sk.Seal(buf, 128, 100)
		in = append(in, p)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, p := range in {
			if _, err := ck.Open(p); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var out [][]byte
	for i := 0; i < 3000; i++ {
		buf := make([]byte, 200+1400+64)
		p, _ := ck.Seal(buf, 128, 1400)
		out = append(out, p)
	}
	wg.Wait()
	bad := 0
	for _, p := range out {
		if _, err := sk.Open(p); err != nil {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d failed", bad, len(out))
	}
}
