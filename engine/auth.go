package engine

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// PromptKind says what the user is asked for.
type PromptKind int

// Prompt kinds.
const (
	// PromptPassword asks for the username and password (answer with SetCredentials).
	PromptPassword PromptKind = iota
	// PromptStaticChallenge asks for the profile's static-challenge code (SetResponse).
	PromptStaticChallenge
	// PromptChallenge asks for the answer to a CRV1 challenge the server sent with
	// AUTH_FAILED (SetResponse).
	PromptChallenge
	// PromptCRText asks for the answer to a CR_TEXT challenge of a pending authentication
	// (SetResponse, sent at once as CR_RESPONSE).
	PromptCRText
	// PromptWebLogin asks the user to log in at URL; nothing is answered, the server
	// completes the authentication by itself.
	PromptWebLogin
)

var promptKindNames = [...]string{"password", "static-challenge", "challenge", "cr-text", "web-login"}

func (k PromptKind) String() string {
	if k >= 0 && int(k) < len(promptKindNames) {
		return promptKindNames[k]
	}
	return "unknown"
}

// Prompt is one thing to ask the user. Text and URL come from the server (or the profile) and
// are already made printable; Text may be empty.
type Prompt struct {
	Kind PromptKind
	// Text is the challenge text to show.
	Text string
	// Echo says whether what the user types may be shown (false: a secret).
	Echo bool
	// URL is the page to open for PromptWebLogin.
	URL string
}

// StaticChallenge is --static-challenge: a code asked for with the password on every
// connection that sends the password.
type StaticChallenge struct {
	Text string
	Echo bool
	// Concat appends the code to the password instead of sending SCRV1.
	Concat bool
}

// Challenge is a dynamic (CRV1) challenge from AUTH_FAILED,CRV1:FLAGS:STATE_ID:USER:TEXT. The
// server expects the next connection to log in as Username with the password
// CRV1::STATE_ID::RESPONSE.
type Challenge struct {
	StateID  string
	Username string
	Text     string
	// Echo (flag E): the response may be shown while typed.
	Echo bool
	// ResponseRequired (flag R): ask the user; without it the response is empty.
	ResponseRequired bool
}

// maxChallengeField bounds the parts of a CRV1 message (OpenVPN's own limit is the control
// message size; these stay far below it).
const maxChallengeField = 1024

