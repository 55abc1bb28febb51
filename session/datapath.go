package session

/* The data path moves IP packets between the tun device and the socket without
 * involving the control loop:
 *
 *   RoutineTunToSocket: tun.Read(batch) -> keys.Seal in place -> transport.WriteBatch
 *   RoutineSocketToTun: transport.ReadBatch -> data? keys.Open in place -> ping? note : tun.Write(batch)
 *                                              control? copy -> control loop channel
 *
 * Each routine owns its buffers, allocated once; a packet is never copied on the
 * fast path (Seal and Open work in place inside the buffer it was read into). The
 * only shared state is the key set, swapped by the control loop through an atomic
 * pointer and loaded once per batch, and the counters, which are atomics added once
 * per batch. Seal is safe for concurrent use; Open is only called by the socket
 * reader, which is the single goroutine the datachannel contract requires.
 *
 * The key set also carries the mssfix clamp (mss.go), recomputed by the control
 * side whenever keys, the profile's or the pushed mssfix change, so the loops
 * rewrite TCP SYNs in both directions without any extra shared state. Over UDP
 * the socket reader moderates its wake-ups during a stream (see rxTargetBatch):
 * batches, not single datagrams, are what make the tun write's GRO and the
 * per-batch costs pay off.
 */

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/fragment"
)

const (
	// maxBatch is the number of packets moved per batch; it matches the tun
	// package's batch size with offloads (conn.IdealBatchSize).
	maxBatch = 128
	// tunWriteOffset leaves room before each packet for the virtio header that the
	// tun package writes in front of it (10 bytes), rounded up for alignment.
	tunWriteOffset = 16
	// rxBufMin is the smallest socket receive buffer (rxBufSizeFor). A buffer holds
	// one datagram or TCP frame, then its decrypted packet in place; the tun package
	// coalesces TCP segments (GRO) by appending to a flow's first buffer, and those
	// starts are copied into the head buffers (grohead.go), so spare room here only
	// lets a flow beyond the heads coalesce a second segment. Under a download every
	// buffer gets written, so their size is memory: one page each, 512 KiB for the
	// 128, where 16 KiB buffers held 2 MiB (make bench-memory: the session's
	// anonymous memory under traffic fell from 5.8 to 4.5 MB).
	rxBufMin = 4 << 10
	// Receive moderation (RoutineSocketToTun): in the middle of a stream (the
	// previous batch came less than rxStreamGap ago) the socket reader pauses
	// after a batch of fewer than rxTargetBatch packets, as NICs moderate
	// their interrupts. The pause adapts to the arrival rate so that the next
	// batch comes close to rxTargetBatch, between rxModerationMin and
	// rxModerationMax (about 45 full-size datagrams at 1 Gbit/s); it starts at
	// rxModerationStart. Every pause saves a wake-up, a receive call, a tun
	// write and the ACK that write makes the kernel send back through the tun
	// reader; the price is at most rxModerationMax of extra delay for packets
	// inside a stream. A packet after a quiet spell (a ping) never waits.
	rxStreamGap       = time.Millisecond
	rxTargetBatch     = maxBatch / 2
	rxModerationMin   = 50 * time.Microsecond
	rxModerationStart = 100 * time.Microsecond
	rxModerationMax   = 400 * time.Microsecond
)

// dataKeys is the part of *datachannel.Keys the data path uses.
type dataKeys interface {
	Seal(buf []byte, off, n int) ([]byte, error)
	OpenTo(pkt, scratch []byte) ([]byte, error)
	KeyID() uint8
	// The steps of Seal and OpenTo that --fragment puts its header between.
	Frame(buf []byte, off, n int) (start, end int)
	SealFramed(buf []byte, off, n int) ([]byte, error)
	OpenFramed(pkt []byte) ([]byte, error)
	Unframe(payload, scratch []byte) ([]byte, error)
}

