module github.com/ovpnd/ovpnd

go 1.26.8

// Every dependency is permissively licensed (the project is BSD-2-Clause) and earns its place:
require (
	// LZO1X decompression of packets from servers that compress (MIT). ovpnd never compresses.
	github.com/anchore/go-lzo v0.1.1
	// sd_notify (READY/STATUS/WATCHDOG) and journald structured logging (Apache-2.0).
	github.com/coreos/go-systemd/v22 v22.7.0
	// System bus: our D-Bus API, systemd-resolved, polkit (BSD-2-Clause).
	github.com/godbus/dbus/v5 v5.2.4
	// Readable diffs in table tests (BSD-3-Clause); test-only.
	github.com/google/go-cmp v0.7.0
	// LZ4 block decompression for `compress lz4`/`lz4-v2` servers (BSD-3-Clause).
	github.com/pierrec/lz4/v4 v4.1.33
	// Addresses, routes, links and MTU through rtnetlink (Apache-2.0).
	github.com/vishvananda/netlink v1.3.1
	// ChaCha20-Poly1305 for the data channel (BSD-3-Clause).
	golang.org/x/crypto v0.59.0
	// SOCKS5 CONNECT for socks-proxy over TCP (golang.org/x/net/proxy; BSD-3-Clause).
	golang.org/x/net v0.62.0
	// Socket options, ioctls and errno values (BSD-3-Clause).
	golang.org/x/sys v0.50.0
	// The tun device with virtio offloads and batched I/O, and batched UDP (MIT).
	golang.zx2c4.com/wireguard v0.0.0-20260522210424-ecfc5a8d5446
	// PKCS#12 bundles including modern PBES2/AES ones that OpenSSL 3 writes (BSD-3-Clause).
	software.sslmate.com/src/go-pkcs12 v0.7.4
)

require (
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.zx2c4.com/wintun v0.0.0-20230126152724-0fa3db229ce2 // indirect
)
