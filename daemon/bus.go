package daemon

import (
	"encoding/xml"
	"fmt"
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
	go func() {
		for sig := range ch {
			if sig.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(sig.Body) != 3 {
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
// handler and introspection data at path.
func (b *bus) exportObject(path dbus.ObjectPath, ifaceName string, impl, props any, children ...string) error {
	if err := b.conn.Export(impl, path, ifaceName); err != nil {
		return fmt.Errorf("exporting %s at %s: %w", ifaceName, path, err)
	}
	if err := b.conn.Export(props, path, api.PropertiesInterface); err != nil {
		return fmt.Errorf("exporting properties at %s: %w", path, err)
	}
	node := &introspect.Node{
		Name: string(path),
		Interfaces: []introspect.Interface{
			introspect.IntrospectData,
			b.propertiesIntrospection(),
			peerIntrospection,
			b.iface(ifaceName),
		},
	}
	for _, c := range children {
		node.Children = append(node.Children, introspect.Node{Name: c})
	}
	if err := b.conn.Export(introspect.NewIntrospectable(node), path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return fmt.Errorf("exporting introspection at %s: %w", path, err)
	}
	return nil
}

// unexport removes everything exportObject added.
func (b *bus) unexport(path dbus.ObjectPath, ifaceName string) {
	for _, i := range []string{ifaceName, api.PropertiesInterface, "org.freedesktop.DBus.Introspectable"} {
		_ = b.conn.Export(nil, path, i)
	}
}

var peerIntrospection = introspect.Interface{
	Name: "org.freedesktop.DBus.Peer",
	Methods: []introspect.Method{
		{Name: "Ping"},
		{Name: "GetMachineId", Args: []introspect.Arg{{Name: "machine_uuid", Type: "s", Direction: "out"}}},
	},
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
