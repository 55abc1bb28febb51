package engine

import (
	"time"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/push"
)

// State is the connection state reported by EventState.
type State int

// Connection states, in the order a healthy connection passes through them.
const (
	StateConnecting State = iota
	StateTLSHandshake
	// StateAuthenticating covers key-method 2 and the push exchange.
	StateAuthenticating
	StateConnected
	// StateReconnecting asks the session to tear the connection down and connect again
	// (ping-restart, RESTART, EXIT, fatal errors).
	StateReconnecting
	// StateExiting asks the session to stop for good (ping-exit, HALT, AUTH_FAILED).
	StateExiting
	// StateClosed follows Shutdown once the exit notification is done.
	StateClosed
)

var stateNames = [...]string{"connecting", "tls-handshake", "authenticating", "connected", "reconnecting", "exiting", "closed"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Event is something the session must act on; drain them with Client.NextEvent. Every slice in
// an event belongs to the caller.
type Event interface{ isEvent() }

// EventSend is one OpenVPN packet to put on the wire (without the TCP length prefix).
type EventSend struct{ Packet []byte }

// EventTunPacket is a decrypted IP packet from the slow path (HandlePacket on a data packet).
type EventTunPacket struct{ Packet []byte }

// EventState reports a state change; Reason says why for Reconnecting/Exiting/Closed.
type EventState struct {
	State  State
	Reason string
}

// EventKeys carries the data-channel keys after each change: Primary encrypts, and received
// packets are opened by whichever of Primary and Retiring has the packet's key id. Retiring is
// nil outside a transition window. Primary is nil only in the corner case where the retiring key
// expired before a renegotiation finished: then no key may encrypt until the next EventKeys.
type EventKeys struct {
	Primary, Retiring *datachannel.Keys
	// Next, when set, is a renegotiated key that opens packets but does not seal yet: the
	// server accepts data under it only once our ack of its key-method 2 record arrived. The
	// engine switches to it (a new EventKeys) when Activity.NextKeyUsed reports a packet from
	// the server under it, or after a tls-timeout without control packets on it.
	Next *datachannel.Keys
}

// EventPushReply is the parsed push (continuations joined, the profile's pull-filter and
// route-nopull applied). The engine has applied its protocol options already; the session
// applies Reply.Net, TunMTU, MSSFix and RouteDelay and logs Reply.Warnings, which include the
// protocol values the engine could not use.
type EventPushReply struct{ Reply *push.Reply }

// EventPushUpdate is a PUSH_UPDATE the server sent on the live connection (OpenVPN 2.7,
// continuations joined, pull-filter and route-nopull applied). The engine has applied its
// keepalive; the session applies the network kinds in Update.Replaced/Removed as a diff.
type EventPushUpdate struct{ Update *push.Update }

// EventNeedCredentials asks for what the key-method 2 record still needs, in the order to
// ask: a PromptPassword (answer with SetCredentials) and/or a challenge, PromptStaticChallenge
// or PromptChallenge (answer with SetResponse).
type EventNeedCredentials struct{ Prompts []Prompt }

// EventAuthChallenge reports a dynamic challenge (AUTH_FAILED,CRV1:...). It is followed by
// StateReconnecting ("auth-challenge"): the next connection, to the same server, answers it
// when the session passes Challenge on as Config.Challenge.
type EventAuthChallenge struct{ Challenge *Challenge }

// EventAuthPrompt reports what a pending authentication wants from the user (INFO_PRE with
// WEB_AUTH, OPEN_URL or CR_TEXT): a web login to open (PromptWebLogin, nothing to answer) or a
// CR_TEXT challenge to answer with SetResponse. Method is the IV_SSO method (webauth, openurl,
// crtext); Flags are the flags the server sent with it.
type EventAuthPrompt struct {
	Method, Flags string
	Prompt        Prompt
}

// EventAuthFailed reports AUTH_FAILED with the server's message (may be empty).
type EventAuthFailed struct{ Message string }

// EventAuthPending reports AUTH_PENDING: the server waits for out-of-band authentication for
// up to Timeout; Method is the pending method the server named, if any (e.g. from INFO_PRE).
type EventAuthPending struct {
	Timeout time.Duration
	Method  string
}

// EventInfo carries an INFO or INFO_PRE message from the server.
type EventInfo struct{ Message string }

// EventError reports a problem. Fatal errors are followed by an EventState; others are
// warnings about dropped input.
type EventError struct {
	Err   error
	Fatal bool
}

func (EventSend) isEvent()            {}
func (EventTunPacket) isEvent()       {}
func (EventState) isEvent()           {}
func (EventKeys) isEvent()            {}
func (EventPushReply) isEvent()       {}
func (EventPushUpdate) isEvent()      {}
func (EventNeedCredentials) isEvent() {}
func (EventAuthFailed) isEvent()      {}
func (EventAuthPending) isEvent()     {}
func (EventAuthChallenge) isEvent()   {}
func (EventAuthPrompt) isEvent()      {}
func (EventInfo) isEvent()            {}
func (EventError) isEvent()           {}

// Activity is what the fast data path observed since the connection started: cumulative
// counters and the times of the last authenticated packet received and of the last packet sent.
type Activity struct {
	LastRecv, LastSent    time.Time
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	// NextKeyUsed: a packet from the server opened under EventKeys.Next.
	NextKeyUsed bool
}