// keySet is the current data-channel keys: primary seals and opens, retiring
// only opens (packets still in flight under the previous key after a rekey).
type keySet struct {
	primary  dataKeys
	retiring dataKeys
	// mss is the mssfix clamp for these keys' overhead, filled in by setKeys.
	mss mssClamp
	// fragPiece is the largest payload piece with --fragment (0: off).
	fragPiece int
	// nextUsed is set when retiring is the engine's EventKeys.Next, a renegotiated key that
	// opens but does not seal yet, and records the first packet opened under it. A pointer,
	// since reclampLocked copies key sets.
	nextUsed *atomic.Bool
}

func (ks *keySet) forID(id uint8) dataKeys {
	if ks.primary != nil && ks.primary.KeyID() == id {
		return ks.primary
	}
	if ks.retiring != nil && ks.retiring.KeyID() == id {
		return ks.retiring
	}
	return nil
}

// tunDevice is the part of golang.zx2c4.com/wireguard/tun.Device the session uses.
type tunDevice interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	Write(bufs [][]byte, offset int) (int, error)
	BatchSize() int
	Close() error
}

// packetConn is a transport to the server: UDP datagrams or a TCP stream of
// length-prefixed packets.
type packetConn interface {
	// ReadBatch blocks for at least one packet and returns up to len(bufs).
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
	// WriteBatch sends packets from the data path (one goroutine).
	WriteBatch(pkts [][]byte) error
	// WritePacket sends one packet from the control loop.
	WritePacket(pkt []byte) error
	Close() error
}

// Counters are the data-path statistics of a session.
type Counters struct {
	BytesIn, BytesOut     uint64 // tunnel payload bytes (IP packets)
	PacketsIn, PacketsOut uint64
	LastRecv, LastSent    time.Time // zero if never
	DecryptErrors         uint64    // packets that failed authentication or replay checks, or were malformed
	Dropped               uint64    // packets dropped for lack of keys or buffer space

	// Why received packets were dropped, for users (ovpnctl stats, D-Bus): Replayed and
	// DecryptFailed are part of DecryptErrors, Oversized and NoKey part of Dropped.
	Replayed      uint64 // packet id replayed or behind the replay window
	DecryptFailed uint64 // authentication tag or HMAC did not verify
	Oversized     uint64 // larger than the buffers or the tun MTU allow (either direction)
	NoKey         uint64 // no data-channel key for the packet's key id (either direction)
}

// drops is the sum of the drop reasons.
func (c Counters) drops() uint64 { return c.Replayed + c.DecryptFailed + c.Oversized + c.NoKey }

type counters struct {
	bytesIn, bytesOut     atomic.Uint64
	packetsIn, packetsOut atomic.Uint64
	lastRecv, lastSent    atomic.Int64 // unix nanoseconds
	decryptErrors         atomic.Uint64
	dropped               atomic.Uint64
	replayed              atomic.Uint64
	decryptFailed         atomic.Uint64
	oversized             atomic.Uint64
	noKey                 atomic.Uint64
}

func (c *counters) addDrops(replayed, authFailed, oversized, noKey int) {
	if replayed > 0 {
		c.replayed.Add(uint64(replayed))
	}
	if authFailed > 0 {
		c.decryptFailed.Add(uint64(authFailed))
	}
	if oversized > 0 {
		c.oversized.Add(uint64(oversized))
	}
	if noKey > 0 {
		c.noKey.Add(uint64(noKey))
	}
}

func (c *counters) snapshot() Counters {
	s := Counters{
		BytesIn:       c.bytesIn.Load(),
		BytesOut:      c.bytesOut.Load(),
		PacketsIn:     c.packetsIn.Load(),
		PacketsOut:    c.packetsOut.Load(),
		DecryptErrors: c.decryptErrors.Load(),
		Dropped:       c.dropped.Load(),
		Replayed:      c.replayed.Load(),
		DecryptFailed: c.decryptFailed.Load(),
		Oversized:     c.oversized.Load(),
		NoKey:         c.noKey.Load(),
	}
	if t := c.lastRecv.Load(); t != 0 {
		s.LastRecv = time.Unix(0, t)
	}
	if t := c.lastSent.Load(); t != 0 {
		s.LastSent = time.Unix(0, t)
	}
	return s
}

