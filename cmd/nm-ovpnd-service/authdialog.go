package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ovpnd/ovpnd/internal/nmvpn"
)

// Limits on what the auth-dialog reads from its agent.
const (
	maxDialogInput = 2 << 20
	maxDialogLine  = 1 << 20
)

// dialogRequest is what an agent tells the auth-dialog.
type dialogRequest struct {
	name       string
	external   bool
	reprompt   bool
	hints      []string
	data       map[string]string
	secrets    map[string]string
	unknownArg string
}

func parseDialogArgs(args []string) (*dialogRequest, error) {
	r := &dialogRequest{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch a {
		case "-u", "--uuid", "-s", "--service":
			_, err = value()
		case "-n", "--name":
			r.name, err = value()
		case "-t", "--hint":
			var h string
			h, err = value()
			r.hints = append(r.hints, h)
		case "--external-ui-mode":
			r.external = true
		case "-r", "--reprompt":
			r.reprompt = true
		case "-i", "--allow-interaction":
		default:
			// Options of later NetworkManager versions are not fatal.
			r.unknownArg = a
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// readDialogInput reads the DATA_KEY=/DATA_VAL= and SECRET_KEY=/SECRET_VAL= items up to
// DONE (a value of several lines comes as several VAL lines).
func readDialogInput(in io.Reader, r *dialogRequest) error {
	r.data, r.secrets = map[string]string{}, map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(in, maxDialogInput))
	sc.Buffer(make([]byte, 64<<10), maxDialogLine)
	var key string
	var vals []string
	var target map[string]string
	flush := func() {
		if target != nil && key != "" {
			target[key] = strings.Join(vals, "\n")
		}
		key, vals, target = "", nil, nil
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "DONE":
			flush()
			return nil
		case line == "":
			flush()
		case strings.HasPrefix(line, "DATA_KEY="):
			flush()
			key, target = strings.TrimPrefix(line, "DATA_KEY="), r.data
		case strings.HasPrefix(line, "SECRET_KEY="):
			flush()
			key, target = strings.TrimPrefix(line, "SECRET_KEY="), r.secrets
		case strings.HasPrefix(line, "DATA_VAL="), strings.HasPrefix(line, "SECRET_VAL="):
			_, v, _ := strings.Cut(line, "=")
			vals = append(vals, v)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	flush()
	return nil
}

// dialogSecret is one secret the agent should ask for.
type dialogSecret struct {
	key, label string
	ask, echo  bool
}

// plan decides which secrets to ask for: with hints (SecretsRequired during a connection),
// the hinted ones with the server's prompt; otherwise the password, when the profile asks
// for one that is not stored (or NetworkManager asks again after a refusal).
func (r *dialogRequest) plan() (message string, out []dialogSecret) {
	if len(r.hints) > 0 {
		echo := false
		for _, h := range r.hints {
			if m, ok := strings.CutPrefix(h, "x-vpn-message:"); ok {
				message = m
			}
			if h == "x-echo" {
				echo = true
			}
		}
		for _, h := range r.hints {
			switch h {
			case nmvpn.SecretPassword:
				out = append(out, dialogSecret{key: h, label: "Password", ask: true})
			case nmvpn.SecretChallenge:
				label := message
				if label == "" {
					label = "Response"
				}
				out = append(out, dialogSecret{key: h, label: label, ask: true, echo: echo})
			}
		}
		return message, out
	}
	flags, _ := strconv.ParseUint(r.data[nmvpn.DataPasswordFlags], 10, 32)
	const notRequired = 4
	if asksPassword(r.data[nmvpn.DataProfile]) && flags&notRequired == 0 {
		_, stored := r.secrets[nmvpn.SecretPassword]
		out = append(out, dialogSecret{key: nmvpn.SecretPassword, label: "Password", ask: !stored || r.reprompt})
	}
	return message, out
}

// asksPassword reports whether a profile (vpn.data's, as ovpnctl import --nm writes it) has
// an auth-user-pass without a file or inline block: the password is asked for.
func asksPassword(profile string) bool {
	for _, line := range strings.Split(profile, "\n") {
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "auth-user-pass" {
			return true
		}
	}
	return false
}

// keyfileValue escapes a value for a GKeyFile line.
func keyfileValue(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r", "\t", "\\t")
	s = r.Replace(s)
	if strings.HasPrefix(s, " ") {
		s = "\\s" + s[1:]
	}
	return s
}

// runAuthDialog is the auth-dialog in external-UI mode: it reads the connection's data and
// secrets and prints the [VPN Plugin UI] keyfile listing what the agent should ask for
// (nmcli asks on the terminal or takes it from passwd-file; gnome-shell shows a dialog).
// The GTK mode of nm-applet is not provided.
func runAuthDialog(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	r, err := parseDialogArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "nm-ovpnd-auth-dialog: %v\n", err)
		return 2
	}
	if !r.external {
		fmt.Fprintln(stderr, "nm-ovpnd-auth-dialog: only --external-ui-mode is supported (nmcli, gnome-shell); this agent needs a GTK dialog that ovpnd does not provide")
		return 1
	}
	if err := readDialogInput(stdin, r); err != nil {
		fmt.Fprintf(stderr, "nm-ovpnd-auth-dialog: %v\n", err)
		return 1
	}
	message, secrets := r.plan()
	name := strings.ToValidUTF8(r.name, "?")
	desc := fmt.Sprintf("The VPN connection %q needs authentication.", name)
	if message != "" {
		desc = message
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[VPN Plugin UI]\nVersion=2\nDescription=%s\nTitle=%s\n", keyfileValue(desc), keyfileValue("Authenticate VPN "+name))
	for _, s := range secrets {
		fmt.Fprintf(&b, "\n[%s]\nValue=\nLabel=%s\nIsSecret=true\nShouldAsk=%v\nForceEcho=%v\n", s.key, keyfileValue(s.label), s.ask, s.echo)
	}
	b.WriteString("\n\n")
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return 1
	}
	return 0
}
