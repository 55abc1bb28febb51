package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// checkStdin is where a passphrase comes from when there is no terminal (a test seam).
var checkStdin io.Reader = os.Stdin

func init() {
	register("check", command{
		summary: "check OpenVPN profiles: check [--print] FILE...",
		run:     runCheck,
	})
}

// runCheck validates each profile. Warnings and errors go to stderr as FILE:LINE: ...; with
// --print the normalized, self-contained profile goes to stdout (one file only, so the output
// is itself a profile).
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	printProfile := fs.Bool("print", false, "write the normalized self-contained profile to stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ovpnctl check [--print] FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	files := fs.Args()
	if len(files) == 0 {
		fs.Usage()
		return exitUsage
	}
	if *printProfile && len(files) != 1 {
		fmt.Fprintln(stderr, "ovpnctl check: --print takes exactly one FILE")
		return exitUsage
	}
	status := exitOK
	// Checking an encrypted key means decrypting it, so check asks for its passphrase too.
	pr := newPrompter(checkStdin, stderr)
	defer pr.close()
	for _, f := range files {
		cfg, ok := loadProfile(f, pr, stderr)
		if !ok {
			status = exitFail
			continue
		}
		if *printProfile {
			if err := cfg.Print(stdout); err != nil {
				fmt.Fprintf(stderr, "ovpnctl check: writing profile: %v\n", err)
				return exitFail
			}
		}
	}
	return status
}
