// Package enginetest is a minimal OpenVPN 2.6-style server for tests: hard and soft resets,
// the reliability layer, TLS via tls.Server over a tlspipe, key-method 2, PUSH_REPLY and data
// keys. It is sans-IO like the engine (packets in with Handle, out in Out, time passed in), so
// the engine's tests run it back to back and the session's tests put it behind a socket. It
// implements only what those tests need, but follows OpenVPN's packet formats.
package enginetest

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

// PKI is a throwaway CA with a server and a client certificate.
type PKI struct {
	CACert     *x509.Certificate
	CAPool     *x509.CertPool
	ServerCert tls.Certificate
	ServerLeaf *x509.Certificate
	ClientCert tls.Certificate
	ClientPool *x509.CertPool
}

var (
	pkiOnce   sync.Once
	sharedPKI *PKI
)

// SharedPKI is one PKI for the whole test binary (key generation is slow).
func SharedPKI(t testing.TB) *PKI {
	t.Helper()
	pkiOnce.Do(func() { sharedPKI = NewPKI(t, "Test-Server") })
	return sharedPKI
}

// NewPKI makes a new CA with a server certificate for serverCN and a client certificate.
func NewPKI(t testing.TB, serverCN string) *PKI {
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
	p := &PKI{CACert: ca, CAPool: x509.NewCertPool(), ClientPool: x509.NewCertPool()}
	p.CAPool.AddCert(ca)
	p.ClientPool.AddCert(ca)
	p.ServerCert, p.ServerLeaf = leaf(2, serverCN, x509.ExtKeyUsageServerAuth)
	p.ClientCert, _ = leaf(3, "client1", x509.ExtKeyUsageClientAuth)
	return p
}

// Options configures the test server.
type Options struct {
	// push is the PUSH_REPLY sent as one or more messages (each without the PUSH_REPLY prefix).
	Push []string
	// pushWithoutRequest sends the reply right after key-method 2 (IV_PROTO REQUEST_PUSH).
	PushWithoutRequest bool
	// cipher is the data cipher the server uses (it must match what it pushes).
	Cipher string
	Digest string
	EKM    bool
	// auth checks credentials; nil accepts anything. A non-empty result is sent instead of
	// the push reply (e.g. "AUTH_FAILED,bad password").
	Auth func(user, pass string) string
	// shortKM2 sends a key-method 2 record that stops after the options string.
	ShortKM2 bool
	// ResendWKc makes a tls-crypt-v2 server ask for WKc again (early negotiation).
	ResendWKc bool
	// Epoch and DynTLSCrypt are what the server's push must also announce in protocol-flags
	// (aead-epoch, dyn-tls-crypt).
	Epoch         bool
	DynTLSCrypt   bool
	TLSMaxVersion uint16
	Cert          *tls.Certificate
	// cipherSuites limits the server's TLS 1.2 suites (nil = Go's defaults).
	CipherSuites []uint16
	// ControlChunk is the TLS ciphertext one control packet carries (zero: 1000 bytes).
	ControlChunk int
	// fragment runs the server with --fragment: every data payload carries a
	// fragment header and payloads over this many bytes go out in pieces.
	Fragment int
}

// Key is one of the server's key states (TLS session, reliability layer, data keys).
type Key struct {
	ID      uint8
	Rel     *reliable.Layer
	Pipe    *tlspipe.Pipe
	Conn    *tls.Conn
	mu      sync.Mutex
	recs    [][]byte
	pending []byte
	KM2     bool
	// active: our key-method 2 record was acked, so data under this key is accepted. OpenVPN's
	// server moves to S_ACTIVE, and only then generates and uses the data keys, when its send
	// window is empty (ssl.c tls_process_state); earlier packets are dropped.
	active  bool
	random1 [32]byte
	random2 [32]byte
	cli     struct {
		pre, r1, r2 []byte
		user, pass  string
		PeerInfo    string
	}
	Keys *datachannel.Keys
}

