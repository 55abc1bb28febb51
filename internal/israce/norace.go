//go:build !race

// Package israce reports whether the race detector is compiled in. Allocation tests consult
// it: under -race, sync.Pool drops items at random and instrumentation allocates, so
// allocation counts say nothing about the production build.
package israce

// Enabled is true when built with -race.
const Enabled = false