// ctrlPacket is a control-channel packet on its way from the socket reader to the
// control loop, in a pooled buffer the loop returns with putCtrl.
type ctrlPacket struct {
	b []byte
	// from is the server's new address when the packet came from another address than the
	// peer's on a float socket (zero otherwise): the control loop moves the peer there if
	// the packet authenticates.
	from netip.AddrPort
}

var ctrlPool = sync.Pool{New: func() any { return &ctrlPacket{b: make([]byte, 0, 2048)} }}

func getCtrl(p []byte) *ctrlPacket {
	c := ctrlPool.Get().(*ctrlPacket)
	c.b = append(c.b[:0], p...)
	c.from = netip.AddrPort{}
	return c
}

func putCtrl(c *ctrlPacket) {
	if cap(c.b) <= 64<<10 {
		ctrlPool.Put(c)
	}
}

// dataPath is the pair of packet loops for one tun device. The tun side lives as
// long as the device (across reconnects with persist-tun); the socket side is
// swapped per connection: RoutineSocketToTun runs once per connection, and the
// tun reader loads the current connection once per batch.
type dataPath struct {
	tun  tunDevice
	conn atomic.Pointer[connRef]
	keys atomic.Pointer[keySet]
	cnt  *counters

	// txOff is where plaintext starts in a tun buffer: the datachannel headroom.
	txOff, txBufSize int

	closing atomic.Bool // the tun device is being closed
	// mem backs the packet buffers; release it (releaseMem) only once the tun reader and
	// the socket reader have returned.
	mem *bufArena
	// keyUsed wakes the control loop when the first packet opens under a keySet's Next key,
	// so the engine switches to it at once (engine.Activity.NextKeyUsed).
	keyUsed chan struct{}
	logf    func(format string, args ...any)
	// warnf reports what the user should see (dropped packets), once per
	// device: badReadLogged.
	warnf         func(format string, args ...any)
	badReadLogged atomic.Bool

	// ctlMu serialises the control-side writers of keys and the mssfix
	// setting; the packet loops never take it.
	ctlMu  sync.Mutex
	mssCfg mssFixConfig // the profile's mssfix (zero: off)

	// frag is the --fragment state (fragment.go); nil without it.
	frag *fragState
	// block6 is the block-ipv6 state (blockipv6.go).
	block6 block6State

	// Per-routine state: tx is only touched by RoutineTunToSocket and rx by
	// RoutineSocketToTun.
	tx struct {
		bufs  [][]byte
		sizes []int
		out   [][]byte
		// poll, if the device can be polled, lets one send gather what is
		// queued (txbatch_linux.go); bufs then hold txBatch packets.
		poll *tunPoller
	}
	rx struct {
		bufs    [][]byte
		rbufs   [][]byte // bufs past the room kept for the tun write offset
		sizes   []int
		out     [][]byte
		scratch []byte
		// heads holds the segments that start coalesced tun writes (grohead.go); nil
		// when the tun device does not coalesce.
		heads *rxHeadState
	}
}

// dataPathConfig sizes a dataPath.
type dataPathConfig struct {
	Headroom, Tailroom int // from the datachannel package
	MTU                int // the largest tun MTU the device may get (pushes included)
	// Warnf, if set, reports what the user should see (dropped oversize
	// packets); logf (debug level) otherwise.
	Warnf func(format string, args ...any)
	// RefuseCompressed drops LZO/LZ4-compressed packets from the server
	// (allow-compression no) instead of decompressing them.
	RefuseCompressed bool
	// Fragment is the profile's --fragment (zero: off).
	Fragment fragmentConfig
}

