package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// Hidden profiling switches for performance work, read once at start:
//
//	OVPND_CPUPROFILE=PATH  write a CPU profile of `ovpnd run` to PATH
//	OVPND_MEMPROFILE=PATH  write a heap profile to PATH when `ovpnd run` returns
//
// Both wrap the run subcommand, so the profile covers exactly the tunnel's
// life and is complete once the process exits after SIGTERM.
func init() {
	cpu, mem := os.Getenv("OVPND_CPUPROFILE"), os.Getenv("OVPND_MEMPROFILE")
	if cpu == "" && mem == "" {
		return
	}
	c, ok := commands["run"]
	if !ok {
		return
	}
	inner := c.run
	c.run = func(args []string, stdout, stderr io.Writer) int {
		if cpu != "" {
			stop, err := startCPUProfile(cpu)
			if err != nil {
				fmt.Fprintf(stderr, "ovpnd: %v\n", err)
			} else {
				defer stop(stderr)
			}
		}
		if mem != "" {
			defer writeHeapProfile(mem, stderr)
		}
		return inner(args, stdout, stderr)
	}
	commands["run"] = c
}

func startCPUProfile(path string) (func(io.Writer), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting CPU profile: %w", err)
	}
	return func(stderr io.Writer) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "ovpnd: writing CPU profile: %v\n", err)
		}
	}, nil
}

func writeHeapProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "ovpnd: creating heap profile: %v\n", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintf(stderr, "ovpnd: writing heap profile: %v\n", err)
	}
}
