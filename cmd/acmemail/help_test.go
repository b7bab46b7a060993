package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestEveryCommandDocumented holds every command (and so every man page)
// to the same bar: a real description, examples, and the exit statuses.
func TestEveryCommandDocumented(t *testing.T) {
	root := newRootCmd(&globals{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		name := c.CommandPath()
		if c.Short == "" || len(c.Long) < 80 {
			t.Errorf("%s: needs a Short and a real Long description", name)
		}
		// EXIT STATUS comes from the tables in exitstatus.go: the help
		// template and the man page generator put it in a section of its
		// own; in Long it would be a paragraph of DESCRIPTION.
		if len(exitLines(c)) == 0 {
			t.Errorf("%s: documents no exit status (exitstatus.go)", name)
		}
		if strings.Contains(c.Long, "EXIT STATUS") {
			t.Errorf("%s: its Long help has an EXIT STATUS; it comes from exitstatus.go", name)
		}
		if c.Runnable() && c != root && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: needs Example lines", name)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// TestFlagDefaultsShown: a flag whose built-in value is a sentinel (-1
// for "per server") shows the real default in --help and the man page, not
// "-1ns".
func TestFlagDefaultsShown(t *testing.T) {
	root := newRootCmd(&globals{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.HasPrefix(f.DefValue, "-") {
				t.Errorf("%s --%s: help shows the default %q", c.CommandPath(), f.Name, f.DefValue)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