// connRef is one connection as the data path sees it: the transport, where its
// control packets go, and where its failures are reported.
type connRef struct {
	conn    packetConn
	ctrl    chan<- *ctrlPacket // control packets to the control loop
	errc    chan<- error       // transport and tun failures (buffered, non-blocking sends)
	closing atomic.Bool        // the connection is being torn down: errors are expected
	// float is conn's float side (nil without --float); moved wakes the control loop when
	// an authenticated data packet from a new address moved the peer (non-blocking sends).
	float floatConn
	moved chan<- struct{}

	// pushedMSS is the server's mssfix for this connection, nil if none was
	// pushed; guarded by dataPath.ctlMu.
	pushedMSS *mssFixConfig
}

func (c *connRef) fail(err error) {
	if c.closing.Load() {
		return
	}
	select {
	case c.errc <- err:
	default:
	}
}

func newDataPath(t tunDevice, cnt *counters, dc dataPathConfig, logf func(string, ...any)) *dataPath {
	d := &dataPath{tun: t, cnt: cnt, logf: logf, warnf: dc.Warnf, keyUsed: make(chan struct{}, 1)}
	if d.warnf == nil {
		d.warnf = logf
	}
	// The fragment header needs room in front of the framed payload.
	d.txOff = (dc.Headroom + fragment.HeaderSize + 15) &^ 15
	mtu := max(dc.MTU, 1500)
	d.txBufSize = d.txOff + mtu + dc.Tailroom + 256
	txn := maxBatch
	if d.tx.poll = newTunPoller(t); d.tx.poll != nil {
		txn = txBatch
	}
	rxSize := rxBufSizeFor(dc)
	heads := t.BatchSize() > 1 // a device with offloads coalesces TCP segments (GRO) when written to
	sizes := []int{txn * arenaSize(d.txBufSize), maxBatch * arenaSize(rxSize)}
	if heads {
		sizes = append(sizes, rxHeads*arenaSize(rxHeadSize))
	}
	if !dc.RefuseCompressed {
		sizes = append(sizes, rxScratchSize)
	}
	d.mem = newBufArena(arenaSize(sizes...))
	d.tx.bufs = make([][]byte, txn)
	for i := range d.tx.bufs {
		d.tx.bufs[i] = d.mem.take(d.txBufSize)
	}
	d.tx.sizes = make([]int, txn)
	d.tx.out = make([][]byte, 0, txn)
	d.rx.bufs = make([][]byte, maxBatch)
	for i := range d.rx.bufs {
		d.rx.bufs[i] = d.mem.take(rxSize)
	}
	d.rx.rbufs = make([][]byte, maxBatch)
	for i := range d.rx.rbufs {
		d.rx.rbufs[i] = d.rx.bufs[i][tunWriteOffset:]
	}
	d.rx.sizes = make([]int, maxBatch)
	d.rx.out = make([][]byte, 0, maxBatch)
	if heads {
		h := newRxHeadState(d.mem.take)
		d.rx.heads = &h
	}
	if !dc.RefuseCompressed {
		// Without a scratch buffer OpenTo refuses compressed payloads.
		d.rx.scratch = d.mem.take(rxScratchSize)
	}
	if dc.Fragment.N > 0 {
		d.frag = newFragState(dc.Fragment, mtu, d.txBufSize, rxSize)
	}
	return d
}

// rxScratchSize is the decompression scratch buffer: the largest decompressed payload.
const rxScratchSize = 64 << 10

// releaseMem gives the packet buffers back to the kernel. The tun reader
// (RoutineTunToSocket) and every socket reader (RoutineSocketToTun) must have returned.
func (d *dataPath) releaseMem() {
	d.mem.release()
}

// rxBufSizeFor is the socket receive buffer size for dc: the largest packet a server
// may send for a device whose MTU may grow to dc.MTU (at least tun-max-mtu, as OpenVPN
// sizes its buffers), with the data channel's and fragmentation's framing and the
// same slack as the send buffers, in whole pages and at least rxBufMin. It also
// bounds a TCP frame.
func rxBufSizeFor(dc dataPathConfig) int {
	n := tunWriteOffset + dc.Headroom + fragment.HeaderSize + max(dc.MTU, engine.DefaultTunMaxMTU) + fragmentSlack + dc.Tailroom + 256
	return max(rxBufMin, (n+4095)&^4095)
}