// Server is the server side of one connection. Out, Tun, Msgs and the other exported
// fields are what it sent and received, for tests to inspect; it is not safe for
// concurrent use.
type Server struct {
	t       testing.TB
	Opts    Options
	PKI     *PKI
	wrapper wrap.Wrapper
	// OrigKey is the configured wrap key dynamic tls-crypt XORs in; reneg wraps key ids > 0
	// once dynamic tls-crypt is set up; RenegUnwrapped counts packets it unwrapped.
	OrigKey        *statickey.Key
	reneg          wrap.Wrapper
	RenegUnwrapped int
	rnd            *mrand.ChaCha8

	sid, clientSID wire.SessionID
	haveClient     bool
	Cur, Prev      *Key

	Out       [][]byte // packets for the client
	Tun       [][]byte // decrypted non-ping payloads from the client
	Pings     int
	OCCExits  int
	Msgs      []string // control messages received from the client
	PeerInfo  string
	User      string
	Pass      string
	HelloOps  []wire.Opcode
	Dropped   int
	KeyEvents int
	// NotReady counts data packets for a key that was not active yet.
	NotReady int
	Now      time.Time
	// With opts.Fragment: the server's fragmentation state.
	frag  *fragment.Fragmenter
	reasm *fragment.Reassembler
}

// NewServer makes a server with the PKI p and the control-channel wrapper w.
func NewServer(t testing.TB, p *PKI, w wrap.Wrapper, opts Options) *Server {
	if opts.Cipher == "" {
		opts.Cipher = "AES-256-GCM"
	}
	if opts.Digest == "" {
		opts.Digest = "SHA1"
	}
	s := &Server{t: t, Opts: opts, PKI: p, wrapper: w, rnd: mrand.NewChaCha8([32]byte{9})}
	s.rnd.Read(s.sid[:])
	return s
}

// Close ends the server's TLS goroutines.
func (s *Server) Close() {
	for _, k := range []*Key{s.Cur, s.Prev} {
		if k != nil && k.Pipe != nil {
			k.Pipe.Close()
		}
	}
}

// openvpnTiming makes a reliable.Layer retransmit as OpenVPN 2.6 does.
var openvpnTiming = reliable.Config{InitialTimeout: reliable.DefaultTimeout, MinTimeout: reliable.DefaultTimeout}

