package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/godbus/dbus/v5"
)

// helperEnv makes the test binary perform one D-Bus call and print the error name (or
// "ok"): OVPND_TEST_HELPER=DEST|PATH|METHOD plus arguments on the command line, each
// "u:NUMBER" or "s:TEXT", and "a{sv}" for an empty options dictionary.
const helperEnv = "OVPND_TEST_HELPER"

func helperMain() int {
	spec := os.Getenv(helperEnv)
	var dest, path, method string
	parts := splitN(spec, '|', 3)
	if len(parts) != 3 {
		fmt.Println("bad helper spec")
		return 2
	}
	dest, path, method = parts[0], parts[1], parts[2]
	var args []any
	for _, a := range os.Args[1:] {
		switch {
		case a == "a{sv}":
			args = append(args, map[string]dbus.Variant{})
		case len(a) > 2 && a[:2] == "u:":
			n, _ := strconv.ParseUint(a[2:], 10, 32)
			args = append(args, uint32(n))
		case len(a) >= 2 && a[:2] == "s:":
			args = append(args, a[2:])
		}
	}
	c, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer c.Close()
	err = c.Object(dest, dbus.ObjectPath(path)).Call(method, 0, args...).Err
	if err == nil {
		fmt.Println("ok")
		return 0
	}
	var de dbus.Error
	var dep *dbus.Error
	switch {
	case errors.As(err, &de):
		fmt.Println(de.Name)
	case errors.As(err, &dep):
		fmt.Println(dep.Name)
	default:
		fmt.Println("error:", err)
	}
	return 0
}

func splitN(s string, sep byte, n int) []string {
	var out []string
	for len(out) < n-1 {
		i := -1
		for j := 0; j < len(s); j++ {
			if s[j] == sep {
				i = j
				break
			}
		}
		if i < 0 {
			break
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return append(out, s)
}
