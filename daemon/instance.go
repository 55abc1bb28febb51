package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// InstanceOptions configure the one session of an ovpnd@NAME.service instance.
type InstanceOptions struct {
	// Name is the instance name (%i).
	Name string
	// Config is the loaded profile (/etc/ovpnd/NAME.conf).
	Config *config.Config
	// Conn, when set, is the bus on which the instance owns api.InstanceBusName(Name) and
	// serves its session at api.SessionPath(Name), so that ovpnctl lists and controls it
	// like the manager's sessions (owner root).
	Conn *dbus.Conn
	// Auth is the authorizer for bus callers (a BusAuthorizer on Conn if nil).
	Auth Authorizer
	// Log receives log lines (stderr text if nil).
	Log Logger
	// StateDir is routing's crash-recovery directory.
	StateDir string
	// Credentials, when set, supplies the username and password (from systemd credentials);
	// otherwise a profile that needs them waits for ProvideInput over the bus.
	Credentials func(ctx context.Context) (user, pass string, err error)
	// NewTunnel makes the tunnel (session.New if nil).
	NewTunnel TunnelFactory
	// Waiting, when set, is told what the session waits for over the bus each time it
	// starts waiting ("credentials", "an answer to the server's challenge"), so that
	// systemd's STATUS can say so (Notifier.Waiting).
	Waiting func(what string)
}

// Instance is a running ovpnd@NAME session.
type Instance struct {
	obj  *object
	opts InstanceOptions
}

// NewInstance prepares the session and, with a bus, exports it and requests the
// instance's bus name.
func NewInstance(opts InstanceOptions) (*Instance, error) {
	if !api.ValidName(opts.Name) {
		return nil, fmt.Errorf("instance name %q is not 1-%d characters of [A-Za-z0-9_.@-]", opts.Name, api.MaxNameLen)
	}
	if opts.Config == nil {
		return nil, errors.New("instance has no profile")
	}
	if opts.Log == nil {
		opts.Log = NewLogger(os.Stderr)
	}
	var b *bus
	if opts.Conn != nil {
		if opts.Auth == nil {
			opts.Auth = &BusAuthorizer{Conn: opts.Conn}
		}
		var err error
		if b, err = newBus(opts.Conn, opts.Auth, opts.Log); err != nil {
			return nil, err
		}
	}
	o := newObject(b, opts.Name, 0, opts.Config, opts.Log)
	so := o.sessionOptions(opts.StateDir)
	so.StateName = InstanceStateName(opts.Name)
	if opts.Credentials != nil {
		so.Credentials = opts.Credentials
	} else if opts.Waiting != nil {
		ask := so.Credentials
		so.Credentials = func(ctx context.Context) (string, string, error) {
			opts.Waiting("credentials")
			return ask(ctx)
		}
	}
	if opts.Waiting != nil {
		// Challenge answers always come over the bus, even with systemd credentials.
		respond := so.Respond
		so.Respond = func(ctx context.Context, p session.Prompt) (string, error) {
			opts.Waiting("an answer to the server's challenge")
			return respond(ctx, p)
		}
	}
	newTunnel := opts.NewTunnel
	if newTunnel == nil {
		newTunnel = newSessionTunnel
	}
	tun, err := newTunnel(opts.Config, so)
	if err != nil {
		return nil, err
	}
	o.tun = tun
	if b != nil {
		b.gone = o.unsubscribe
		if err := b.listen(); err != nil {
			return nil, err
		}
		if err := b.exportObject(o.path, api.SessionInterface, sessionIface{o}, sessionProps{o}, o.mayIntrospect); err != nil {
			return nil, err
		}
		// Other paths below the session prefix answer NotFound, as the manager's do; the
		// one session is root's.
		elem := strings.TrimPrefix(string(o.path), api.SessionPathPrefix)
		if err := b.exportSessionTree(func(uid uint32) []string {
			if uid == 0 {
				return []string{elem}
			}
			return nil
		}); err != nil {
			return nil, err
		}
		reply, err := opts.Conn.RequestName(api.InstanceBusName(opts.Name), dbus.NameFlagDoNotQueue)
		if err != nil {
			return nil, fmt.Errorf("requesting bus name %s: %w", api.InstanceBusName(opts.Name), err)
		}
		if reply != dbus.RequestNameReplyPrimaryOwner {
			return nil, fmt.Errorf("bus name %s is taken: another ovpnd@%s is running", api.InstanceBusName(opts.Name), opts.Name)
		}
	}
	return &Instance{obj: o, opts: opts}, nil
}

