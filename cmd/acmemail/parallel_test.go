package main

import (
	"flag"
	"runtime"
	"strconv"
	"testing"
)

// parallelDefault raises go test's default -parallel for this package
// from GOMAXPROCS to four times that. The end-to-end tests spend most of
// their time waiting (on loopback servers, on the sandbox CA's Retry-After
// before an authorization is polled again), not computing, so on a small
// machine the default leaves the CPU idle. A -parallel given on the
// command line is kept.
type parallelDefault struct{ m *testing.M }

func (p parallelDefault) Run() int {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		if err := flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0))); err != nil {
			panic(err)
		}
	}
	return p.m.Run()
}
