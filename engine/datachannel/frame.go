package datachannel

// FrameOverhead is one key's share of OpenVPN's packet-size arithmetic
// (mtu.c frame_calculate_protocol_header_size and
// frame_calculate_payload_overhead, crypto.c calculate_crypto_overhead, with
// occ=false): the bytes actually on the wire, as opposed to Overhead, which
// also reserves worst-case padding. The session derives the mssfix clamp from
// it the way OpenVPN 2.6 does, so both clients announce the same MSS.
type FrameOverhead struct {
	// Header is everything outside the encrypted payload: the opcode byte (or
	// the 4-byte P_DATA_V2 header), plus for AEAD the packet id and tag, for
	// CBC the IV and HMAC, for cipher none the packet id and HMAC.
	Header int
	// Payload is what is added to the plaintext before encryption: the v1
	// compression framing byte (comp-lzo, compress stub/lz4/lzo) and, for CBC,
	// the packet id that is encrypted with the payload.
	Payload int
	// Block is the cipher block size when the ciphertext is padded to whole
	// blocks (CBC), else 0.
	Block int
}

// FrameOverhead reports the wire overhead of these keys as OpenVPN counts it.
func (k *Keys) FrameOverhead() FrameOverhead {
	f := FrameOverhead{Header: k.hdrLen}
	switch k.kind {
	case kindAEAD:
		if k.epoch != nil {
			f.Header += epochPacketIDSize + tagSize
			break
		}
		f.Header += packetIDSize + tagSize
	case kindCBC:
		f.Header += cbcBlockSize + k.macLen
		f.Payload += packetIDSize
		f.Block = cbcBlockSize
	default:
		f.Header += packetIDSize + k.macLen
	}
	switch k.comp {
	case CompLZO, CompressLZO, CompressStub, CompressLZ4:
		// OpenVPN counts one byte for every v1 framing; the v2 framings add
		// nothing to an IP packet (the 0x50 escape never fires for IPv4/6).
		f.Payload++
	}
	return f
}