// moveConn replaces the connection old with c (roaming), carrying over what was pushed for
// it; the packet loops pick c up with their next batch.
func (d *dataPath) moveConn(old, c *connRef) {
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	c.pushedMSS = old.pushedMSS
	d.conn.CompareAndSwap(old, c)
}

// nextKeyUsed reports whether a packet opened under the current keys' Next key.
func (d *dataPath) nextKeyUsed() bool {
	ks := d.keys.Load()
	return ks != nil && ks.nextUsed != nil && ks.nextUsed.Load()
}

// setKeys installs new data-channel keys (nil: none), with the mssfix clamp
// that goes with their overhead.
func (d *dataPath) setKeys(ks *keySet) {
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	if ks != nil {
		ks.mss = d.clampLocked(ks)
		ks.fragPiece = d.fragPieceLocked(ks)
	}
	d.keys.Store(ks)
}

// setMSSFix sets the profile's mssfix; a pushed one takes precedence for the
// connection that received it.
func (d *dataPath) setMSSFix(m mssFixConfig) {
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	d.mssCfg = m
	d.reclampLocked()
}

// setPushedMSSFix applies a pushed "mssfix N" (nil: nothing pushed) to the
// current connection. OpenVPN reads a value without flags as the inner
// packet size plus data-channel overhead, outer headers excluded.
func (d *dataPath) setPushedMSSFix(n *int) {
	if n == nil {
		return
	}
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	c := d.conn.Load()
	if c == nil {
		return
	}
	c.pushedMSS = &mssFixConfig{N: *n}
	d.reclampLocked()
}

// reclampLocked republishes the current key set with a recomputed clamp. The
// key set is copied, never changed in place: the packet loops may hold it.
func (d *dataPath) reclampLocked() {
	cur := d.keys.Load()
	if cur == nil {
		return
	}
	ks := *cur
	ks.mss = d.clampLocked(&ks)
	ks.fragPiece = d.fragPieceLocked(&ks)
	d.keys.Store(&ks)
}

// fragPieceLocked is the --fragment piece size for ks on the current
// connection (0: fragmentation off).
func (d *dataPath) fragPieceLocked(ks *keySet) int {
	if d.frag == nil {
		return 0
	}
	k := ks.primary
	if k == nil {
		k = ks.retiring
	}
	fo, ok := k.(interface {
		FrameOverhead() datachannel.FrameOverhead
	})
	if !ok {
		return 0
	}
	var t transportInfo
	if c := d.conn.Load(); c != nil {
		t = transportOf(c.conn)
	}
	return fragmentPieceFor(fragmentLink(d.frag.cfg, t), fo.FrameOverhead())
}

// clampLocked computes the clamp for ks on the current connection.
func (d *dataPath) clampLocked(ks *keySet) mssClamp {
	k := ks.primary
	if k == nil {
		k = ks.retiring
	}
	fo, ok := k.(interface {
		FrameOverhead() datachannel.FrameOverhead
	})
	if !ok {
		return mssClamp{}
	}
	m := d.mssCfg
	var t transportInfo
	if c := d.conn.Load(); c != nil {
		if c.pushedMSS != nil {
			m = *c.pushedMSS
		}
		t = transportOf(c.conn)
	}
	f := fo.FrameOverhead()
	if d.frag != nil {
		// OpenVPN counts the fragment header as payload overhead.
		f.Payload += fragment.HeaderSize
	}
	return computeMSSClamp(m, f, t)
}

