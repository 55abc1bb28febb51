package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

func init() {
	register("down", command{"disconnect a session: down NAME", runDown})
	register("restart", command{"reconnect a session: restart NAME", runRestart})
	register("status", command{"show sessions: status [--json] [NAME]", runStatus})
	register("list", command{"list sessions: list [--json]", runList})
	register("log", command{"show a session's log: log [-f] [--json] NAME", runLog})
	register("stats", command{"show a session's counters: stats [--json] NAME", runStats})
}

// oneName parses flags and the single NAME argument of a subcommand.
func oneName(fs *flag.FlagSet, args []string, stderr io.Writer, optional bool) (string, int, bool) {
	if err := fs.Parse(args); err != nil {
		return "", exitUsage, false
	}
	switch {
	case fs.NArg() == 1:
		return fs.Arg(0), 0, true
	case fs.NArg() == 0 && optional:
		return "", 0, true
	}
	fs.Usage()
	return "", exitUsage, false
}

func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ovpnctl %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func writeJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFail
	}
	return exitOK
}

func runDown(args []string, stdout, stderr io.Writer) int {
	return manage("down", "Disconnect", args, stdout, stderr)
}

func runRestart(args []string, stdout, stderr io.Writer) int {
	return manage("restart", "Restart", args, stdout, stderr)
}

// manage calls Disconnect or Restart; down then waits for the session to finish.
func manage(verb, method string, args []string, stdout, stderr io.Writer) int {
	fs := newFlags(verb, verb+" NAME", stderr)
	wait := fs.Duration("timeout", 15*time.Second, "how long down waits for the session to finish")
	name, code, ok := oneName(fs, args, stderr, false)
	if !ok {
		return code
	}
	c, t, err := connectTo(name)
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	sigs := make(chan *dbus.Signal, 64)
	c.Signal(sigs)
	if verb == "down" {
		if err := t.obj(c).Call(api.SessionInterface+".Subscribe", 0).Err; err != nil {
			return report(stderr, err)
		}
	}
	if err := t.obj(c).Call(api.SessionInterface+"."+method, 0).Err; err != nil {
		return report(stderr, err)
	}
	if verb != "down" {
		fmt.Fprintf(stdout, "%s: restarting\n", name)
		return exitOK
	}
	info, err := getInfo(c, t)
	if err != nil {
		// The session is gone already.
		fmt.Fprintf(stdout, "%s: disconnected\n", name)
		return exitOK
	}
	deadline := time.After(*wait)
	for !finished(info.State) {
		select {
		case s := <-sigs:
			if t.from(s) && s.Name == api.PropertiesInterface+"."+api.SignalPropertiesChanged && len(s.Body) == 3 {
				if ch, ok := s.Body[1].(map[string]dbus.Variant); ok {
					applyProps(info, ch)
				}
			}
		case <-deadline:
			fmt.Fprintf(stderr, "ovpnctl: %s is still %s after %v\n", name, info.State, *wait)
			return exitFail
		}
	}
	fmt.Fprintf(stdout, "%s: disconnected\n", name)
	return exitOK
}

func finished(state string) bool { return api.StateFinished(state) }

