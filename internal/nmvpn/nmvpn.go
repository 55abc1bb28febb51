// Package nmvpn holds what ovpnd's NetworkManager plugin (cmd/nm-ovpnd-service) and
// `ovpnctl import --nm` agree on: the VPN type and D-Bus service name, the keys of a
// connection's vpn.data and vpn.secrets, and how a self-contained profile is split between
// them so that key material and passwords are in vpn.secrets, which only root can read.
package nmvpn

import (
	"fmt"
	"sort"
	"strings"
)

// Names of the plugin.
const (
	// VPNType is the short name users give nmcli (vpn-type ovpnd): the .name file's name=.
	VPNType = "ovpnd"
	// ServiceName is the plugin's D-Bus service, the connections' vpn.service-type.
	ServiceName = "org.freedesktop.NetworkManager.ovpnd"
)

// Keys of vpn.data.
const (
	// DataProfile is the self-contained OpenVPN profile without its secret blocks.
	DataProfile = "profile"
	// DataUsername is the username for auth-user-pass (vpn.user-name is the local login of
	// whoever activates the connection, not the VPN's username).
	DataUsername = "username"
	// DataPasswordFlags is NetworkManager's flags of the password secret: 0 stored by NM,
	// 1 kept by the user's agent, 2 asked every time.
	DataPasswordFlags = "password-flags"
)

// Keys of vpn.secrets.
const (
	// SecretPassword is the auth-user-pass password.
	SecretPassword = "password"
	// SecretChallenge answers a challenge (static-challenge, CRV1, CR_TEXT) asked mid-connect.
	SecretChallenge = "challenge-response"
	// secretBlockPrefix starts the key of a secret inline block: inline-key, inline-tls-crypt.
	secretBlockPrefix = "inline-"
)

// MaxProfile bounds the profile the plugin assembles (the daemon's own limit).
const MaxProfile = 1 << 20

// secretBlocks are the inline blocks that hold private key material; they go to
// vpn.secrets, everything else of the profile to vpn.data.
var secretBlocks = map[string]bool{
	"key": true, "tls-auth": true, "tls-crypt": true, "tls-crypt-v2": true, "secret": true,
	"auth-user-pass": true, "http-proxy-user-pass": true, "pkcs12": true,
}

// Split takes the secret inline blocks out of a self-contained profile: data is the rest,
// secrets maps inline-TAG to each block's content.
func Split(profile string) (data string, secrets map[string]string, err error) {
	secrets = map[string]string{}
	var out, blk strings.Builder
	tag := ""
	for n, line := range strings.SplitAfter(profile, "\n") {
		t := strings.TrimSpace(line)
		if tag != "" {
			if t == "</"+tag+">" {
				secrets[secretBlockPrefix+tag] = blk.String()
				blk.Reset()
				tag = ""
				continue
			}
			blk.WriteString(line)
			if !strings.HasSuffix(line, "\n") {
				blk.WriteByte('\n')
			}
			continue
		}
		if strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") && !strings.HasPrefix(t, "</") {
			if name := t[1 : len(t)-1]; secretBlocks[name] {
				if _, dup := secrets[secretBlockPrefix+name]; dup {
					return "", nil, fmt.Errorf("line %d: a second <%s> block", n+1, name)
				}
				tag = name
				continue
			}
		}
		out.WriteString(line)
	}
	if tag != "" {
		return "", nil, fmt.Errorf("<%s> is not closed", tag)
	}
	return out.String(), secrets, nil
}

// Join puts a connection's profile back together: data's profile with the secret blocks
// appended (their order does not matter to the parser). Unknown inline-* secrets are an
// error naming them, so a connection edited by hand fails clearly.
func Join(profile string, secrets map[string]string) (string, error) {
	var b strings.Builder
	b.WriteString(profile)
	if profile != "" && !strings.HasSuffix(profile, "\n") {
		b.WriteByte('\n')
	}
	keys := make([]string, 0, len(secrets))
	for k := range secrets {
		if strings.HasPrefix(k, secretBlockPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		tag := strings.TrimPrefix(k, secretBlockPrefix)
		if !secretBlocks[tag] {
			return "", fmt.Errorf("vpn.secrets %s: not a block this plugin knows", k)
		}
		v := secrets[k]
		if strings.Contains(v, "</"+tag+">") {
			return "", fmt.Errorf("vpn.secrets %s: contains its own end tag", k)
		}
		fmt.Fprintf(&b, "<%s>\n%s", tag, v)
		if !strings.HasSuffix(v, "\n") {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "</%s>\n", tag)
	}
	if b.Len() > MaxProfile {
		return "", fmt.Errorf("the profile is %d bytes; the limit is %d", b.Len(), MaxProfile)
	}
	return b.String(), nil
}
