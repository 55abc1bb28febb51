package main

import (
	"fmt"
	"io"

	api "github.com/ovpnd/ovpnd/dbus"
)

func init() {
	register("auth", command{"answer a session's pending prompts: auth NAME", runAuth})
}

// runAuth answers what a running session waits for: one started by the caller, or (as
// root) an ovpnd@NAME instance without a credential, whose status then says "waiting for
// credentials". Answers are asked on the terminal, or read one per line from stdin.
func runAuth(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("auth", "auth NAME", stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	name := fs.Arg(0)
	c, t, err := connectTo(name)
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()
	var reqs []api.InputEntry
	if err := t.obj(c).Call(api.SessionInterface+".PendingInput", 0).Store(&reqs); err != nil {
		return report(stderr, err)
	}
	if len(reqs) == 0 {
		fmt.Fprintf(stderr, "%s: not waiting for input\n", name)
		return exitFail
	}
	pr := newPrompter(upStdin, stderr)
	defer pr.close()
	web := &webLogin{noBrowser: true, stderr: stderr}
	for _, r := range reqs {
		if r.Kind == api.InputWebLogin {
			// Completed in a browser, by whoever the login belongs to; only shown here.
			web.show(name, r.URL)
			continue
		}
		v, err := pr.ask(promptLabel(r), r.Secret || r.Kind == api.InputPassword)
		if err != nil {
			return report(stderr, err)
		}
		if err := t.obj(c).Call(api.SessionInterface+".ProvideInput", 0, r.ID, v).Err; err != nil {
			return report(stderr, err)
		}
	}
	fmt.Fprintf(stdout, "%s: answered\n", name)
	return exitOK
}
