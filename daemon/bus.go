package daemon

import (
	"encoding/xml"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	api "github.com/ovpnd/ovpnd/dbus"
)

// bus is the daemon's connection: unicast signals, subscriber tracking and exports.
type bus struct {
	conn *dbus.Conn
	auth Authorizer
	log  Logger

	// sigs receives the bus's signals; listenDone is closed when the listener returned.
	sigs       chan *dbus.Signal
	listenDone chan struct{}

	mu      sync.Mutex
	watched map[string]bool
	// gone is called with a unique name that left the bus.
	gone func(name string)
	// api is the parsed introspection XML.
	api introspect.Node
}

func newBus(conn *dbus.Conn, auth Authorizer, log Logger) (*bus, error) {
	b := &bus{conn: conn, auth: auth, log: log, watched: map[string]bool{}}
	if err := xml.Unmarshal([]byte(api.Introspection), &b.api); err != nil {
		return nil, fmt.Errorf("parsing the embedded introspection XML: %w", err)
	}
	return b, nil
}

// listen follows NameOwnerChanged so that subscriptions end when their owner leaves.
func (b *bus) listen() error {
	err := b.conn.AddMatchSignal(
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
	)
	if err != nil {
		return fmt.Errorf("watching bus names: %w", err)
	}
	ch := make(chan *dbus.Signal, 64)
	b.conn.Signal(ch)
	b.sigs, b.listenDone = ch, make(chan struct{})
	go func() {
		defer close(b.listenDone)
		for sig := range ch {
			// Any connection can send a signal to the daemon's unique name; only the bus
			// itself speaks for NameOwnerChanged. A spoofed one would end a victim's
			// subscriptions.
			if sig.Sender != busDriver || sig.Path != "/org/freedesktop/DBus" ||
				sig.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(sig.Body) != 3 {
				continue
			}
			name, _ := sig.Body[0].(string)
			newOwner, _ := sig.Body[2].(string)
			if newOwner != "" || name == "" || name[0] != ':' {
				continue
			}
			b.mu.Lock()
			w := b.watched[name]
			delete(b.watched, name)
			gone := b.gone
			b.mu.Unlock()
			if w && gone != nil {
				gone(name)
			}
		}
	}()
	return nil
}

// busDriver is the sender of the bus's own signals.
const busDriver = "org.freedesktop.DBus"

// close stops the signal listener and waits for it. The connection stays open (its owner
// closes it).
func (b *bus) close() {
	if b == nil || b.sigs == nil {
		return
	}
	b.conn.RemoveSignal(b.sigs)
	close(b.sigs)
	<-b.listenDone
	b.sigs = nil
}

// watch remembers that name has subscriptions to end when it leaves.
func (b *bus) watch(name string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.watched[name] = true
	b.mu.Unlock()
}

// signal sends a signal to one connection only. Signals carry session state and log lines
// that only the session's owner and root may see, so they are never broadcast.
func (b *bus) signal(dest string, path dbus.ObjectPath, iface, member string, body ...any) {
	if b == nil {
		return
	}
	msg := &dbus.Message{
		Type:  dbus.TypeSignal,
		Flags: dbus.FlagNoReplyExpected,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(iface),
			dbus.FieldMember:      dbus.MakeVariant(member),
			dbus.FieldDestination: dbus.MakeVariant(dest),
		},
		Body: body,
	}
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	if call := b.conn.Send(msg, nil); call != nil && call.Err != nil {
		b.log.Log(3, "", "", fmt.Sprintf("sending %s to %s: %v", member, dest, call.Err))
	}
}

// iface returns the named interface of the API definition.
func (b *bus) iface(name string) introspect.Interface {
	for _, i := range b.api.Interfaces {
		if i.Name == name {
			return i
		}
	}
	return introspect.Interface{Name: name}
}

// exportObject exports the API interface ifaceName (implemented by impl), the properties
// handler and introspection data at path. mayRead, when set, guards introspection like the
// other methods: a caller who may not see the object gets the same NotFound as for a path
// with nothing on it.
func (b *bus) exportObject(path dbus.ObjectPath, ifaceName string, impl, props any, mayRead func(dbus.Sender) *dbus.Error, children ...string) error {
	if err := b.conn.Export(impl, path, ifaceName); err != nil {
		return fmt.Errorf("exporting %s at %s: %w", ifaceName, path, err)
	}
	if err := b.conn.Export(props, path, api.PropertiesInterface); err != nil {
		return fmt.Errorf("exporting properties at %s: %w", path, err)
	}
	// org.freedesktop.DBus.Peer is not listed: godbus answers it and NewIntrospectable adds
	// it (listing it here too made busctl refuse the XML: "duplicate method 'Ping'").
	node := &introspect.Node{
		Name: string(path),
		Interfaces: []introspect.Interface{
			introspect.IntrospectData,
			b.propertiesIntrospection(),
			b.iface(ifaceName),
		},
	}
	for _, c := range children {
		node.Children = append(node.Children, introspect.Node{Name: c})
	}
	in := introspector{xml: string(introspect.NewIntrospectable(node)), mayRead: mayRead}
	if err := b.conn.Export(in, path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return fmt.Errorf("exporting introspection at %s: %w", path, err)
	}
	return nil
}

// introspector serves one object's introspection XML to those who may see the object.
type introspector struct {
	xml     string
	mayRead func(dbus.Sender) *dbus.Error
}

// Introspect returns the object's XML.
func (i introspector) Introspect(sender dbus.Sender) (string, *dbus.Error) {
	if i.mayRead != nil {
		if derr := i.mayRead(sender); derr != nil {
			return "", derr
		}
	}
	return i.xml, nil
}