// Tunnel is the instance's session, for observers such as Notifier; call it before Run.
func (i *Instance) Tunnel() Tunnel { return i.obj.tun }

// Run runs the session until ctx ends, Disconnect, or a fatal error.
func (i *Instance) Run(ctx context.Context) error {
	done := make(chan struct{})
	i.obj.start(ctx, func(*object) { close(done) })
	<-done
	// Every goroutine of the instance is joined: the object's two by done, the bus
	// listener here.
	i.obj.bus.close()
	i.obj.mu.Lock()
	defer i.obj.mu.Unlock()
	return i.obj.runErr
}

// Restart reconnects (SIGHUP).
func (i *Instance) Restart() {
	if tun := i.obj.tunnel(); tun != nil {
		tun.Restart()
	}
}

// Disconnect stops the session cleanly (SIGTERM).
func (i *Instance) Disconnect() {
	if tun := i.obj.tunnel(); tun != nil {
		tun.Disconnect()
	}
}

// maxCredentialFile bounds the credentials file; it holds two short lines.
const maxCredentialFile = 64 << 10

// CredentialsFromDirectory returns a Credentials callback reading the systemd credential
// "auth-user-pass" (a username line and a password line) from dir, which is normally
// $CREDENTIALS_DIRECTORY. It returns nil when dir is empty or holds no such credential.
// The file is read when the server asks, so nothing is kept in memory in between.
func CredentialsFromDirectory(dir string) (func(ctx context.Context) (string, string, error), error) {
	path, err := credentialPath(dir, "auth-user-pass")
	if path == "" {
		return nil, err
	}
	return func(context.Context) (string, string, error) {
		data, err := readCredential(path, "auth-user-pass")
		if err != nil {
			return "", "", err
		}
		return parseUserPass(data)
	}, nil
}

// PassphraseFromDirectory returns the passphrase reader for an encrypted private key of
// ovpnd@NAME: the first line of the systemd credential "askpass" (LoadCredential=askpass:FILE)
// in dir, $CREDENTIALS_DIRECTORY. It is nil when there is no such credential.
func PassphraseFromDirectory(dir string) (func(what string) ([]byte, error), error) {
	path, err := credentialPath(dir, "askpass")
	if path == "" {
		return nil, err
	}
	return func(string) ([]byte, error) {
		data, err := readCredential(path, "askpass")
		if err != nil {
			return nil, err
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}, nil
}

// credentialPath is the path of the systemd credential name in dir ($CREDENTIALS_DIRECTORY),
// or "" when dir is empty or holds no such credential (err is then nil unless it could not be
// looked up).
func credentialPath(dir, name string) (string, error) {
	if dir == "" {
		return "", nil
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("reading credential %s: %w", name, err)
	}
	return path, nil
}

// readCredential reads the credential name at path, at most maxCredentialFile bytes: it is
// read when needed, so that nothing is kept in memory in between.
func readCredential(path, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading credential %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading credential %s: %w", name, err)
	}
	if len(data) > maxCredentialFile {
		return nil, fmt.Errorf("credential %s is larger than %d bytes", name, maxCredentialFile)
	}
	return data, nil
}

// parseUserPass splits an auth-user-pass file: username on the first line, password on
// the second (CRLF tolerated).
func parseUserPass(data []byte) (string, string, error) {
	if len(data) > maxCredentialFile {
		return "", "", fmt.Errorf("credential auth-user-pass is larger than %d bytes", maxCredentialFile)
	}
	lines := strings.SplitN(string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))), "\n", 3)
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], "\r")
	}
	if len(lines) < 2 || lines[0] == "" || lines[1] == "" {
		return "", "", errors.New("credential auth-user-pass needs a username line and a password line")
	}
	if len(lines[0]) > api.MaxInputLen || len(lines[1]) > api.MaxInputLen {
		return "", "", fmt.Errorf("credential auth-user-pass has a line longer than %d bytes", api.MaxInputLen)
	}
	return lines[0], lines[1], nil
}
