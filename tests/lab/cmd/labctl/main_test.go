package main

import (
	"os"
	"testing"
)

func TestParseCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    float64
		wantErr bool
	}{
		{"plain", "1234 (openvpn) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 5 1000 200", 3.8, false},
		{"comm with paren and spaces", "77 (we ird) x) R 1 77 77 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 1000 200", 0.03, false},
		{"short", "77 (x) R 1 2", 0, true},
		{"no comm", "77 x R", 0, true},
		{"bad number", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 zz 1 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPU(tt.stat)
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("parseCPU = %v, %v; want %v, err %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseCPU(f *testing.F) {
	f.Add("1234 (openvpn) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 5 1000 200")
	f.Add(")))")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parseCPU(s); err == nil && v < 0 {
			t.Fatalf("negative CPU time %v", v)
		}
	})
}

func TestOwnProcessStats(t *testing.T) {
	if _, err := cpuSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	rss, hwm, err := memory(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("memory = %d, %d, %v", rss, hwm, err)
	}
}
