package datachannel

import "testing"

var benchCiphers = []struct {
	name, cipher, digest string
	epoch                bool
}{
	{"AES-256-GCM", "AES-256-GCM", "", false},
	{"AES-128-GCM", "AES-128-GCM", "", false},
	{"CHACHA20-POLY1305", "CHACHA20-POLY1305", "", false},
	{"AES-256-CBC-SHA256", "AES-256-CBC", "SHA256", false},
	{"AES-256-GCM-epoch", "AES-256-GCM", "", true},
	{"CHACHA20-POLY1305-epoch", "CHACHA20-POLY1305", "", true},
}

const benchSize = 1400

func BenchmarkSeal(b *testing.B) {
	for _, c := range benchCiphers {
		b.Run(c.name, func(b *testing.B) {
			client, _ := pair(b, KeyParams{Cipher: c.cipher, Digest: c.digest, PeerID: 1, Epoch: c.epoch})
			buf := make([]byte, Headroom+benchSize+Tailroom)
			copy(buf[Headroom:], ipv4Packet(benchSize))
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Seal(buf, Headroom, benchSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen opens a batch of pre-sealed packets; when the batch runs
// out it is restored and the replay window reset outside the timer.
func BenchmarkOpen(b *testing.B) {
	const batch = 1024
	for _, c := range benchCiphers {
		b.Run(c.name, func(b *testing.B) {
			client, server := pair(b, KeyParams{Cipher: c.cipher, Digest: c.digest, PeerID: 1, Epoch: c.epoch})
			pristine := make([][]byte, batch)
			work := make([][]byte, batch)
			for i := range pristine {
				pristine[i] = sealCopy(b, client, ipv4Packet(benchSize))
				work[i] = make([]byte, len(pristine[i]))
				copy(work[i], pristine[i])
			}
			b.SetBytes(benchSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == batch {
					b.StopTimer()
					for j := range work {
						copy(work[j], pristine[j])
					}
					server.replay = newReplayWindow(DefaultReplayWindow)
					if server.epoch != nil {
						server.epoch.cur.replay.reset()
					}
					i = 0
					b.StartTimer()
				}
				if _, err := server.Open(work[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