func (s *Server) newKey(id uint8) *Key {
	// OpenVPN's timing: every first retransmission after tls-timeout, measured RTT or not.
	k := &Key{ID: id, Rel: reliable.New(openvpnTiming), Pipe: tlspipe.New()}
	s.rnd.Read(k.random1[:])
	s.rnd.Read(k.random2[:])
	cert := s.PKI.ServerCert
	if s.Opts.Cert != nil {
		cert = *s.Opts.Cert
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.PKI.ClientPool,
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   s.Opts.TLSMaxVersion,
		CipherSuites: s.Opts.CipherSuites,
		Rand:         s.rnd,
		Time:         func() time.Time { return s.Now },
	}
	k.Conn = tls.Server(k.Pipe.Conn(), cfg)
	startOn(k.Pipe.Start, func() error {
		if err := k.Conn.Handshake(); err != nil {
			return err
		}
		buf := make([]byte, maxRecord)
		for {
			n, err := k.Conn.Read(buf)
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

func (s *Server) keyFor(id uint8) *Key {
	if s.Cur != nil && s.Cur.ID == id {
		return s.Cur
	}
	if s.Prev != nil && s.Prev.ID == id {
		return s.Prev
	}
	return nil
}

// Handle processes one packet from the client.
func (s *Server) Handle(now time.Time, pkt []byte) {
	s.Now = now
	op, keyID, err := wire.ParseHeader(pkt)
	if err != nil {
		s.t.Errorf("server: bad header: %v", err)
		return
	}
	if op.IsData() {
		s.handleData(keyID, pkt)
		return
	}
	w := s.wrapper
	if keyID > 0 && s.reneg != nil {
		w = s.reneg
		s.RenegUnwrapped++
	}
	p, err := w.Unwrap(pkt, now)
	if err != nil {
		s.t.Errorf("server: unwrap %v: %v", op, err)
		return
	}
	w.Accept()
	switch p.Opcode {
	case wire.OpHardResetClientV2, wire.OpHardResetClientV3:
		if !s.haveClient {
			s.haveClient = true
			s.clientSID = p.SessionID
			s.Cur = s.newKey(0)
			payload := []byte(nil)
			if _, ok := s.wrapper.(*wrap.TLSCryptV2Server); ok && s.Opts.ResendWKc {
				payload = wrap.AppendEarlyNegTLVs(nil, true)
			}
			s.Cur.Rel.Send(now, uint8(wire.OpHardResetServerV2), payload)
		}
	case wire.OpSoftResetV1:
		if s.keyFor(p.KeyID) == nil {
			s.StartSoftReset(now, p.KeyID)
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
		s.Dropped++
		return
	}
	k.Rel.Ack(now, p.Acks)
	if k.KM2 && !k.active && k.Rel.Unacked() == 0 {
		k.active = true
	}
	if p.Opcode == wire.OpAckV1 {
		return
	}
	if p.Opcode == wire.OpControlV1 || p.Opcode == wire.OpControlWKCV1 {
		s.HelloOps = append(s.HelloOps, p.Opcode)
	}
	k.Rel.Receive(p.MessageID, uint8(p.Opcode), p.Payload)
	for {
		m, ok := k.Rel.Next()
		if !ok {
			break
		}
		if (m.Opcode == uint8(wire.OpControlV1) || m.Opcode == uint8(wire.OpControlWKCV1)) && len(m.Payload) > 0 {
			k.Pipe.Feed(m.Payload)
		}
	}
	s.process(now, k)
}

// StartSoftReset creates the key state for id and queues our SOFT_RESET (ssl.c: both sides
// send one).
func (s *Server) StartSoftReset(now time.Time, id uint8) {
	if s.Prev != nil {
		s.Prev.Pipe.Close()
	}
	s.Prev = s.Cur
	s.Cur = s.newKey(id)
	s.Cur.Rel.Send(now, uint8(wire.OpSoftResetV1), nil)
}

// Renegotiate is a server-initiated soft reset.
func (s *Server) Renegotiate(now time.Time) {
	s.Now = now
	s.StartSoftReset(now, nextKeyID(s.Cur.ID))
	s.Flush(now)
}

func (s *Server) process(now time.Time, k *Key) {
	k.mu.Lock()
	recs := k.recs
	k.recs = nil
	k.mu.Unlock()
	for _, r := range recs {
		if !k.KM2 {
			s.readClientKM2(now, k, r)
			continue
		}
		for _, m := range strings.Split(string(r), "\x00") {
			if m == "" {
				continue
			}
			s.Msgs = append(s.Msgs, m)
			if m == "PUSH_REQUEST" && k.ID == 0 {
				s.sendPush(k)
			}
		}
	}
	k.pending = append(k.pending, k.Pipe.TakeOutput()...)
	s.Flush(now)
}

func (s *Server) readClientKM2(now time.Time, k *Key, r []byte) {
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
	if k.cli.PeerInfo, _, err = readString(rest, maxPeerInfoLen); err != nil {
		s.t.Errorf("server: reading peer-info: %v", err)
	}
	k.KM2 = true
	s.PeerInfo, s.User, s.Pass = k.cli.PeerInfo, k.cli.user, k.cli.pass

	rec := []byte{0, 0, 0, 0, 2}
	rec = append(rec, k.random1[:]...)
	rec = append(rec, k.random2[:]...)
	rec = appendString(rec, "V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto UDPv4,cipher "+s.Opts.Cipher+",auth SHA1,keysize 256,key-method 2,tls-server")
	if !s.Opts.ShortKM2 {
		rec = append(rec, 0, 0, 0, 0)
		rec = appendString(rec, "")
	}
	if _, err := k.Conn.Write(rec); err != nil {
		s.t.Errorf("server: writing key-method 2: %v", err)
		return
	}
	s.deriveKeys(k)
	if k.ID == 0 && s.Opts.PushWithoutRequest {
		s.sendPush(k)
	}
}

func (s *Server) deriveKeys(k *Key) {
	var kb kdf.KeyBlock
	if s.Opts.EKM {
		cs := k.Conn.ConnectionState()
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
	for _, part := range s.Opts.Push {
		for _, o := range strings.Split(part, ",") {
			var n uint32
			if _, err := fmt.Sscanf(o, "peer-id %d", &n); err == nil {
				peerID = n
			}
		}
	}
	keys, err := datachannel.NewKeys(datachannel.KeyParams{
		Cipher: s.Opts.Cipher, Digest: s.Opts.Digest, Block: &kb, Client: false,
		KeyID: k.ID, PeerID: peerID, Rand: s.rnd, Epoch: s.Opts.Epoch,
	})
	if err != nil {
		s.t.Errorf("server: NewKeys: %v", err)
		return
	}
	if k.ID == 0 && s.Opts.DynTLSCrypt {
		cs := k.Conn.ConnectionState()
		ekm, err := cs.ExportKeyingMaterial(kdf.LabelDynamicTLSCrypt, nil, 256)
		if err != nil {
			s.t.Errorf("server: dynamic tls-crypt EKM: %v", err)
			return
		}
		if s.reneg, err = wrap.NewDynamicTLSCrypt(ekm, s.OrigKey, false); err != nil {
			s.t.Errorf("server: dynamic tls-crypt: %v", err)
			return
		}
	}
	k.Keys = keys
	s.KeyEvents++
}

func (s *Server) sendPush(k *Key) {
	if s.Opts.Auth != nil {
		if msg := s.Opts.Auth(k.cli.user, k.cli.pass); msg != "" {
			s.sendControl(k, msg)
			return
		}
	}
	for _, part := range s.Opts.Push {
		s.sendControl(k, "PUSH_REPLY,"+part)
	}
}

// sendControl sends one control message in its own TLS record.
func (s *Server) sendControl(k *Key, msg string) {
	if _, err := k.Conn.Write(append([]byte(msg), 0)); err != nil {
		s.t.Errorf("server: writing %q: %v", msg, err)
	}
	k.pending = append(k.pending, k.Pipe.TakeOutput()...)
}

// SendControlNow sends a control message on the current key and flushes.
func (s *Server) SendControlNow(now time.Time, msg string) {
	s.Now = now
	s.sendControl(s.Cur, msg)
	s.Flush(now)
}

// Flush sends what the reliability layers have due at now.
func (s *Server) Flush(now time.Time) {
	for _, k := range []*Key{s.Prev, s.Cur} {
		if k == nil {
			continue
		}
		for len(k.pending) > 0 && k.Rel.SendWindowFree() > 0 {
			chunk := s.Opts.ControlChunk
			if chunk <= 0 {
				chunk = 1000
			}
			n := min(len(k.pending), chunk)
			k.Rel.Send(now, uint8(wire.OpControlV1), k.pending[:n])
			k.pending = k.pending[n:]
		}
		for _, m := range k.Rel.Due(now) {
			p := wire.ControlPacket{Opcode: wire.Opcode(m.Opcode), KeyID: k.ID, SessionID: s.sid,
				Acks: k.Rel.TakeAcks(4), RemoteSessionID: s.clientSID, MessageID: m.ID, Payload: m.Payload}
			s.emit(now, &p)
		}
		if k.Rel.HasPendingAcks() {
			p := wire.ControlPacket{Opcode: wire.OpAckV1, KeyID: k.ID, SessionID: s.sid,
				Acks: k.Rel.TakeAcks(8), RemoteSessionID: s.clientSID}
			s.emit(now, &p)
		}
	}
}

func (s *Server) emit(now time.Time, p *wire.ControlPacket) {
	w := s.wrapper
	if p.KeyID > 0 && s.reneg != nil {
		w = s.reneg
	}
	b, err := w.Wrap(nil, p, now)
	if err != nil {
		s.t.Errorf("server: wrap: %v", err)
		return
	}
	s.Out = append(s.Out, b)
}

// NextDeadline is when Flush has work next (zero: none).
func (s *Server) NextDeadline() time.Time {
	var d time.Time
	for _, k := range []*Key{s.Prev, s.Cur} {
		if k == nil {
			continue
		}
		if t := k.Rel.NextDeadline(); !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

func (s *Server) handleData(keyID uint8, pkt []byte) {
	k := s.keyFor(keyID)
	if k == nil || k.Keys == nil {
		s.Dropped++
		return
	}
	if !k.active {
		s.NotReady++
		return
	}
	var p []byte
	var err error
	if s.Opts.Fragment > 0 {
		if s.reasm == nil {
			s.reasm = fragment.NewReassembler(2048)
		}
		if p, err = k.Keys.OpenFramed(append([]byte(nil), pkt...)); err == nil {
			if p, err = s.reasm.Incoming(s.Now, p); err == nil && p != nil {
				p, err = k.Keys.Unframe(append([]byte(nil), p...), make([]byte, 2048))
			}
		}
		if err == nil && p == nil {
			return // waiting for more pieces
		}
	} else {
		p, err = k.Keys.OpenTo(append([]byte(nil), pkt...), make([]byte, 2048))
	}
	if err != nil {
		s.t.Errorf("server: opening data packet: %v", err)
		return
	}
	switch {
	case datachannel.IsPing(p):
		s.Pings++
	default:
		if op, _, ok := datachannel.ParseOCC(p); ok && op == datachannel.OCCExit {
			s.OCCExits++
			return
		}
		s.Tun = append(s.Tun, append([]byte(nil), p...))
	}
}

// SendData encrypts a payload to the client with the newest key that is active, as OpenVPN's
// tls_select_encryption_key picks only keys in S_GENERATED_KEYS.
func (s *Server) SendData(payload []byte) {
	k := s.Cur
	if k.Keys == nil || !k.active {
		k = s.Prev
	}
	if s.Opts.Fragment > 0 {
		s.sendFragments(k.Keys, payload)
		return
	}
	buf := make([]byte, datachannel.Headroom+len(payload)+datachannel.Tailroom)
	copy(buf[datachannel.Headroom:], payload)
	pkt, err := k.Keys.Seal(buf, datachannel.Headroom, len(payload))
	if err != nil {
		s.t.Fatalf("server: seal: %v", err)
	}
	s.Out = append(s.Out, pkt)
}

// sendFragments is sendData with --fragment, written from OpenVPN's order of
// operations independently of the client's code: frame, cut, then seal.
func (s *Server) sendFragments(k *datachannel.Keys, payload []byte) {
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
		s.Out = append(s.Out, pkt)
	}
	if len(framed) <= s.Opts.Fragment {
		seal(fragment.PutWhole, framed)
		return
	}
	if s.frag == nil {
		s.frag = fragment.NewFragmenter(77)
	}
	sp, err := s.frag.Split(len(framed), s.Opts.Fragment)
	if err != nil {
		s.t.Fatalf("server: split: %v", err)
	}
	for i := 0; i < sp.Count; i++ {
		o, n := sp.Piece(i)
		seal(func(b []byte) { sp.PutHeader(b, i) }, framed[o:o+n])
	}
}
