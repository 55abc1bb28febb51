package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

// busTimeout bounds every call to resolved: a hung resolver must not hang
// tunnel setup or teardown.
const busTimeout = 5 * time.Second

// godbusResolved is resolvedBus over a godbus connection.
type godbusResolved struct {
	conn   *dbus.Conn
	owned  bool // close the connection on close
	sigs   chan *dbus.Signal
	owner  chan struct{}
	done   chan struct{}
	closed chan struct{}
}

// dialSystemResolved connects to the system bus.
func dialSystemResolved() (resolvedBus, error) {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, fmt.Errorf("connecting to the system bus: %w", err)
	}
	b, err := newGodbusResolved(conn, true)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return b, nil
}

// newGodbusResolved wraps conn and subscribes to NameOwnerChanged for
// resolved, so that restarts are noticed.
func newGodbusResolved(conn *dbus.Conn, owned bool) (*godbusResolved, error) {
	b := &godbusResolved{conn: conn, owned: owned, sigs: make(chan *dbus.Signal, 16),
		owner: make(chan struct{}, 1), done: make(chan struct{}), closed: make(chan struct{})}
	err := conn.AddMatchSignal(
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, resolvedName),
	)
	if err != nil {
		return nil, fmt.Errorf("watching systemd-resolved restarts: %w", err)
	}
	conn.Signal(b.sigs)
	go b.loop()
	return b, nil
}

func (b *godbusResolved) loop() {
	defer close(b.done)
	for {
		select {
		case <-b.closed:
			return
		case s, ok := <-b.sigs:
			if !ok {
				return
			}
			if s.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(s.Body) != 3 {
				continue
			}
			name, _ := s.Body[0].(string)
			newOwner, _ := s.Body[2].(string)
			if name == resolvedName && newOwner != "" {
				select {
				case b.owner <- struct{}{}:
				default: // one pending notification is enough
				}
			}
		}
	}
}

func (b *godbusResolved) call(method string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	return b.conn.Object(resolvedName, resolvedPath).CallWithContext(ctx, resolvedIface+"."+method, 0, args...).Err
}

func (b *godbusResolved) nameHasOwner() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	var has bool
	err := b.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, resolvedName).Store(&has)
	return has, err
}

func (b *godbusResolved) ownerChanged() <-chan struct{} { return b.owner }

func (b *godbusResolved) close() error {
	select {
	case <-b.closed:
		return nil
	default:
	}
	close(b.closed)
	b.conn.RemoveSignal(b.sigs)
	<-b.done
	if b.owned {
		return b.conn.Close()
	}
	return nil
}

func dbusErrorName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dp *dbus.Error
	if errors.As(err, &dp) && dp != nil {
		return dp.Name
	}
	return ""
}

func isUnknownMethod(err error) bool {
	return dbusErrorName(err) == "org.freedesktop.DBus.Error.UnknownMethod"
}

func isNoSuchLink(err error) bool {
	return dbusErrorName(err) == "org.freedesktop.resolve1.NoSuchLink"
}
