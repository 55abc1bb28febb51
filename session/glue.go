package session

import (
	"errors"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/wire"
)

func errIsTooManySegments(err error) bool { return errors.Is(err, tun.ErrTooManySegments) }

// classify reads the opcode byte: the key id, whether it is a data packet, and
// whether the opcode is valid at all. (wire.ParseHeader would build an error
// for every junk datagram; this is the allocation-free subset the loop needs.)
func classify(pkt []byte) (keyID uint8, isData, ok bool) {
	if len(pkt) < 1 {
		return 0, false, false
	}
	op := wire.Opcode(pkt[0] >> 3)
	return pkt[0] & wire.MaxKeyID, op.IsData(), op.Valid()
}

func isPing(p []byte) bool { return datachannel.IsPing(p) }

var pingMagic = datachannel.PingPayload

const occFirstByte = 0x28

func isOCCExit(p []byte) bool {
	op, _, ok := datachannel.ParseOCC(p)
	return ok && op == datachannel.OCCExit
}
