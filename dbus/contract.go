package dbus

import (
	"unicode"

	godbus "github.com/godbus/dbus/v5"
)

// Member names of the API's signals and of the standard ones it uses.
const (
	SignalLog               = "Log"
	SignalInputRequired     = "InputRequired"
	SignalOpenURL           = "OpenURL"
	SignalSessionAdded      = "SessionAdded"
	SignalSessionRemoved    = "SessionRemoved"
	SignalPropertiesChanged = "PropertiesChanged"
)

// Property names of net.ovpnd1.Session.
const (
	PropName            = "Name"
	PropOwner           = "Owner"
	PropState           = "State"
	PropStateReason     = "StateReason"
	PropRemote          = "Remote"
	PropLocalAddress    = "LocalAddress"
	PropCipher          = "Cipher"
	PropDNSMode         = "DNSMode"
	PropTunnelAddresses = "TunnelAddresses"
	PropDevice          = "Device"
	PropConnectedSince  = "ConnectedSince"
	PropBytesIn         = "BytesIn"
	PropBytesOut        = "BytesOut"
	PropPacketsIn       = "PacketsIn"
	PropPacketsOut      = "PacketsOut"
	// Received (and, for oversized and no key, sent) data packets dropped, by reason.
	PropDroppedReplayed      = "DroppedReplayed"
	PropDroppedDecryptFailed = "DroppedDecryptFailed"
	PropDroppedOversized     = "DroppedOversized"
	PropDroppedNoKey         = "DroppedNoKey"
)

// CounterProps are the properties that change with every packet: PropertiesChanged never
// carries them (EmitsChangedSignal=false in the XML).
var CounterProps = map[string]bool{PropBytesIn: true, PropBytesOut: true, PropPacketsIn: true, PropPacketsOut: true,
	PropDroppedReplayed: true, PropDroppedDecryptFailed: true, PropDroppedOversized: true, PropDroppedNoKey: true}

// SessionProps is every property of net.ovpnd1.Session; the daemon builds it, ovpnctl reads
// it (from GetAll, updated by PropertiesChanged). The JSON form is ovpnctl's --json output.
type SessionProps struct {
	Name            string   `json:"name"`
	Owner           uint32   `json:"owner"`
	State           string   `json:"state"`
	StateReason     string   `json:"state_reason,omitempty"`
	Remote          string   `json:"remote,omitempty"`
	TunnelAddresses []string `json:"tunnel_addresses"`
	Device          string   `json:"device,omitempty"`
	LocalAddress    string   `json:"local_address,omitempty"`
	Cipher          string   `json:"cipher,omitempty"`
	DNSMode         string   `json:"dns_mode,omitempty"`
	ConnectedSince  uint64   `json:"connected_since_usec,omitempty"`
	BytesIn         uint64   `json:"bytes_in"`
	BytesOut        uint64   `json:"bytes_out"`
	PacketsIn       uint64   `json:"packets_in"`
	PacketsOut      uint64   `json:"packets_out"`

	DroppedReplayed      uint64 `json:"dropped_replayed"`
	DroppedDecryptFailed uint64 `json:"dropped_decrypt_failed"`
	DroppedOversized     uint64 `json:"dropped_oversized"`
	DroppedNoKey         uint64 `json:"dropped_no_key"`
}

// Variants is p as the a{sv} of GetAll.
func (p *SessionProps) Variants() map[string]godbus.Variant {
	addrs := p.TunnelAddresses
	if addrs == nil {
		addrs = []string{}
	}
	return map[string]godbus.Variant{
		PropName:            godbus.MakeVariant(p.Name),
		PropOwner:           godbus.MakeVariant(p.Owner),
		PropState:           godbus.MakeVariant(p.State),
		PropStateReason:     godbus.MakeVariant(p.StateReason),
		PropRemote:          godbus.MakeVariant(p.Remote),
		PropLocalAddress:    godbus.MakeVariant(p.LocalAddress),
		PropCipher:          godbus.MakeVariant(p.Cipher),
		PropDNSMode:         godbus.MakeVariant(p.DNSMode),
		PropTunnelAddresses: godbus.MakeVariant(addrs),
		PropDevice:          godbus.MakeVariant(p.Device),
		PropConnectedSince:  godbus.MakeVariant(p.ConnectedSince),
		PropBytesIn:         godbus.MakeVariant(p.BytesIn),
		PropBytesOut:        godbus.MakeVariant(p.BytesOut),
		PropPacketsIn:       godbus.MakeVariant(p.PacketsIn),
		PropPacketsOut:      godbus.MakeVariant(p.PacketsOut),

		PropDroppedReplayed:      godbus.MakeVariant(p.DroppedReplayed),
		PropDroppedDecryptFailed: godbus.MakeVariant(p.DroppedDecryptFailed),
		PropDroppedOversized:     godbus.MakeVariant(p.DroppedOversized),
		PropDroppedNoKey:         godbus.MakeVariant(p.DroppedNoKey),
	}
}

// Apply copies the properties present in m (all of GetAll, or the changed ones of
// PropertiesChanged); values of the wrong type are ignored.
func (p *SessionProps) Apply(m map[string]godbus.Variant) {
	for k, v := range m {
		switch k {
		case PropName:
			_ = v.Store(&p.Name)
		case PropOwner:
			_ = v.Store(&p.Owner)
		case PropState:
			_ = v.Store(&p.State)
		case PropStateReason:
			_ = v.Store(&p.StateReason)
		case PropRemote:
			_ = v.Store(&p.Remote)
		case PropTunnelAddresses:
			_ = v.Store(&p.TunnelAddresses)
		case PropDevice:
			_ = v.Store(&p.Device)
		case PropLocalAddress:
			_ = v.Store(&p.LocalAddress)
		case PropCipher:
			_ = v.Store(&p.Cipher)
		case PropDNSMode:
			_ = v.Store(&p.DNSMode)
		case PropConnectedSince:
			_ = v.Store(&p.ConnectedSince)
		case PropBytesIn:
			_ = v.Store(&p.BytesIn)
		case PropBytesOut:
			_ = v.Store(&p.BytesOut)
		case PropPacketsIn:
			_ = v.Store(&p.PacketsIn)
		case PropPacketsOut:
			_ = v.Store(&p.PacketsOut)
		case PropDroppedReplayed:
			_ = v.Store(&p.DroppedReplayed)
		case PropDroppedDecryptFailed:
			_ = v.Store(&p.DroppedDecryptFailed)
		case PropDroppedOversized:
			_ = v.Store(&p.DroppedOversized)
		case PropDroppedNoKey:
			_ = v.Store(&p.DroppedNoKey)
		}
	}
}

// InputEntry is one element of PendingInput's a(ussbs): what the session waits for, the text
// to show, whether what is typed must not be echoed, and for a web login its URL.
type InputEntry struct {
	ID     uint32
	Kind   string
	Prompt string
	Secret bool
	URL    string
}

// LogEntry is one element of LogHistory's a(tus).
type LogEntry struct {
	TimeUsec uint64
	Level    uint32
	Message  string
}

// StateFinished reports whether a State value is final: the session has ended.
func StateFinished(s string) bool { return s == StateDisconnected || s == StateFailed }

// Printable replaces control characters (C0, DEL, C1, and the Unicode format characters that
// reorder text) and invalid UTF-8 in text from the bus, so that nothing a daemon or a spoofer
// sends can drive the terminal that prints it.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == '\uFFFD' || unprintable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if unprintable(r) {
			r = '\uFFFD'
		}
		out = append(out, r)
	}
	return string(out)
}

func unprintable(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || unicode.Is(unicode.Cf, r)
}
