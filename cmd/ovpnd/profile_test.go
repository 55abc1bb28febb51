package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestProfileFiles checks that the profiling helpers write pprof files (gzip
// streams) and report a path they cannot create.
func TestProfileFiles(t *testing.T) {
	dir := t.TempDir()
	cpu := filepath.Join(dir, "cpu.pprof")
	stop, err := startCPUProfile(cpu)
	if err != nil {
		t.Fatal(err)
	}
	var errs bytes.Buffer
	stop(&errs)
	mem := filepath.Join(dir, "mem.pprof")
	writeHeapProfile(mem, &errs)
	if errs.Len() != 0 {
		t.Fatalf("errors: %s", errs.String())
	}
	for _, p := range []string{cpu, mem} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s is not a gzip-compressed profile", filepath.Base(p))
		}
	}
	if _, err := startCPUProfile(filepath.Join(dir, "missing", "cpu.pprof")); err == nil {
		t.Error("no error for an uncreatable CPU profile path")
	}
	errs.Reset()
	writeHeapProfile(filepath.Join(dir, "missing", "mem.pprof"), io.Writer(&errs))
	if errs.Len() == 0 {
		t.Error("no error reported for an uncreatable heap profile path")
	}
}