// ParseCRV1 parses the text after "AUTH_FAILED," when it is a CRV1 challenge (misc.c
// parse_auth_challenge): CRV1:FLAGS:STATE_ID:BASE64(USERNAME):TEXT. FLAGS is a list of E (echo)
// and R (response required); the text may itself contain colons.
func ParseCRV1(s string) (*Challenge, error) {
	rest, ok := strings.CutPrefix(s, "CRV1:")
	if !ok {
		return nil, errors.New("not a CRV1 challenge")
	}
	parts := strings.SplitN(rest, ":", 4)
	if len(parts) != 4 {
		return nil, errors.New("CRV1 challenge has fewer than five fields")
	}
	flags, state, user64, text := parts[0], parts[1], parts[2], parts[3]
	if state == "" {
		return nil, errors.New("CRV1 challenge has an empty state id")
	}
	if len(state) > maxChallengeField || len(user64) > maxChallengeField || len(text) > maxChallengeField {
		return nil, fmt.Errorf("CRV1 challenge field longer than %d bytes", maxChallengeField)
	}
	if strings.ContainsFunc(state, isControl) {
		return nil, errors.New("CRV1 state id contains control characters")
	}
	user, err := base64.StdEncoding.DecodeString(user64)
	if err != nil {
		return nil, fmt.Errorf("CRV1 username is not base64: %w", err)
	}
	if len(user) >= maxUserPassLen || strings.ContainsFunc(string(user), isControl) {
		return nil, errors.New("CRV1 username is too long or contains control characters")
	}
	c := &Challenge{StateID: state, Username: string(user), Text: serverText(text)}
	for _, f := range flags {
		switch f {
		case 'E':
			c.Echo = true
		case 'R':
			c.ResponseRequired = true
		}
	}
	return c, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// PendingInfo is what an INFO_PRE (or INFO) message tells about a pending authentication.
type PendingInfo struct {
	// Method is the IV_SSO method it belongs to: webauth, openurl or crtext.
	Method string
	// Flags are WEB_AUTH's flags (proxy, hidden, external) as sent.
	Flags  string
	Prompt Prompt
}

// maxURL bounds a web-login URL (OpenVPN limits the whole message to 1024 bytes).
const maxURL = 1024

// ParsePendingInfo parses the text after "INFO_PRE," or "INFO,": WEB_AUTH:FLAGS:URL,
// OPEN_URL:URL or CR_TEXT:FLAGS:TEXT (doc/management-notes.txt, client-pending-auth). ok is
// false for any other informational message; err reports a pending-auth message that is
// malformed.
func ParsePendingInfo(s string) (info PendingInfo, ok bool, err error) {
	switch {
	case strings.HasPrefix(s, "WEB_AUTH:"):
		flags, url, found := strings.Cut(strings.TrimPrefix(s, "WEB_AUTH:"), ":")
		if !found {
			return info, true, errors.New("WEB_AUTH without a URL")
		}
		if strings.HasPrefix(flags, "proxy=") {
			// ovpnd does not announce proxy in IV_SSO; a server that sends it anyway wants
			// the page opened through a proxy we would not use.
			return info, true, errors.New("WEB_AUTH through a proxy is not supported")
		}
		u, err := checkURL(url)
		if err != nil {
			return info, true, err
		}
		return PendingInfo{Method: "webauth", Flags: serverText(flags), Prompt: Prompt{Kind: PromptWebLogin, URL: u}}, true, nil
	case strings.HasPrefix(s, "OPEN_URL:"):
		u, err := checkURL(strings.TrimPrefix(s, "OPEN_URL:"))
		if err != nil {
			return info, true, err
		}
		return PendingInfo{Method: "openurl", Prompt: Prompt{Kind: PromptWebLogin, URL: u}}, true, nil
	case strings.HasPrefix(s, "CR_TEXT:"):
		flags, text, found := strings.Cut(strings.TrimPrefix(s, "CR_TEXT:"), ":")
		if !found {
			return info, true, errors.New("CR_TEXT without challenge text")
		}
		p := Prompt{Kind: PromptCRText, Text: serverText(text)}
		for _, f := range flags {
			if f == 'E' {
				p.Echo = true
			}
		}
		return PendingInfo{Method: "crtext", Flags: serverText(flags), Prompt: p}, true, nil
	}
	return info, false, nil
}

// checkURL accepts only http and https URLs of printable ASCII: the URL may be handed to a
// browser launcher, which must never see another scheme (file:, javascript:) or an argument.
func checkURL(u string) (string, error) {
	if u == "" {
		return "", errors.New("empty login URL")
	}
	if len(u) > maxURL {
		return "", fmt.Errorf("login URL longer than %d bytes", maxURL)
	}
	for i := 0; i < len(u); i++ {
		if u[i] <= ' ' || u[i] >= 0x7f {
			return "", errors.New("login URL contains spaces, control or non-ASCII characters")
		}
	}
	lower := strings.ToLower(u)
	if !strings.HasPrefix(lower, "https://") && !strings.HasPrefix(lower, "http://") {
		return "", fmt.Errorf("login URL %q is not http or https", truncate(u, 64))
	}
	return u, nil
}

// EncodeSCRV1 is the password field OpenVPN sends for a static challenge in its default
// format: SCRV1:base64(password):base64(response).
func EncodeSCRV1(password, response string) string {
	return "SCRV1:" + base64.StdEncoding.EncodeToString([]byte(password)) + ":" +
		base64.StdEncoding.EncodeToString([]byte(response))
}

// EncodeCRV1 is the password field answering a dynamic challenge: CRV1::STATE_ID::RESPONSE.
func EncodeCRV1(stateID, response string) string {
	return "CRV1::" + stateID + "::" + response
}

// EncodeCRResponse is the control message answering a CR_TEXT challenge.
func EncodeCRResponse(response string) string {
	return "CR_RESPONSE," + base64.StdEncoding.EncodeToString([]byte(response))
}

// maxPackedPassLen bounds the password field once a challenge response is packed into it: the
// SCRV1 form grows by a third. OpenVPN builds with PKCS#11 (Debian's among them) read up to
// 4096 bytes; the plain password keeps the 128-byte limit of other builds.
const maxPackedPassLen = 4096

// SetResponse answers a PromptStaticChallenge, PromptChallenge or PromptCRText. A CR_TEXT
// answer goes to the server at once; the others complete the credentials of the key-method 2
// record.
func (c *Client) SetResponse(resp string) {
	if c.dead || c.closed || !c.started {
		return
	}
	now := c.timeNow()
	if c.crTextOpen {
		c.crTextOpen = false
		c.sendControlMessage(c.primary, EncodeCRResponse(resp))
		c.flush(now)
		return
	}
	c.response, c.haveResponse = resp, true
	c.advanceAll(now)
	c.flush(now)
}

// wantResponse reports whether the key-method 2 record needs a challenge response the user
// has not given yet, and the prompt to ask with.
func (c *Client) wantResponse() (Prompt, bool) {
	if c.haveResponse || c.token != "" {
		return Prompt{}, false
	}
	if ch := c.cfg.Challenge; ch != nil {
		if !ch.ResponseRequired {
			return Prompt{}, false
		}
		return Prompt{Kind: PromptChallenge, Text: ch.Text, Echo: ch.Echo}, true
	}
	if sc := c.cfg.StaticChallenge; sc != nil {
		return Prompt{Kind: PromptStaticChallenge, Text: serverText(sc.Text), Echo: sc.Echo}, true
	}
	return Prompt{}, false
}

// packCredentials turns the user's username, password and challenge response into the
// fields of the key-method 2 record (misc.c get_user_pass_cr).
func (c *Client) packCredentials(user, pass string) (string, string, error) {
	if c.token != "" {
		return user, pass, nil
	}
	if ch := c.cfg.Challenge; ch != nil {
		resp := ""
		if ch.ResponseRequired {
			resp = c.response
		}
		p := EncodeCRV1(ch.StateID, resp)
		if len(p) >= maxPackedPassLen {
			return "", "", errors.New("challenge response too long")
		}
		return ch.Username, p, nil
	}
	if sc := c.cfg.StaticChallenge; sc != nil {
		if len(pass) >= maxUserPassLen {
			return "", "", errors.New("password longer than 127 bytes")
		}
		if sc.Concat {
			if len(pass)+len(c.response) >= maxUserPassLen {
				return "", "", errors.New("password and challenge response together longer than 127 bytes")
			}
			return user, pass + c.response, nil
		}
		p := EncodeSCRV1(pass, c.response)
		if len(p) >= maxPackedPassLen {
			return "", "", errors.New("challenge response too long")
		}
		return user, p, nil
	}
	if len(pass) >= maxUserPassLen {
		return "", "", errors.New("password longer than 127 bytes")
	}
	return user, pass, nil
}

// handleChallenge handles AUTH_FAILED,CRV1:...: the server wants this connection dropped and a
// new one that answers the challenge (push.c receive_auth_failed, which keeps the same remote).
// ovpnd reconnects whatever auth-retry says, as OpenVPN's GUIs do through the management
// interface; the session passes the challenge to the next Client as Config.Challenge.
func (c *Client) handleChallenge(m string) {
	ch, err := ParseCRV1(m)
	if err != nil {
		c.emit(EventAuthFailed{Message: serverText(m)})
		c.fatal(StateExiting, "auth-failure", fmt.Errorf("server sent a malformed challenge: %w", err))
		return
	}
	c.token, c.tokenUser = "", ""
	c.emit(EventAuthChallenge{Challenge: ch})
	c.fatal(StateReconnecting, "auth-challenge", nil)
}

// handleInfo handles INFO_PRE and INFO: a pending authentication's web login or CR_TEXT
// challenge becomes an EventAuthPrompt, anything else an EventInfo.
func (c *Client) handleInfo(text string) {
	info, ok, err := ParsePendingInfo(text)
	switch {
	case !ok:
		c.emit(EventInfo{Message: serverText(text)})
	case err != nil:
		c.emit(EventError{Err: fmt.Errorf("ignoring the server's pending-authentication message %q: %w", truncate(serverText(text), 64), err)})
	default:
		if info.Prompt.Kind == PromptCRText {
			c.crTextOpen = true
		}
		c.emit(EventAuthPrompt(info))
	}
}
