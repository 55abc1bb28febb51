package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestParseLevels(t *testing.T) {
	got, err := parseLevels("0, 0.05,0.3")
	if err != nil || len(got) != 3 || got[0] != 0 || got[1] != 0.05 || got[2] != 0.3 {
		t.Fatalf("parseLevels = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1", "-0.1", "NaN", "0.1,x"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q) accepted", bad)
		}
	}
}

func TestCountPackets(t *testing.T) {
	start := time.Unix(100, 0)
	r := faultRun{start: start, up: time.Second}
	at := func(d time.Duration) string { return strconv.FormatInt(start.Add(d).UnixNano(), 10) }
	log := strings.Join([]string{
		"ready",
		"pkt " + at(-time.Millisecond) + " c2s 7 42 pass", // before the start: another run's
		"pkt " + at(0) + " c2s 7 42 drop",
		"pkt " + at(time.Millisecond) + " c2s 7 42 pass",
		"pkt " + at(50*time.Millisecond) + " s2c 8 54 pass",
		"pkt " + at(60*time.Millisecond) + " c2s 4 300 pass",
		"pkt " + at(70*time.Millisecond) + " s2c 9 100 drop", // data packets do not count
		"pkt " + at(80*time.Millisecond) + " s2c 5 40 drop",
		"pkt " + at(2*time.Second) + " s2c 4 40 pass", // after tunnel up
		"pkt garbage",
	}, "\n")
	r.countPackets(log)
	if r.sent != [2]int{3, 2} || r.lost != [2]int{1, 1} {
		t.Fatalf("sent %v lost %v, want [3 2] [1 1]", r.sent, r.lost)
	}
}