// RoutineTunToSocket reads plaintext batches from the tun device, seals them in
// place and sends them on the current connection. It returns when the tun device
// fails or is closed; a failing connection is reported and the loop goes on,
// dropping packets until the next connection is in place.
func (d *dataPath) RoutineTunToSocket() {
	d.logf("data path: tun reader started")
	defer d.logf("data path: tun reader stopped")
	for {
		n, err := d.tun.Read(d.tx.bufs, d.tx.sizes, d.txOff)
		if p := d.tx.poll; p != nil && err == nil {
			// Gather what is already queued into the same send.
			for n <= len(d.tx.bufs)-maxBatch && p.readable() {
				var m int
				m, err = d.tun.Read(d.tx.bufs[n:], d.tx.sizes[n:], d.txOff)
				n += m
				if err != nil {
					break
				}
			}
		}
		if b := d.block6.cfg.Load(); b != nil && n > 0 {
			n = d.answerIPv6(b, n) // block-ipv6 (blockipv6.go)
		}
		if n > 0 {
			d.sealAndSend(n)
		}
		if err != nil {
			if errIsTooManySegments(err) {
				continue
			}
			if !tunDeviceFailed(err) {
				// One packet the tun package could not hand over (larger than
				// the buffers, a malformed offload header): the kernel has
				// consumed it, the device is fine. Drop it, count it, go on.
				d.cnt.dropped.Add(1)
				if d.badReadLogged.CompareAndSwap(false, true) {
					d.warnf("data path: dropping packets read from the tun device: %v", err)
				}
				continue
			}
			if !d.closing.Load() && !errors.Is(err, os.ErrClosed) {
				if c := d.conn.Load(); c != nil {
					c.fail(&tunError{err})
				}
			}
			return
		}
	}
}

func (d *dataPath) sealAndSend(n int) {
	ks := d.keys.Load()
	c := d.conn.Load()
	if ks == nil || ks.primary == nil || c == nil {
		d.cnt.dropped.Add(uint64(n))
		d.cnt.noKey.Add(uint64(n))
		return
	}
	if ks.fragPiece > 0 {
		d.sealFragmented(ks, c, n)
		return
	}
	out := d.tx.out[:0]
	var bytes uint64
	for i := 0; i < n; i++ {
		sz := d.tx.sizes[i]
		if ks.mss.v4 != 0 {
			clampMSS(d.tx.bufs[i][d.txOff:d.txOff+sz], ks.mss)
		}
		pkt, err := ks.primary.Seal(d.tx.bufs[i], d.txOff, sz)
		if err != nil {
			d.cnt.dropped.Add(1)
			if errors.Is(err, datachannel.ErrBuffer) {
				d.cnt.oversized.Add(1)
			}
			continue
		}
		bytes += uint64(sz)
		out = append(out, pkt)
	}
	d.tx.out = out[:0]
	if len(out) == 0 {
		return
	}
	if err := c.conn.WriteBatch(out); err != nil {
		d.cnt.dropped.Add(uint64(len(out)))
		c.fail(&transportError{err})
		return
	}
	d.cnt.bytesOut.Add(bytes)
	d.cnt.packetsOut.Add(uint64(len(out)))
	d.cnt.lastSent.Store(time.Now().UnixNano())
}

