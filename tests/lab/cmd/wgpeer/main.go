// Command wgpeer runs one wireguard-go peer for the lab's benchmark reference (make bench): the
// data path people would pick instead of ovpnd, built from the golang.zx2c4.com/wireguard
// module ovpnd already depends on. It creates a tun device, attaches a wireguard-go device with
// the default UDP bind, applies a UAPI "set" configuration read from a file, and runs until
// SIGINT or SIGTERM. The caller assigns addresses and brings the link up.
//
//	wgpeer -name wg0 -mtu 1420 -uapi FILE
//
// It is test-only: nothing outside tests/ builds it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

func main() {
	name := flag.String("name", "wg0", "tun device name")
	mtu := flag.Int("mtu", 1420, "tun MTU (wg-quick's default)")
	uapi := flag.String("uapi", "", "file with the UAPI set configuration (private_key=..., peers)")
	flag.Parse()
	if err := run(*name, *mtu, *uapi); err != nil {
		fmt.Fprintf(os.Stderr, "wgpeer: %v\n", err)
		os.Exit(1)
	}
}

func run(name string, mtu int, uapiPath string) error {
	cfg, err := os.ReadFile(uapiPath)
	if err != nil {
		return fmt.Errorf("reading the UAPI configuration: %w", err)
	}
	td, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return fmt.Errorf("creating tun %s: %w", name, err)
	}
	dev := device.NewDevice(td, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "wgpeer: "))
	defer dev.Close()
	if err := dev.IpcSet(string(cfg)); err != nil {
		return fmt.Errorf("applying the UAPI configuration: %w", err)
	}
	if err := dev.Up(); err != nil {
		return fmt.Errorf("bringing the device up: %w", err)
	}
	fmt.Println("ready")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sigs:
	case <-dev.Wait():
	}
	return nil
}
