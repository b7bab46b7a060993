//go:build race

package main

// raceEnabled: the race detector multiplies memory use, so peak-memory
// checks are made by .ci/run's run without it.
const raceEnabled = true
