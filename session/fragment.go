package session

/* --fragment on the data path (OpenVPN's fragment.c, codec in engine/fragment).
 *
 * OpenVPN frames a payload for compression, then fragments it, then encrypts
 * each piece, so every data packet of a connection with --fragment starts,
 * inside the encryption, with a 4-byte fragment header:
 *
 *   tun -> mssfix -> Frame -> fits? header "whole" + SealFramed in place
 *                           : Split -> copy each piece behind its header into a
 *                             fragment buffer -> SealFramed
 *   socket -> OpenFramed -> Reassembler.Incoming -> whole packet? Unframe -> tun
 *
 * Packets that fit (the usual case: mssfix keeps TCP segments below the
 * fragment size) cost the 4 header bytes and nothing else. Larger ones are
 * copied into a second set of buffers allocated with the data path; the
 * reassembler's buffers are allocated once too, so neither direction
 * allocates per packet. The tun reader owns the fragmenter and its buffers,
 * the socket reader the reassembler, which a new connection starts empty.
 */

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/fragment"
)

// fragmentConfig is the profile's fragment setting.
type fragmentConfig struct {
	N     int  // fragment BYTES; 0 = off
	Encap bool // the "mtu" flag: N includes the outer IP and UDP headers
}

func fragmentFromConfig(c *config.Config) fragmentConfig {
	return fragmentConfig{N: c.Fragment, Encap: c.FragmentMTU}
}

// fragmentLink is the largest data packet, in bytes of UDP payload, that the
// fragment setting allows on a transport (0: fragmentation off).
func fragmentLink(f fragmentConfig, t transportInfo) int {
	if f.N <= 0 {
		return 0
	}
	link := f.N - t.extra
	if f.Encap {
		link -= outerHeaders(t)
	}
	return max(link, 1)
}

// fragmentPieceFor is the largest payload piece for keys with this overhead.
func fragmentPieceFor(link int, fo datachannel.FrameOverhead) int {
	id := 0
	if fo.Block > 0 {
		id = datachannel.PacketIDSize
	}
	return max(fragment.MaxPiece(link, fo.Header, fo.Block, id), 1)
}

// fragmentSlack is what a reassembled payload may carry beyond the tun MTU:
// compression framing, with room to spare. OpenVPN sizes its reassembly
// buffers from its own frame and drops larger packets too.
const fragmentSlack = 64

// fragState is the data path's fragmentation state (nil without --fragment).
type fragState struct {
	cfg fragmentConfig
	// tx: owned by RoutineTunToSocket.
	frag  *fragment.Fragmenter
	fbufs [][]byte
	// rx: owned by RoutineSocketToTun.
	reasm *fragment.Reassembler
}

func newFragState(cfg fragmentConfig, mtu, txBufSize, rxBufSize int) *fragState {
	f := &fragState{
		cfg:   cfg,
		frag:  fragment.NewFragmenter(uint8(rand.Uint32())),
		fbufs: make([][]byte, maxBatch),
		// Room for the largest tun-mtu a server may push (IV_MTU, as OpenVPN
		// sizes its buffers from tun-max-mtu).
		reasm: fragment.NewReassembler(min(max(mtu, engine.DefaultTunMaxMTU)+fragmentSlack, rxBufSize-tunWriteOffset)),
	}
	for i := range f.fbufs {
		f.fbufs[i] = make([]byte, txBufSize)
	}
	return f
}

// sealFragmented is sealAndSend with --fragment: every payload gets a
// fragment header, and payloads above the piece size go out in pieces.
func (d *dataPath) sealFragmented(ks *keySet, c *connRef, n int) {
	const hs = fragment.HeaderSize
	k := ks.primary
	fs := d.frag
	out := d.tx.out[:0]
	used := 0 // fragment buffers holding pieces not yet sent
	var bytes, pkts uint64
	var dropped int
	flush := func() bool {
		if len(out) > 0 {
			if err := c.conn.WriteBatch(out); err != nil {
				d.cnt.dropped.Add(uint64(len(out)))
				c.fail(&transportError{err})
				return false
			}
		}
		out, used = out[:0], 0
		return true
	}
	for i := 0; i < n; i++ {
		sz := d.tx.sizes[i]
		buf := d.tx.bufs[i]
		if ks.mss.v4 != 0 {
			clampMSS(buf[d.txOff:d.txOff+sz], ks.mss)
		}
		start, end := k.Frame(buf, d.txOff, sz)
		if end-start <= ks.fragPiece {
			if len(out) == cap(out) && !flush() {
				return
			}
			fragment.PutWhole(buf[start-hs:])
			pkt, err := k.SealFramed(buf, start-hs, end-start+hs)
			if err != nil {
				dropped++
				continue
			}
			out = append(out, pkt)
		} else {
			sp, err := fs.frag.Split(end-start, ks.fragPiece)
			if err != nil {
				dropped++
				continue
			}
			if (len(out)+sp.Count > cap(out) || used+sp.Count > len(fs.fbufs)) && !flush() {
				return
			}
			sealed := true
			for j := 0; j < sp.Count; j++ {
				o, m := sp.Piece(j)
				fb := fs.fbufs[used]
				used++
				sp.PutHeader(fb[d.txOff:], j)
				copy(fb[d.txOff+hs:], buf[start+o:start+o+m])
				pkt, err := k.SealFramed(fb, d.txOff, hs+m)
				if err != nil {
					sealed = false
					break
				}
				out = append(out, pkt)
			}
			if !sealed {
				// The peer cannot rebuild it without every piece; what went
				// out of it expires in its reassembler.
				dropped++
				continue
			}
		}
		bytes += uint64(sz)
		pkts++
	}
	if dropped > 0 {
		d.cnt.dropped.Add(uint64(dropped))
	}
	if !flush() {
		return
	}
	d.tx.out = out[:0]
	if pkts > 0 {
		d.cnt.bytesOut.Add(bytes)
		d.cnt.packetsOut.Add(pkts)
		d.cnt.lastSent.Store(time.Now().UnixNano())
	}
}

// fragment results of openFragment besides a payload.
const (
	fragOK      = iota
	fragBad     // authentication or framing failed
	fragDropped // an authentic payload the reassembler refused
	fragPartial // an authentic piece; the packet is not complete yet
	fragReplay  // a replayed packet id
)

// openFragment decrypts the datagram pkt, which lies in buf, with
// --fragment and returns the payload of a complete packet inside buf (or in
// the decompression scratch buffer).
func (d *dataPath) openFragment(k dataKeys, buf, pkt []byte, now time.Time) ([]byte, int) {
	p, err := k.OpenFramed(pkt)
	if errors.Is(err, datachannel.ErrReplay) {
		return nil, fragReplay
	}
	if err != nil {
		return nil, fragBad
	}
	whole, err := d.frag.reasm.Incoming(now, p)
	if err != nil {
		return nil, fragDropped
	}
	if whole == nil {
		return nil, fragPartial
	}
	if _, inside := offsetIn(buf, whole); !inside {
		// Reassembled in the reassembler's own buffer: bring it into this
		// datagram's buffer, which is larger than any packet it rebuilds.
		n := copy(buf[tunWriteOffset:], whole)
		whole = buf[tunWriteOffset : tunWriteOffset+n]
	}
	payload, err := k.Unframe(whole, d.rx.scratch)
	if err != nil {
		return nil, fragBad
	}
	return payload, fragOK
}
