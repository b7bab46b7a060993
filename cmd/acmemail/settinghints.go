package main

import (
	"strings"
)

// settingHints names, for each flag an error mentions that the user did
// not type (the environment or the configuration file set it), where its
// value came from: "--key-type "rsa1024": choose ..." is a puzzle when the
// command line has no --key-type.
func settingHints(err error, sources []configSource) []string {
	msg := err.Error()
	var hints []string
	for _, s := range sources {
		if strings.Contains(msg, s.From) || !mentionsFlag(msg, s.Flag) {
			continue
		}
		hints = append(hints, "--"+s.Flag+" is set by "+s.From+", not on the command line")
	}
	return hints
}

// mentionsFlag reports whether msg names --flag, as a whole flag name.
func mentionsFlag(msg, flag string) bool {
	name := "--" + flag
	for i := 0; ; {
		j := strings.Index(msg[i:], name)
		if j < 0 {
			return false
		}
		end := i + j + len(name)
		if end == len(msg) || !(msg[end] == '-' || msg[end] >= 'a' && msg[end] <= 'z' || msg[end] >= '0' && msg[end] <= '9') {
			return true
		}
		i = end
	}
}
