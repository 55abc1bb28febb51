package main

import (
	"fmt"
	"strconv"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/internal/nmvpn"
)

// nmConn is what the plugin takes from NetworkManager's connection dictionary.
type nmConn struct {
	id, uuid string
	// profile is the self-contained OpenVPN profile (vpn.data's profile with the secret
	// blocks of vpn.secrets put back).
	profile  string
	username string
	// password is vpn.secrets' password; hasPassword tells an empty one from none.
	password    string
	hasPassword bool
	// challenge answers a challenge asked mid-connect (NewSecrets).
	challenge    string
	hasChallenge bool
	// passwordFlags is vpn.data's password-flags (NetworkManager's secret flags).
	passwordFlags uint32
}

// settingString reads a string setting; a missing one is "".
func settingString(c map[string]map[string]dbus.Variant, setting, key string) (string, error) {
	v, ok := c[setting][key]
	if !ok {
		return "", nil
	}
	s, ok := v.Value().(string)
	if !ok {
		return "", fmt.Errorf("%s.%s: type %s, want s", setting, key, v.Signature())
	}
	return s, nil
}

// settingDict reads vpn.data or vpn.secrets (a{ss}); a missing one is empty.
func settingDict(c map[string]map[string]dbus.Variant, setting, key string) (map[string]string, error) {
	v, ok := c[setting][key]
	if !ok {
		return map[string]string{}, nil
	}
	m, ok := v.Value().(map[string]string)
	if !ok {
		return nil, fmt.Errorf("%s.%s: type %s, want a{ss}", setting, key, v.Signature())
	}
	return m, nil
}

// parseConn reads a connection NetworkManager passes to NeedSecrets, Connect or NewSecrets.
// Errors name the setting at fault.
func parseConn(c map[string]map[string]dbus.Variant) (*nmConn, error) {
	var n nmConn
	var err error
	if n.id, err = settingString(c, "connection", "id"); err != nil {
		return nil, err
	}
	if n.uuid, err = settingString(c, "connection", "uuid"); err != nil {
		return nil, err
	}
	if st, err := settingString(c, "vpn", "service-type"); err != nil {
		return nil, err
	} else if st != "" && st != nmvpn.ServiceName {
		return nil, fmt.Errorf("vpn.service-type is %q, not %s", st, nmvpn.ServiceName)
	}
	data, err := settingDict(c, "vpn", "data")
	if err != nil {
		return nil, err
	}
	secrets, err := settingDict(c, "vpn", "secrets")
	if err != nil {
		return nil, err
	}
	n.username = data[nmvpn.DataUsername]
	if f := data[nmvpn.DataPasswordFlags]; f != "" {
		v, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("vpn.data %s: %q is not a number", nmvpn.DataPasswordFlags, api.Printable(f))
		}
		n.passwordFlags = uint32(v)
	}
	n.password, n.hasPassword = secrets[nmvpn.SecretPassword]
	n.challenge, n.hasChallenge = secrets[nmvpn.SecretChallenge]
	if p, ok := data[nmvpn.DataProfile]; ok {
		if n.profile, err = nmvpn.Join(p, secrets); err != nil {
			return nil, err
		}
	}
	return &n, nil
}

// sessionName is the ovpnd session of a connection: nm- and its UUID (or its id when NM
// sent no UUID), always a valid name.
func (n *nmConn) sessionName() string {
	base := n.uuid
	if base == "" {
		base = n.id
	}
	out := []byte("nm-" + base)
	for i, c := range out {
		if !api.ValidName(string(c)) {
			out[i] = '_'
		}
	}
	if len(out) > api.MaxNameLen {
		out = out[:api.MaxNameLen]
	}
	return string(out)
}

// needsPassword reports whether the profile asks for a username and password
// (auth-user-pass without inline credentials).
func (n *nmConn) needsPassword() bool {
	return profileAsksPassword(n.profile)
}

// profileAsksPassword reports whether a profile's auth-user-pass leaves the password to be
// asked for: a bare auth-user-pass line, or an inline block with the username only. A
// profile that does not parse is judged by its lines; ovpnd reports its errors on Connect.
func profileAsksPassword(profile string) bool {
	if asksPassword(profile) {
		return true
	}
	cfg, _, err := config.ParseInline("nm", []byte(profile))
	if err != nil || cfg.AuthUserPass == nil {
		return false
	}
	return cfg.AuthUserPass.Ask || cfg.AuthUserPass.PasswordMissing
}
