package session

import (
	"fmt"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// setLinkMTUUp sets a network interface's MTU and brings it up. A new tun device is down;
// it is up as soon as the session owns it so that routing can add addresses and routes to
// a working link.
func setLinkMTUUp(name string, mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("setting the MTU of %s to %d: %w", name, mtu, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading %s flags: %w", name, err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

// linkIndex is the interface index of name, from one ioctl: net.InterfaceByName reads
// every interface of the host to find one.
func linkIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("looking up %s: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("looking up %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("looking up %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// openKernelTun creates a tun device (name may hold %d for the kernel to number it) with
// offloads (IFF_VNET_HDR: GSO and GRO through the tun package), sets its MTU and brings it
// up. The tun package's own constructor also starts two listeners (link events from
// netlink, and a write to the device every second), whose events nothing here reads: they
// cost two threads while connecting and a wake-up per second for the tunnel's life.
func openKernelTun(name string, mtu int) (tunDevice, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("creating the device (TUNSETIFF): %w", err)
	}
	// From here the descriptor belongs to an os.File inside the tun package, also when it
	// fails: closing it here could close a reused descriptor when that file is finalised.
	d, link, err := tun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		return nil, "", err
	}
	if err := setLinkMTUUp(link, mtu); err != nil {
		d.Close()
		return nil, "", err
	}
	return d, link, nil
}