// RoutineSocketToTun reads batches from c, opens data packets in place and
// writes them to the tun device; control packets go to the control loop. It
// returns when c fails or is closed. Only one may run at a time per dataPath.
func (d *dataPath) RoutineSocketToTun(c *connRef) {
	d.logf("data path: socket reader started")
	defer d.logf("data path: socket reader stopped")
	rbufs := d.rx.rbufs
	// A TCP transport needs no moderation: one read of its stream buffer
	// already returns every frame that has arrived.
	moderate := !transportOf(c.conn).stream
	if d.frag != nil {
		// Pieces of the previous connection's packets can never complete.
		d.frag.reasm.Reset()
	}
	var last time.Time
	pause, paused := rxModerationStart, false
	locked := false
	for {
		n, err := c.conn.ReadBatch(rbufs, d.rx.sizes)
		if n > 0 {
			d.openAndWrite(c, n)
		}
		if err != nil {
			c.fail(&transportError{err})
			return
		}
		// Receive moderation, as a NIC does it: in the middle of a stream
		// a small batch means the reader is outpacing the sender one
		// datagram at a time. Pausing lets a batch build up, so the tun
		// write coalesces TCP segments (GRO), the kernel acknowledges once
		// per coalesced segment instead of every second one, and the
		// wake-up, receive and write costs are paid once per batch.
		if moderate {
			now := time.Now()
			if paused {
				pause = nextRxPause(pause, n)
				paused = false
			}
			if n < rxTargetBatch && now.Sub(last) < rxStreamGap {
				if !locked {
					// rxPause needs its own thread's timer slack: the goroutine is locked
					// to the thread and, never unlocked, ends with it instead of handing
					// the changed slack back to the scheduler. Only once a stream needs
					// moderation: a locked reader costs two thread switches per lone
					// packet (wake the locked thread, then hand the control loop to
					// another), which doubled the ping RTT through the tunnel (0.75-1.1
					// ms against 0.33 ms unlocked) and added them to every control packet
					// of a handshake.
					runtime.LockOSThread()
					setRxTimerSlack()
					locked = true
				}
				rxPause(pause)
				paused = true
			}
			last = now
		}
	}
}

// nextRxPause is the moderation pause after one of length p was followed by a
// batch of n packets: half way towards the pause that would have brought
// rxTargetBatch at the same arrival rate, so one odd batch does not swing it.
func nextRxPause(p time.Duration, n int) time.Duration {
	want := rxModerationMax
	if n > 0 {
		want = p * rxTargetBatch / time.Duration(n)
	}
	return min(max((p+want)/2, rxModerationMin), rxModerationMax)
}

func (d *dataPath) openAndWrite(c *connRef, n int) {
	ks := d.keys.Load()
	out := d.rx.out[:0]
	if d.rx.heads != nil {
		d.rx.heads.reset()
	}
	var bytes uint64
	var pings, bad, dropped, partial int
	var replayed, authFailed, oversized, noKey int
	var now time.Time
	if d.frag != nil {
		now = time.Now()
	}
	// With --float, packets from another address than the peer's are only taken as
	// authentic once they decrypt (or, control packets, pass tls-auth/tls-crypt).
	foreign := c.float != nil && c.float.anyForeign()
	for i := 0; i < n; i++ {
		sz := d.rx.sizes[i]
		if sz == 0 {
			continue
		}
		var from netip.AddrPort
		if foreign {
			from, _ = c.float.foreign(i)
		}
		buf := d.rx.bufs[i]
		pkt := buf[tunWriteOffset : tunWriteOffset+sz]
		keyID, isData, ok := classify(pkt)
		if !ok {
			bad++
			continue
		}
		if !isData {
			cp := getCtrl(pkt)
			cp.from = from
			select {
			case c.ctrl <- cp:
			default:
				putCtrl(cp)
				dropped++ // the control loop is behind; reliability resends
			}
			continue
		}
		var k dataKeys
		if ks != nil {
			k = ks.forID(keyID)
		}
		if k == nil {
			dropped++
			noKey++
			continue
		}
		var payload []byte
		if d.frag != nil {
			var st int
			switch payload, st = d.openFragment(k, buf, pkt, now); st {
			case fragBad:
				bad++
				authFailed++
				continue
			case fragReplay:
				bad++
				replayed++
				continue
			case fragDropped:
				dropped++
				continue
			case fragPartial:
				partial++
				if from.IsValid() {
					d.floatTo(c, from)
				}
				continue
			}
		} else {
			var err error
			if payload, err = k.OpenTo(pkt, d.rx.scratch); err != nil {
				bad++
				switch {
				case errors.Is(err, datachannel.ErrReplay):
					replayed++
				case errors.Is(err, datachannel.ErrAuth):
					authFailed++
				}
				continue
			}
		}
		if from.IsValid() {
			d.floatTo(c, from)
		}
		if ks.nextUsed != nil && k == ks.retiring && !ks.nextUsed.Load() {
			ks.nextUsed.Store(true)
			select {
			case d.keyUsed <- struct{}{}:
			default:
			}
		}
		if len(payload) == 0 {
			continue
		}
		if isPing(payload) {
			pings++
			continue
		}
		if payload[0] == occFirstByte {
			// No IP packet starts with 0x28 (version 2): an OCC message. Only
			// OCC_EXIT matters to a client: the server is going away.
			if isOCCExit(payload) {
				c.fail(errRemoteExit)
			}
			continue
		}
		start, inside := offsetIn(buf, payload)
		if !inside {
			// Decompressed into scratch: bring it back into this packet's buffer,
			// which has room since it held the (larger) datagram's slot.
			if len(payload) > len(buf)-tunWriteOffset {
				dropped++
				oversized++
				continue
			}
			start = tunWriteOffset
			copy(buf[start:], payload)
		}
		if start < tunWriteOffset {
			// Cannot happen with the datachannel's header sizes; never write the
			// virtio header over the payload.
			copy(buf[tunWriteOffset:], payload)
			start = tunWriteOffset
		}
		if ks.mss.v4 != 0 {
			clampMSS(buf[start:start+len(payload)], ks.mss)
		}
		bytes += uint64(len(payload))
		p := buf[start-tunWriteOffset : start+len(payload)]
		if d.rx.heads != nil {
			p = d.rx.heads.place(p)
		}
		out = append(out, p)
	}
	if bad > 0 {
		d.cnt.decryptErrors.Add(uint64(bad))
	}
	if dropped > 0 {
		d.cnt.dropped.Add(uint64(dropped))
	}
	if replayed+authFailed+oversized+noKey > 0 {
		d.cnt.addDrops(replayed, authFailed, oversized, noKey)
	}
	if len(out) > 0 || pings > 0 || partial > 0 {
		d.cnt.lastRecv.Store(time.Now().UnixNano())
	}
	if len(out) == 0 {
		return
	}
	d.rx.out = out[:0]
	if _, err := d.tun.Write(out, tunWriteOffset); err != nil {
		if errors.Is(err, os.ErrClosed) {
			if !d.closing.Load() {
				c.fail(&tunError{err})
			}
			return
		}
		// A packet the kernel refused (bad checksum, no route): count and carry on.
		d.cnt.dropped.Add(1)
	}
	d.cnt.bytesIn.Add(bytes)
	d.cnt.packetsIn.Add(uint64(len(out)))
}

