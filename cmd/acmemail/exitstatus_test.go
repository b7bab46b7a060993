package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// documentedCommands are root and its commands that have help and a man
// page of their own.
func documentedCommands(root *cobra.Command) []*cobra.Command {
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !documented(c) {
			return
		}
		all = append(all, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return all
}

// TestExitStatusTable: every command's statuses are in commandExits, and
// the table names only commands and statuses that exist.
func TestExitStatusTable(t *testing.T) {
	root := newRootCmd(&globals{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	seen := map[string]bool{}
	for _, c := range documentedCommands(root) {
		key := exitKey(c)
		seen[key] = true
		st, ok := commandExits[key]
		if !ok {
			t.Errorf("%s: no entry %q in commandExits", c.CommandPath(), key)
			continue
		}
		if c.Runnable() != (st.codes != nil) {
			t.Errorf("%s: runnable %v, but codes %v (a command lists its own statuses, a group of commands none)", c.CommandPath(), c.Runnable(), st.codes)
		}
		codes := exitCodes(c)
		for _, want := range []int{exitOK, exitError, exitUsage} {
			if !slices.Contains(codes, want) {
				t.Errorf("%s: does not list %d, which every command can return", c.CommandPath(), want)
			}
		}
		for _, code := range codes {
			if exitMeaning[code] == "" {
				t.Errorf("%s: status %d has no meaning in exitMeaning", c.CommandPath(), code)
			}
		}
		for code := range st.say {
			if !slices.Contains(codes, code) {
				t.Errorf("%s: says what %d means, but does not list it", c.CommandPath(), code)
			}
		}
	}
	for key := range commandExits {
		if !seen[key] {
			t.Errorf("commandExits has %q, which is no command", key)
		}
	}
}

// TestExitStatusHelp: each command's --help and man page list the same
// statuses, and not one that the command obviously cannot return (nor
// leave out one it obviously can): what follows from its code, written
// here apart from commandExits.
func TestExitStatusHelp(t *testing.T) {
	local := []int{exitMailAuth, exitMailTimeout, exitCA, exitSomeFailed, exitHookFailed, exitLocked, exitInterrupted, exitTerminated}
	account := struct{ has, not []int }{
		has: []int{exitCA, exitInterrupted, exitTerminated},
		not: []int{exitMailAuth, exitMailTimeout, exitSomeFailed, exitHookFailed, exitLocked},
	}
	facts := map[string]struct{ has, not []int }{
		// acmemail itself documents every status of its commands.
		"": {has: slices.Collect(maps.Keys(exitMeaning))},
		"obtain": {
			has: []int{exitMailAuth, exitMailTimeout, exitCA, exitHookFailed, exitLocked, exitInterrupted, exitTerminated},
			not: []int{exitSomeFailed},
		},
		// Each address's failure, its hook's too, is counted in 6; an
		// address another run holds is skipped, or 8 when it was named.
		"renew": {
			has: []int{exitSomeFailed, exitLocked, exitInterrupted, exitTerminated},
			not: []int{exitMailAuth, exitMailTimeout, exitCA, exitHookFailed},
		},
		"respond": {
			has: []int{exitMailAuth, exitMailTimeout, exitInterrupted, exitTerminated},
			not: []int{exitCA, exitSomeFailed, exitHookFailed, exitLocked},
		},
		// A check that fails is a FAIL line and status 1.
		"doctor": {
			has: []int{exitInterrupted, exitTerminated},
			not: []int{exitMailAuth, exitMailTimeout, exitCA, exitSomeFailed, exitHookFailed, exitLocked},
		},
		"revoke": {
			has: []int{exitCA, exitInterrupted, exitTerminated},
			not: []int{exitMailAuth, exitMailTimeout, exitSomeFailed, exitHookFailed, exitLocked},
		},
		"sandbox": {
			has: []int{exitMailAuth},
			not: []int{exitMailTimeout, exitCA, exitSomeFailed, exitHookFailed, exitLocked},
		},
		// login never contacts a mail server; its password command
		// can be interrupted.
		"login": {
			has: []int{exitInterrupted, exitTerminated},
			not: []int{exitMailAuth, exitMailTimeout, exitCA, exitSomeFailed, exitHookFailed, exitLocked},
		},
		"account":            account,
		"account register":   account,
		"account show":       account,
		"account rollover":   account,
		"account deactivate": account,
		// The state directory and the configuration file only: nothing
		// to wait for, so a signal is caught and the command finishes.
		"list":   {not: local},
		"show":   {not: local},
		"export": {not: local},
		// The identity's lock, like obtain's; the question on the
		// terminal waits for an answer or a signal.
		"forget": {
			has: []int{exitLocked, exitInterrupted, exitTerminated},
			not: []int{exitMailAuth, exitMailTimeout, exitCA, exitSomeFailed, exitHookFailed},
		},
		"config":     {not: local},
		"completion": {not: local},
		"version":    {not: local},
		// Server certificates: DNS and the CA, never a mailbox.
		"server":        {has: []int{exitCA, exitHookFailed, exitSomeFailed}, not: []int{exitMailAuth, exitMailTimeout}},
		"server obtain": {has: []int{exitCA, exitHookFailed, exitLocked, exitInterrupted}, not: []int{exitMailAuth, exitMailTimeout, exitSomeFailed}},
		"server renew":  {has: []int{exitSomeFailed, exitInterrupted}, not: []int{exitMailAuth, exitMailTimeout, exitCA}},
		"server list":   {not: local},
		"server show":   {not: local},
		"server export": {not: local},
		"server revoke": {has: []int{exitCA, exitInterrupted}, not: []int{exitMailAuth, exitMailTimeout, exitSomeFailed, exitHookFailed}},
		"server doctor": {has: []int{exitError, exitInterrupted}, not: []int{exitMailAuth, exitMailTimeout, exitCA, exitSomeFailed}},
	}

	root := newRootCmd(&globals{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	root.DisableAutoGenTag = true
	dir := t.TempDir()
	date := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	if err := genManPages(root, &doc.GenManHeader{Section: "1", Date: &date}, dir); err != nil {
		t.Fatal(err)
	}
	config := t.TempDir()
	for _, c := range documentedCommands(root) {
		key := exitKey(c)
		var out, errb bytes.Buffer
		args := append(strings.Fields(key), "--help")
		code := run(context.Background(), args, strings.NewReader(""), &out, &errb, func(k string) string {
			if k == "XDG_CONFIG_HOME" {
				return config
			}
			return ""
		})
		if code != 0 {
			t.Fatalf("acmemail %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		help := helpExitCodes(out.String())
		page, err := os.ReadFile(filepath.Join(dir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1"))
		if err != nil {
			t.Fatal(err)
		}
		man := manExitCodes(t, c.CommandPath(), string(page))
		if !slices.Equal(help, man) {
			t.Errorf("%s: --help lists %v, the man page %v", c.CommandPath(), help, man)
		}
		f, ok := facts[key]
		if !ok {
			t.Errorf("%s: no facts about its statuses in this test", c.CommandPath())
			continue
		}
		for _, want := range append([]int{exitOK, exitError, exitUsage}, f.has...) {
			if !slices.Contains(help, want) {
				t.Errorf("%s --help: status %d is missing (it lists %v)", c.CommandPath(), want, help)
			}
		}
		for _, bad := range f.not {
			if slices.Contains(help, bad) {
				t.Errorf("%s --help: lists status %d, which it cannot return (%s)", c.CommandPath(), bad, exitMeaning[bad])
			}
		}
	}
}

// helpExitCodes are the statuses in the EXIT STATUS section of --help.
func helpExitCodes(help string) []int {
	_, sect, _ := strings.Cut(help, "\nEXIT STATUS\n")
	sect, _, _ = strings.Cut(sect, "\n\n")
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^  (\d+)  `).FindAllStringSubmatch(sect, -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	return codes
}

// manExitCodes are the statuses in the EXIT STATUS section of a man page;
// the section must be one, of its own, after OPTIONS.
func manExitCodes(t *testing.T, name, page string) []int {
	t.Helper()
	if n := strings.Count(page, "EXIT STATUS"); n != 1 {
		t.Errorf("%s: the man page has EXIT STATUS %d times, want once (its own section)", name, n)
	}
	i, o := strings.Index(page, "\n.SH \"EXIT STATUS\"\n"), strings.Index(page, "\n.SH OPTIONS\n")
	if i < 0 || o < 0 || i < o {
		t.Errorf("%s: the man page has no EXIT STATUS section after OPTIONS", name)
		return nil
	}
	sect := page[i+1:]
	if j := strings.Index(sect[1:], "\n.SH "); j >= 0 {
		sect = sect[:j+1]
	}
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\.TP\n\\fB(\d+)\\fP$`).FindAllStringSubmatch(sect, -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	return codes
}