// exportSessionTree serves the session path prefix itself and every path below it that has no
// session: introspecting the prefix lists only the caller's own sessions (visible gives
// their element names for a uid), and any call on a path with no session, or with another
// user's, answers the same NotFound.
func (b *bus) exportSessionTree(visible func(uid uint32) []string) error {
	root := dbus.ObjectPath(strings.TrimSuffix(api.SessionPathPrefix, "/"))
	t := sessionTree{b: b, root: root, visible: visible}
	for iface, v := range map[string]any{
		"org.freedesktop.DBus.Introspectable": treeIntrospect{t},
		api.SessionInterface:                  treeSession{t},
		api.PropertiesInterface:               treeProps{t},
	} {
		if err := b.conn.ExportSubtree(v, root, iface); err != nil {
			return fmt.Errorf("exporting %s below %s: %w", iface, root, err)
		}
	}
	return nil
}

type sessionTree struct {
	b       *bus
	root    dbus.ObjectPath
	visible func(uid uint32) []string
}

func pathOf(msg dbus.Message) dbus.ObjectPath {
	p, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	return p
}

type treeIntrospect struct{ t sessionTree }

// Introspect lists the caller's sessions at the prefix and answers NotFound below it.
func (ti treeIntrospect) Introspect(sender dbus.Sender, msg dbus.Message) (string, *dbus.Error) {
	path := pathOf(msg)
	if path != ti.t.root {
		return "", errNoObject(path)
	}
	uid, err := ti.t.b.auth.CallerUID(sender)
	if err != nil {
		return "", errFailed("%v", err)
	}
	node := &introspect.Node{Name: string(path), Interfaces: []introspect.Interface{introspect.IntrospectData}}
	for _, n := range ti.t.visible(uid) {
		node.Children = append(node.Children, introspect.Node{Name: n})
	}
	return string(introspect.NewIntrospectable(node)), nil
}

// treeSession answers net.ovpnd1.Session calls on paths with no session (visible to the
// caller) with NotFound; its methods mirror sessionIface's signatures so that the arguments
// decode and the answer is the same as for another user's session.
type treeSession struct{ t sessionTree }

// Disconnect answers NotFound.
func (ts treeSession) Disconnect(msg dbus.Message) *dbus.Error { return errNoObject(pathOf(msg)) }

// Restart answers NotFound.
func (ts treeSession) Restart(msg dbus.Message) *dbus.Error { return errNoObject(pathOf(msg)) }

// PendingInput answers NotFound.
func (ts treeSession) PendingInput(msg dbus.Message) ([]api.InputEntry, *dbus.Error) {
	return nil, errNoObject(pathOf(msg))
}

// ProvideInput answers NotFound.
func (ts treeSession) ProvideInput(msg dbus.Message, _ uint32, _ string) *dbus.Error {
	return errNoObject(pathOf(msg))
}

// LogHistory answers NotFound.
func (ts treeSession) LogHistory(msg dbus.Message) ([]api.LogEntry, *dbus.Error) {
	return nil, errNoObject(pathOf(msg))
}

// Subscribe answers NotFound.
func (ts treeSession) Subscribe(msg dbus.Message) *dbus.Error { return errNoObject(pathOf(msg)) }

// Unsubscribe answers NotFound.
func (ts treeSession) Unsubscribe(msg dbus.Message) *dbus.Error { return errNoObject(pathOf(msg)) }

type treeProps struct{ t sessionTree }

// Get answers NotFound.
func (tp treeProps) Get(msg dbus.Message, _, _ string) (dbus.Variant, *dbus.Error) {
	return dbus.Variant{}, errNoObject(pathOf(msg))
}

// GetAll answers NotFound.
func (tp treeProps) GetAll(msg dbus.Message, _ string) (map[string]dbus.Variant, *dbus.Error) {
	return nil, errNoObject(pathOf(msg))
}

// Set answers NotFound.
func (tp treeProps) Set(msg dbus.Message, _, _ string, _ dbus.Variant) *dbus.Error {
	return errNoObject(pathOf(msg))
}

// unexport removes everything exportObject added.
func (b *bus) unexport(path dbus.ObjectPath, ifaceName string) {
	for _, i := range []string{ifaceName, api.PropertiesInterface, "org.freedesktop.DBus.Introspectable"} {
		_ = b.conn.Export(nil, path, i)
	}
}

func (b *bus) propertiesIntrospection() introspect.Interface {
	return introspect.Interface{
		Name: api.PropertiesInterface,
		Methods: []introspect.Method{
			{Name: "Get", Args: []introspect.Arg{
				{Name: "interface_name", Type: "s", Direction: "in"},
				{Name: "property_name", Type: "s", Direction: "in"},
				{Name: "value", Type: "v", Direction: "out"}}},
			{Name: "GetAll", Args: []introspect.Arg{
				{Name: "interface_name", Type: "s", Direction: "in"},
				{Name: "props", Type: "a{sv}", Direction: "out"}}},
			{Name: "Set", Args: []introspect.Arg{
				{Name: "interface_name", Type: "s", Direction: "in"},
				{Name: "property_name", Type: "s", Direction: "in"},
				{Name: "value", Type: "v", Direction: "in"}}},
		},
		Signals: []introspect.Signal{{Name: "PropertiesChanged", Args: []introspect.Arg{
			{Name: "interface_name", Type: "s"},
			{Name: "changed_properties", Type: "a{sv}"},
			{Name: "invalidated_properties", Type: "as"}}}},
	}
}