// floatTo moves c's peer to from, where a packet that authenticated came from (--float),
// and tells the control loop, which moves the routes and the status along.
func (d *dataPath) floatTo(c *connRef, from netip.AddrPort) {
	if !c.float.setPeer(from) {
		return
	}
	select {
	case c.moved <- struct{}{}:
	default:
	}
}

// offsetIn returns where sub starts within buf, and whether it is inside it.
func offsetIn(buf, sub []byte) (int, bool) {
	if len(sub) == 0 || cap(buf) == 0 {
		return 0, false
	}
	b := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	if s < b || s+uintptr(len(sub)) > b+uintptr(cap(buf)) {
		return 0, false
	}
	return int(s - b), true
}

// errRemoteExit reports an OCC_EXIT from the server on the data channel.
var errRemoteExit = errors.New("server sent OCC exit (remote-exit)")

// tunDeviceFailed tells a failure of the tun device itself (its file is closed
// or a read syscall failed: *fs.PathError) from an error about one packet,
// which the tun package reports after it has read the packet (too large for
// the buffers, a bad virtio header).
func tunDeviceFailed(err error) bool {
	var pe *fs.PathError
	return errors.Is(err, os.ErrClosed) || errors.As(err, &pe)
}

// tunError is a failure of the tun device: the session reconnects with a new
// device.
type tunError struct{ err error }

func (e *tunError) Error() string { return "tun device: " + e.err.Error() }
func (e *tunError) Unwrap() error { return e.err }

// transportError is a failure of the connection to the server: reconnect.
type transportError struct{ err error }

func (e *transportError) Error() string { return "transport: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }
