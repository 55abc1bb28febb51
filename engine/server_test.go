package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/fragment"
	"github.com/ovpnd/ovpnd/engine/internal/tlspipe"
	"github.com/ovpnd/ovpnd/engine/kdf"
	"github.com/ovpnd/ovpnd/engine/reliable"
	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wire"
	"github.com/ovpnd/ovpnd/engine/wrap"
)

// This file is a minimal OpenVPN 2.6-style server for back-to-back tests: hard/soft resets,
// the reliability layer, TLS via tls.Server over a tlspipe, key-method 2, PUSH_REPLY and data
// keys. It implements only what the client tests need, but follows OpenVPN's packet formats.

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	caPool     *x509.CertPool
	serverCert tls.Certificate
	serverLeaf *x509.Certificate
	clientCert tls.Certificate
	clientPool *x509.CertPool
}

var (
	pkiOnce   sync.Once
	sharedPKI *pki
)

func testPKI(t testing.TB) *pki {
	t.Helper()
	pkiOnce.Do(func() { sharedPKI = newPKI(t, "Test-Server") })
	return sharedPKI
}

func newPKI(t testing.TB, serverCN string) *pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notBefore := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, eku x509.ExtKeyUsage) (tls.Certificate, *x509.Certificate) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn, Organization: []string{"OpenVPN-TEST"}, Country: []string{"KG"}},
			NotBefore:    notBefore,
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
			ExtKeyUsage:  []x509.ExtKeyUsage{eku},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: c}, c
	}
	p := &pki{caPool: x509.NewCertPool(), clientPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.clientPool.AddCert(ca)
	p.serverCert, p.serverLeaf = leaf(2, serverCN, x509.ExtKeyUsageServerAuth)
	p.clientCert, _ = leaf(3, "client1", x509.ExtKeyUsageClientAuth)
	return p
}

// serverOpts configures the test server.
type serverOpts struct {
	// push is the PUSH_REPLY sent as one or more messages (each without the PUSH_REPLY prefix).
	push []string
	// pushWithoutRequest sends the reply right after key-method 2 (IV_PROTO REQUEST_PUSH).
	pushWithoutRequest bool
	// cipher is the data cipher the server uses (it must match what it pushes).
	cipher string
	digest string
	ekm    bool
	// auth checks credentials; nil accepts anything. A non-empty result is sent instead of
	// the push reply (e.g. "AUTH_FAILED,bad password").
	auth func(user, pass string) string
	// shortKM2 sends a key-method 2 record that stops after the options string.
	shortKM2 bool
	// resendWKc makes a tls-crypt-v2 server ask for WKc again (early negotiation).
	resendWKc     bool
	tlsMaxVersion uint16
	cert          *tls.Certificate
	// cipherSuites limits the server's TLS 1.2 suites (nil = Go's defaults).
	cipherSuites []uint16
	// fragment runs the server with --fragment: every data payload carries a
	// fragment header and payloads over this many bytes go out in pieces.
	fragment int
}

type srvKey struct {
	id      uint8
	rel     *reliable.Layer
	pipe    *tlspipe.Pipe
	conn    *tls.Conn
	mu      sync.Mutex
	recs    [][]byte
	pending []byte
	km2     bool
	random1 [32]byte
	random2 [32]byte
	cli     struct {
		pre, r1, r2 []byte
		user, pass  string
		peerInfo    string
	}
	keys *datachannel.Keys
}

type testServer struct {
	t       testing.TB
	opts    serverOpts
	pki     *pki
	wrapper wrap.Wrapper
	rnd     *mrand.ChaCha8

	sid, clientSID wire.SessionID
	haveClient     bool
	cur, prev      *srvKey

	out       [][]byte // packets for the client
	tun       [][]byte // decrypted non-ping payloads from the client
	pings     int
	occExits  int
	msgs      []string // control messages received from the client
	peerInfo  string
	user      string
	pass      string
	helloOps  []wire.Opcode
	dropped   int
	keyEvents int
	now       time.Time
	// With opts.fragment: the server's fragmentation state.
	frag  *fragment.Fragmenter
	reasm *fragment.Reassembler
}

func newTestServer(t testing.TB, p *pki, w wrap.Wrapper, opts serverOpts) *testServer {
	if opts.cipher == "" {
		opts.cipher = "AES-256-GCM"
	}
	if opts.digest == "" {
		opts.digest = "SHA1"
	}
	s := &testServer{t: t, opts: opts, pki: p, wrapper: w, rnd: mrand.NewChaCha8([32]byte{9})}
	s.rnd.Read(s.sid[:])
	return s
}

func (s *testServer) close() {
	for _, k := range []*srvKey{s.cur, s.prev} {
		if k != nil && k.pipe != nil {
			k.pipe.Close()
		}
	}
}

func (s *testServer) newKey(id uint8) *srvKey {
	k := &srvKey{id: id, rel: reliable.New(reliable.Config{}), pipe: tlspipe.New()}
	s.rnd.Read(k.random1[:])
	s.rnd.Read(k.random2[:])
	cert := s.pki.serverCert
	if s.opts.cert != nil {
		cert = *s.opts.cert
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.pki.clientPool,
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   s.opts.tlsMaxVersion,
		CipherSuites: s.opts.cipherSuites,
		Rand:         s.rnd,
		Time:         func() time.Time { return s.now },
	}
	k.conn = tls.Server(k.pipe.Conn(), cfg)
	startOn(k.pipe.Start, func() error {
		if err := k.conn.Handshake(); err != nil {
			return err
		}
		buf := make([]byte, maxRecord)
		for {
			n, err := k.conn.Read(buf)
			if n > 0 {
				k.mu.Lock()
				k.recs = append(k.recs, append([]byte(nil), buf[:n]...))
				k.mu.Unlock()
			}
			if err != nil {
				return err
			}
		}
	})
	return k
}

func (s *testServer) keyFor(id uint8) *srvKey {
	if s.cur != nil && s.cur.id == id {
		return s.cur
	}
	if s.prev != nil && s.prev.id == id {
		return s.prev
	}
	return nil
}

// handle processes one packet from the client.
func (s *testServer) handle(now time.Time, pkt []byte) {
	s.now = now
	op, keyID, err := wire.ParseHeader(pkt)
	if err != nil {
		s.t.Errorf("server: bad header: %v", err)
		return
	}
	if op.IsData() {
		s.handleData(keyID, pkt)
		return
	}
	p, err := s.wrapper.Unwrap(pkt, now)
	if err != nil {
		s.t.Errorf("server: unwrap %v: %v", op, err)
		return
	}
	switch p.Opcode {
	case wire.OpHardResetClientV2, wire.OpHardResetClientV3:
		if !s.haveClient {
			s.haveClient = true
			s.clientSID = p.SessionID
			s.cur = s.newKey(0)
			payload := []byte(nil)
			if _, ok := s.wrapper.(*wrap.TLSCryptV2Server); ok && s.opts.resendWKc {
				payload = wrap.AppendEarlyNegTLVs(nil, true)
			}
			s.cur.rel.Send(now, uint8(wire.OpHardResetServerV2), payload)
		}
	case wire.OpSoftResetV1:
		if s.keyFor(p.KeyID) == nil {
			s.startSoftReset(now, p.KeyID)
		}
	}
	if p.SessionID != s.clientSID {
		s.t.Errorf("server: packet from session %x, want %x", p.SessionID, s.clientSID)
		return
	}
	if len(p.Acks) > 0 && p.RemoteSessionID != s.sid {
		s.t.Errorf("server: acks name session %x", p.RemoteSessionID)
		return
	}
	k := s.keyFor(p.KeyID)
	if k == nil {
		s.dropped++
		return
	}
	k.rel.Ack(now, p.Acks)
	if p.Opcode == wire.OpAckV1 {
		return
	}
	if p.Opcode == wire.OpControlV1 || p.Opcode == wire.OpControlWKCV1 {
		s.helloOps = append(s.helloOps, p.Opcode)
	}
	k.rel.Receive(p.MessageID, uint8(p.Opcode), p.Payload)
	for {
		m, ok := k.rel.Next()
		if !ok {
			break
		}
		if (m.Opcode == uint8(wire.OpControlV1) || m.Opcode == uint8(wire.OpControlWKCV1)) && len(m.Payload) > 0 {
			k.pipe.Feed(m.Payload)
		}
	}
	s.process(now, k)
}

// startSoftReset creates the key state for id and queues our SOFT_RESET (ssl.c: both sides
// send one).
func (s *testServer) startSoftReset(now time.Time, id uint8) {
	if s.prev != nil {
		s.prev.pipe.Close()
	}
	s.prev = s.cur
	s.cur = s.newKey(id)
	s.cur.rel.Send(now, uint8(wire.OpSoftResetV1), nil)
}

// renegotiate is a server-initiated soft reset.
func (s *testServer) renegotiate(now time.Time) {
	s.now = now
	s.startSoftReset(now, nextKeyID(s.cur.id))
	s.flush(now)
}

func (s *testServer) process(now time.Time, k *srvKey) {
	k.mu.Lock()
	recs := k.recs
	k.recs = nil
	k.mu.Unlock()
	for _, r := range recs {
		if !k.km2 {
			s.readClientKM2(now, k, r)
			continue
		}
		for _, m := range strings.Split(string(r), "\x00") {
			if m == "" {
				continue
			}
			s.msgs = append(s.msgs, m)
			if m == "PUSH_REQUEST" && k.id == 0 {
				s.sendPush(k)
			}
		}
	}
	k.pending = append(k.pending, k.pipe.TakeOutput()...)
	s.flush(now)
}

func (s *testServer) readClientKM2(now time.Time, k *srvKey, r []byte) {
	if len(r) < 5+112 || binary.BigEndian.Uint32(r) != 0 || r[4] != 2 {
		s.t.Errorf("server: bad client key-method 2 record (%d bytes)", len(r))
		return
	}
	k.cli.pre = r[5:53]
	k.cli.r1 = r[53:85]
	k.cli.r2 = r[85:117]
	rest := r[117:]
	var err error
	var opts string
	if opts, rest, err = readString(rest, maxOptionsLen); err != nil {
		s.t.Errorf("server: reading options: %v", err)
		return
	}
	_ = opts
	if k.cli.user, rest, err = readString(rest, maxUserPassLen); err != nil {
		s.t.Errorf("server: reading username: %v", err)
	}
	if k.cli.pass, rest, err = readString(rest, maxPackedPassLen); err != nil {
		s.t.Errorf("server: reading password: %v", err)
	}
	if k.cli.peerInfo, _, err = readString(rest, maxPeerInfoLen); err != nil {
		s.t.Errorf("server: reading peer-info: %v", err)
	}
	k.km2 = true
	s.peerInfo, s.user, s.pass = k.cli.peerInfo, k.cli.user, k.cli.pass

	rec := []byte{0, 0, 0, 0, 2}
	rec = append(rec, k.random1[:]...)
	rec = append(rec, k.random2[:]...)
	rec = appendString(rec, "V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto UDPv4,cipher "+s.opts.cipher+",auth SHA1,keysize 256,key-method 2,tls-server")
	if !s.opts.shortKM2 {
		rec = append(rec, 0, 0, 0, 0)
		rec = appendString(rec, "")
	}
	if _, err := k.conn.Write(rec); err != nil {
		s.t.Errorf("server: writing key-method 2: %v", err)
		return
	}
	s.deriveKeys(k)
	if k.id == 0 && s.opts.pushWithoutRequest {
		s.sendPush(k)
	}
}

func (s *testServer) deriveKeys(k *srvKey) {
	var kb kdf.KeyBlock
	if s.opts.ekm {
		cs := k.conn.ConnectionState()
		ekm, err := cs.ExportKeyingMaterial(kdf.LabelDataKeys, nil, 256)
		if err != nil {
			s.t.Errorf("server: EKM: %v", err)
			return
		}
		copy(kb[:], ekm)
	} else {
		kb = kdf.ExpandPRF(k.cli.pre, k.cli.r1, k.random1[:], k.cli.r2, k.random2[:], s.clientSID, s.sid)
	}
	peerID := uint32(wire.NoPeerID)
	for _, part := range s.opts.push {
		for _, o := range strings.Split(part, ",") {
			var n uint32
			if _, err := fmt.Sscanf(o, "peer-id %d", &n); err == nil {
				peerID = n
			}
		}
	}
	keys, err := datachannel.NewKeys(datachannel.KeyParams{
		Cipher: s.opts.cipher, Digest: s.opts.digest, Block: &kb, Client: false,
		KeyID: k.id, PeerID: peerID, Rand: s.rnd,
	})
	if err != nil {
		s.t.Errorf("server: NewKeys: %v", err)
		return
	}
	k.keys = keys
	s.keyEvents++
}

func (s *testServer) sendPush(k *srvKey) {
	if s.opts.auth != nil {
		if msg := s.opts.auth(k.cli.user, k.cli.pass); msg != "" {
			s.sendControl(k, msg)
			return
		}
	}
	for _, part := range s.opts.push {
		s.sendControl(k, "PUSH_REPLY,"+part)
	}
}

// sendControl sends one control message in its own TLS record.
func (s *testServer) sendControl(k *srvKey, msg string) {
	if _, err := k.conn.Write(append([]byte(msg), 0)); err != nil {
		s.t.Errorf("server: writing %q: %v", msg, err)
	}
	k.pending = append(k.pending, k.pipe.TakeOutput()...)
}

// sendControlNow sends a control message on the current key and flushes.
func (s *testServer) sendControlNow(now time.Time, msg string) {
	s.now = now
	s.sendControl(s.cur, msg)
	s.flush(now)
}

func (s *testServer) flush(now time.Time) {
	for _, k := range []*srvKey{s.prev, s.cur} {
		if k == nil {
			continue
		}
		for len(k.pending) > 0 && k.rel.SendWindowFree() > 0 {
			n := min(len(k.pending), 1000)
			k.rel.Send(now, uint8(wire.OpControlV1), k.pending[:n])
			k.pending = k.pending[n:]
		}
		for _, m := range k.rel.Due(now) {
			p := wire.ControlPacket{Opcode: wire.Opcode(m.Opcode), KeyID: k.id, SessionID: s.sid,
				Acks: k.rel.TakeAcks(4), RemoteSessionID: s.clientSID, MessageID: m.ID, Payload: m.Payload}
			s.emit(now, &p)
		}
		if k.rel.HasPendingAcks() {
			p := wire.ControlPacket{Opcode: wire.OpAckV1, KeyID: k.id, SessionID: s.sid,
				Acks: k.rel.TakeAcks(8), RemoteSessionID: s.clientSID}
			s.emit(now, &p)
		}
	}
}

func (s *testServer) emit(now time.Time, p *wire.ControlPacket) {
	b, err := s.wrapper.Wrap(nil, p, now)
	if err != nil {
		s.t.Errorf("server: wrap: %v", err)
		return
	}
	s.out = append(s.out, b)
}

func (s *testServer) nextDeadline() time.Time {
	var d time.Time
	for _, k := range []*srvKey{s.prev, s.cur} {
		if k == nil {
			continue
		}
		if t := k.rel.NextDeadline(); !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

func (s *testServer) handleData(keyID uint8, pkt []byte) {
	k := s.keyFor(keyID)
	if k == nil || k.keys == nil {
		s.dropped++
		return
	}
	var p []byte
	var err error
	if s.opts.fragment > 0 {
		if s.reasm == nil {
			s.reasm = fragment.NewReassembler(2048)
		}
		if p, err = k.keys.OpenFramed(append([]byte(nil), pkt...)); err == nil {
			if p, err = s.reasm.Incoming(s.now, p); err == nil && p != nil {
				p, err = k.keys.Unframe(append([]byte(nil), p...), make([]byte, 2048))
			}
		}
		if err == nil && p == nil {
			return // waiting for more pieces
		}
	} else {
		p, err = k.keys.OpenTo(append([]byte(nil), pkt...), make([]byte, 2048))
	}
	if err != nil {
		s.t.Errorf("server: opening data packet: %v", err)
		return
	}
	switch {
	case datachannel.IsPing(p):
		s.pings++
	default:
		if op, _, ok := datachannel.ParseOCC(p); ok && op == datachannel.OCCExit {
			s.occExits++
			return
		}
		s.tun = append(s.tun, append([]byte(nil), p...))
	}
}

// sendData encrypts a payload to the client with the newest key that has keys.
func (s *testServer) sendData(payload []byte) {
	k := s.cur
	if k.keys == nil {
		k = s.prev
	}
	if s.opts.fragment > 0 {
		s.sendFragments(k.keys, payload)
		return
	}
	buf := make([]byte, datachannel.Headroom+len(payload)+datachannel.Tailroom)
	copy(buf[datachannel.Headroom:], payload)
	pkt, err := k.keys.Seal(buf, datachannel.Headroom, len(payload))
	if err != nil {
		s.t.Fatalf("server: seal: %v", err)
	}
	s.out = append(s.out, pkt)
}

// sendFragments is sendData with --fragment, written from OpenVPN's order of
// operations independently of the client's code: frame, cut, then seal.
func (s *testServer) sendFragments(k *datachannel.Keys, payload []byte) {
	const off = datachannel.Headroom + 4
	buf := make([]byte, off+len(payload)+datachannel.Tailroom)
	copy(buf[off:], payload)
	start, end := k.Frame(buf, off, len(payload))
	framed := append([]byte(nil), buf[start:end]...)
	seal := func(hdr func([]byte), piece []byte) {
		pb := make([]byte, off+4+len(piece)+datachannel.Tailroom)
		hdr(pb[off:])
		copy(pb[off+4:], piece)
		pkt, err := k.SealFramed(pb, off, 4+len(piece))
		if err != nil {
			s.t.Fatalf("server: seal: %v", err)
		}
		s.out = append(s.out, pkt)
	}
	if len(framed) <= s.opts.fragment {
		seal(fragment.PutWhole, framed)
		return
	}
	if s.frag == nil {
		s.frag = fragment.NewFragmenter(77)
	}
	sp, err := s.frag.Split(len(framed), s.opts.fragment)
	if err != nil {
		s.t.Fatalf("server: split: %v", err)
	}
	for i := 0; i < sp.Count; i++ {
		o, n := sp.Piece(i)
		seal(func(b []byte) { sp.PutHeader(b, i) }, framed[o:o+n])
	}
}

// wrapperPair builds matching client config fields and a server wrapper for a wrap mode.
func wrapperPair(t testing.TB, mode WrapMode, cfg *Config) wrap.Wrapper {
	t.Helper()
	key := func() *statickey.Key {
		k, err := statickey.Generate(mrand.NewChaCha8([32]byte{7}))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	cfg.Wrap = mode
	digest := cfg.Auth
	if digest == "" {
		digest = "SHA1"
	}
	switch mode {
	case WrapNone:
		return wrap.NewNone()
	case WrapTLSAuth:
		k := key()
		cfg.WrapKey, cfg.KeyDirection = k, 1
		w, err := wrap.NewTLSAuth(k, 0, digest)
		if err != nil {
			t.Fatal(err)
		}
		return w
	case WrapTLSCrypt:
		k := key()
		cfg.WrapKey = k
		w, err := wrap.NewTLSCrypt(k, false)
		if err != nil {
			t.Fatal(err)
		}
		return w
	case WrapTLSCryptV2:
		r := mrand.NewChaCha8([32]byte{8})
		sk, err := statickey.GenerateTLSCryptV2Server(r)
		if err != nil {
			t.Fatal(err)
		}
		ck, err := sk.NewTLSCryptV2Client(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSCryptV2 = ck
		w, err := wrap.NewTLSCryptV2Server(sk)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Fatalf("unknown wrap mode %d", mode)
	return nil
}
