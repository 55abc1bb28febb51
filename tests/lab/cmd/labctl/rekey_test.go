package main

import (
	"testing"
	"time"
)

const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0
 veth0: 9876543   12345    0    0    0     0          0         0  1234567    2345    0    0    0     0       0          0
  tun0: 5000000    4000    0    0    0     0          0         0   700000    3000    0    0    0     0       0          0
`

func TestTunRxBytes(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       uint64
		wantErr    bool
	}{
		{"one tun", netDev, 5000000, false},
		{"two tuns", netDev + "  tun1:     100 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", 5000100, false},
		{"no tun", "    lo: 1 2 3\n", 0, true},
		{"no counters", "  tun0:\n", 0, true},
		{"bad number", "  tun0: x 1 2\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tunRxBytes(tc.text)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("tunRxBytes = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzTunRxBytes(f *testing.F) {
	f.Add(netDev)
	f.Add("tun0: 18446744073709551615\ntun1: 1\n")
	f.Add(":::")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := tunRxBytes(s); err != nil && n != 0 {
			t.Fatalf("%d bytes with error %v", n, err)
		}
	})
}

func TestFindStalls(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// Bytes every 5 ms, except nothing new from 100 to 450 ms and from 600 to 750 ms; the
	// quiet start and end are iperf3's, not stalls.
	var s []tunSample
	var b uint64
	for at := 0; at <= 1000; at += 5 {
		quiet := at < 50 || (at > 100 && at <= 450) || (at > 600 && at <= 750) || at > 950
		if !quiet {
			b += 1000
		}
		s = append(s, tunSample{at: ms(at), bytes: b})
	}
	got := findStalls(s, 200*time.Millisecond)
	if len(got) != 1 || got[0].d != 350*time.Millisecond || !got[0].start.Equal(ms(100)) {
		t.Errorf("stalls %v, want one of 350ms from 100ms", got)
	}
	got = findStalls(s, 100*time.Millisecond)
	if len(got) != 2 || got[1].d != 150*time.Millisecond {
		t.Fatalf("stalls over 100ms %v, want 350ms and 150ms", got)
	}
	// A handshake between the two stalls, after the first ended, counts for the second only.
	got = atRekeys(got, []time.Time{ms(560)})
	if got[0].rekey || !got[1].rekey {
		t.Errorf("handshake at 560ms: rekey marks %v, %v; want false, true", got[0].rekey, got[1].rekey)
	}
	if got := findStalls(nil, time.Millisecond); len(got) != 0 {
		t.Errorf("stalls without samples: %v", got)
	}
}