func runList(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("list", "list [--json] [--profiles]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	profiles := fs.Bool("profiles", false, "list your stored profiles instead of sessions")
	if _, code, ok := oneName(fs, args, stderr, true); !ok {
		return code
	} else if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	if *profiles {
		return listProfiles(*asJSON, stdout, stderr)
	}
	return listSessions(*asJSON, false, stdout, stderr)
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "status [--json] [NAME]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	name, code, ok := oneName(fs, args, stderr, true)
	if !ok {
		return code
	}
	if name == "" {
		return listSessions(*asJSON, true, stdout, stderr)
	}
	c, t, err := connectTo(name)
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	info, err := getInfo(c, t)
	if err != nil {
		return report(stderr, err)
	}
	if *asJSON {
		return writeJSON(stdout, info)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", info.Name)
	row("State", info.State)
	if info.StateReason != "" {
		row("Reason", info.StateReason)
	}
	row("Owner", userName(info.Owner))
	if info.Instance {
		row("Service", "ovpnd@"+info.Name+".service")
	}
	row("Remote", dash(info.Remote))
	row("Local", dash(info.LocalAddress))
	row("Device", dash(info.Device))
	row("Cipher", dash(info.Cipher))
	row("DNS", dash(info.DNSMode))
	row("Addresses", dash(strings.Join(info.TunnelAddresses, " ")))
	if info.ConnectedSince != 0 {
		since := time.UnixMicro(int64(info.ConnectedSince))
		row("Connected", fmt.Sprintf("%s (%s)", since.Format(time.RFC3339), time.Since(since).Round(time.Second)))
	}
	row("Traffic", fmt.Sprintf("in %s (%d packets), out %s (%d packets)", bytesText(info.BytesIn), info.PacketsIn, bytesText(info.BytesOut), info.PacketsOut))
	tw.Flush()
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func listSessions(asJSON, wide bool, stdout, stderr io.Writer) int {
	c, err := connect()
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	ts, err := listTargets(c)
	if err != nil {
		return report(stderr, err)
	}
	infos := []*sessionInfo{}
	for _, t := range ts {
		info, err := getInfo(c, t)
		if err != nil {
			// Instances are root's; other users cannot read them, and sessions may end
			// between List and GetAll.
			continue
		}
		infos = append(infos, info)
	}
	if asJSON {
		return writeJSON(stdout, infos)
	}
	if len(infos) == 0 {
		fmt.Fprintln(stdout, "no sessions")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if wide {
		fmt.Fprintln(tw, "NAME\tOWNER\tSTATE\tREMOTE\tDEVICE\tADDRESSES\tIN\tOUT")
	} else {
		fmt.Fprintln(tw, "NAME\tOWNER\tSTATE\tADDRESSES")
	}
	for _, i := range infos {
		addrs := dash(strings.Join(i.TunnelAddresses, " "))
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.Name, userName(i.Owner), i.State, dash(i.Remote), dash(i.Device), addrs, bytesText(i.BytesIn), bytesText(i.BytesOut))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.Name, userName(i.Owner), i.State, addrs)
		}
	}
	tw.Flush()
	return exitOK
}

func runStats(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("stats", "stats [--json] NAME", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	name, code, ok := oneName(fs, args, stderr, false)
	if !ok {
		return code
	}
	c, t, err := connectTo(name)
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	info, err := getInfo(c, t)
	if err != nil {
		return report(stderr, err)
	}
	stats := map[string]uint64{
		"bytes_in": info.BytesIn, "bytes_out": info.BytesOut,
		"packets_in": info.PacketsIn, "packets_out": info.PacketsOut,
		"dropped_replayed": info.DroppedReplayed, "dropped_decrypt_failed": info.DroppedDecryptFailed,
		"dropped_oversized": info.DroppedOversized, "dropped_no_key": info.DroppedNoKey,
	}
	if *asJSON {
		return writeJSON(stdout, stats)
	}
	fmt.Fprintf(stdout, "bytes_in     %d\nbytes_out    %d\npackets_in   %d\npackets_out  %d\n", info.BytesIn, info.BytesOut, info.PacketsIn, info.PacketsOut)
	fmt.Fprintf(stdout, "dropped_replayed        %d\ndropped_decrypt_failed  %d\ndropped_oversized       %d\ndropped_no_key          %d\n",
		info.DroppedReplayed, info.DroppedDecryptFailed, info.DroppedOversized, info.DroppedNoKey)
	return exitOK
}

// logJSON is one line of `log --json`.
type logJSON struct {
	TimeUsec uint64 `json:"time_usec"`
	Level    uint32 `json:"level"`
	Message  string `json:"message"`
}

func runLog(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("log", "log [-f] [--json] NAME", stderr)
	follow := fs.Bool("f", false, "keep printing new lines until the session ends")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	name, code, ok := oneName(fs, args, stderr, false)
	if !ok {
		return code
	}
	c, t, err := connectTo(name)
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	sigs := make(chan *dbus.Signal, 256)
	c.Signal(sigs)
	if *follow {
		// Subscribing first means no line falls between the history and the signals;
		// duplicates are dropped by time below.
		if err := t.obj(c).Call(api.SessionInterface+".Subscribe", 0).Err; err != nil {
			return report(stderr, err)
		}
	}
	var lines []logJSON
	if err := t.obj(c).Call(api.SessionInterface+".LogHistory", 0).Store(&lines); err != nil {
		return report(stderr, err)
	}
	print := func(l logJSON) {
		l.Message = api.Printable(l.Message)
		if *asJSON {
			b, _ := json.Marshal(l)
			fmt.Fprintf(stdout, "%s\n", b)
			return
		}
		fmt.Fprintf(stdout, "%s %s\n", time.UnixMicro(int64(l.TimeUsec)).Format("2006-01-02 15:04:05.000"), l.Message)
	}
	var last uint64
	for _, l := range lines {
		print(l)
		last = l.TimeUsec
	}
	if !*follow {
		return exitOK
	}
	info, err := getInfo(c, t)
	if err != nil {
		return report(stderr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for !finished(info.State) {
		select {
		case <-ctx.Done():
			return exitOK
		case <-c.Context().Done():
			return report(stderr, fmt.Errorf("lost the bus connection"))
		case s := <-sigs:
			if !t.from(s) {
				continue
			}
			switch s.Name {
			case api.SessionInterface + "." + api.SignalLog:
				var l logJSON
				if err := dbus.Store(s.Body, &l.TimeUsec, &l.Level, &l.Message); err == nil && l.TimeUsec >= last {
					print(l)
				}
			case api.PropertiesInterface + "." + api.SignalPropertiesChanged:
				if len(s.Body) == 3 {
					if ch, ok := s.Body[1].(map[string]dbus.Variant); ok {
						applyProps(info, ch)
					}
				}
			}
		}
	}
	return exitOK
}
