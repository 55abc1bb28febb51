package main

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/internal/nmvpn"
)

func init() {
	register("import", command{"store a profile with ovpnd, or with --nm create a NetworkManager connection: import [--nm] [--name NAME] FILE", runImport})
}

// NetworkManager's settings service.
const (
	nmService      = "org.freedesktop.NetworkManager"
	nmSettingsPath = dbus.ObjectPath("/org/freedesktop/NetworkManager/Settings")
	nmAddConn      = "org.freedesktop.NetworkManager.Settings.AddConnection"
)

// NetworkManager's secret flags (vpn.data password-flags).
const (
	nmSecretStored    = "0" // NetworkManager keeps it in the root-only [vpn-secrets]
	nmSecretNotSaved  = "2" // asked every time, through the user's agent
	maxConnectionName = 255
)

func runImport(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("import", "import [--nm] [--name NAME] FILE", stderr)
	toNM := fs.Bool("nm", false, "create a NetworkManager connection of VPN type ovpnd instead of storing the profile with ovpnd")
	name := fs.String("name", "", "the profile's or connection's name (default: the file name without .conf/.ovpn)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	path := fs.Arg(0)
	if !*toNM {
		return storeProfile(path, *name, stdout, stderr)
	}
	if *name == "" {
		*name = sessionName(path)
	}
	if len(*name) > maxConnectionName {
		fmt.Fprintf(stderr, "ovpnctl: a connection name may have up to %d bytes\n", maxConnectionName)
		return exitUsage
	}
	// Read as the user, like up: every file the profile names is inlined, an encrypted key
	// decrypted (asking for its passphrase), so that the connection is self-contained.
	pr := newPrompter(upStdin, stderr)
	defer pr.close()
	cfg, ok := loadProfile(path, pr, stderr)
	if !ok {
		return exitFail
	}
	conn, err := nmConnection(cfg, *name)
	if err != nil {
		fmt.Fprintf(stderr, "ovpnctl: %v\n", err)
		return exitFail
	}
	c, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintf(stderr, "ovpnctl: connecting to the system bus: %v\n", err)
		return exitFail
	}
	defer c.Close()
	var p dbus.ObjectPath
	// Adding a system connection needs polkit's settings.modify.system for non-root users:
	// the call may let polkit ask the user's agent.
	if err := callInteractive(c, nmService, nmSettingsPath, nmAddConn, stderr, conn).Store(&p); err != nil {
		fmt.Fprintf(stderr, "ovpnctl: NetworkManager refused the connection: %v\n", err)
		return exitFail
	}
	uuid, _ := conn["connection"]["uuid"].Value().(string)
	fmt.Fprintf(stdout, "imported %s as NetworkManager connection %q (%s)\n", path, *name, uuid)
	if cfg.AuthUserPass != nil && cfg.AuthUserPass.Username == "" {
		// The plugin answers the username from vpn.data; NetworkManager's agents only ask
		// for secrets.
		fmt.Fprintf(stdout, "the profile names no username; set it with: nmcli connection modify %q +vpn.data username=NAME\n", *name)
	}
	fmt.Fprintf(stdout, "connect with: nmcli connection up %q\n", *name)
	return exitOK
}

// nmConnection builds the connection AddConnection takes: the profile (without its secret
// blocks) in vpn.data, private key material and the password in vpn.secrets, which only
// root can read, the VPN username in vpn.data's username (vpn.user-name is the local login
// of whoever activates the connection).
func nmConnection(cfg *config.Config, name string) (map[string]map[string]dbus.Variant, error) {
	data := map[string]string{}
	var password string
	hasPassword := false
	if a := cfg.AuthUserPass; a != nil {
		c := *cfg
		if a.Username != "" {
			data[nmvpn.DataUsername] = a.Username
		}
		if !a.Ask && !a.PasswordMissing {
			password, hasPassword = a.Password, true
		}
		// The profile only says that credentials are needed; the plugin answers the
		// session's prompts from vpn.data and vpn.secrets.
		c.AuthUserPass = &config.AuthUserPass{Ask: true}
		cfg = &c
		data[nmvpn.DataPasswordFlags] = nmSecretNotSaved
		if hasPassword {
			data[nmvpn.DataPasswordFlags] = nmSecretStored
		}
	}
	profile, secrets, err := nmvpn.Split(string(cfg.Format()))
	if err != nil {
		return nil, fmt.Errorf("splitting the profile: %w", err)
	}
	if len(profile)+len(secrets) > nmvpn.MaxProfile {
		return nil, fmt.Errorf("the profile is over %d bytes", nmvpn.MaxProfile)
	}
	data[nmvpn.DataProfile] = profile
	if hasPassword {
		secrets[nmvpn.SecretPassword] = password
	}
	uuid, err := newUUID()
	if err != nil {
		return nil, err
	}
	return map[string]map[string]dbus.Variant{
		"connection": {
			"id":   dbus.MakeVariant(name),
			"uuid": dbus.MakeVariant(uuid),
			"type": dbus.MakeVariant("vpn"),
			// A VPN connection does not start by itself at boot.
			"autoconnect": dbus.MakeVariant(false),
		},
		"vpn": {
			"service-type": dbus.MakeVariant(nmvpn.ServiceName),
			"data":         dbus.MakeVariant(data),
			"secrets":      dbus.MakeVariant(secrets),
		},
		"ipv4": {"method": dbus.MakeVariant("auto")},
		"ipv6": {"method": dbus.MakeVariant("auto")},
	}, nil
}

// newUUID is a random (version 4) UUID for the connection.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a UUID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
