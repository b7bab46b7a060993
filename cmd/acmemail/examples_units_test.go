package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkExampleCommand checks that an acmemail command line of an example
// names an existing command and flags that parse.
func checkExampleCommand(t *testing.T, where string, argv []string) {
	t.Helper()
	if len(argv) == 0 || filepath.Base(argv[0]) != "acmemail" {
		t.Errorf("%s: %q does not run acmemail", where, argv)
		return
	}
	root := newRootCmd(&globals{getenv: func(string) string { return "" }})
	cmd, rest, err := root.Find(argv[1:])
	if err != nil || cmd == root {
		t.Errorf("%s: %q: no such acmemail command (%v)", where, argv, err)
		return
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: %q: %v", where, argv, err)
		return
	}
	if cmd.Args != nil {
		if err := cmd.Args(cmd, cmd.Flags().Args()); err != nil {
			t.Errorf("%s: %q: %v", where, argv, err)
		}
	}
}

// TestExampleCrontab: every entry has five time fields and runs an acmemail
// command that exists, with flags that parse.
func TestExampleCrontab(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "crontab"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Errorf("crontab:%d: want five time fields and a command: %q", i+1, line)
			continue
		}
		for j, field := range f[:5] {
			if strings.Trim(field, "0123456789*,-/") != "" {
				t.Errorf("crontab:%d: time field %d %q is not a cron field", i+1, j+1, field)
			}
		}
		argv := f[5:]
		for len(argv) > 0 && strings.Contains(argv[0], "=") { // VAR=value prefixes
			argv = argv[1:]
		}
		checkExampleCommand(t, fmt.Sprintf("crontab:%d", i+1), argv)
	}
	if n != 1 {
		t.Errorf("examples/crontab has %d entries, want 1", n)
	}
}

// unitFile parses a systemd unit file: section -> key -> values.
func unitFile(t *testing.T, name string) map[string]map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a unit file line: %q", name, i+1, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// TestExampleSystemd: the service is a oneshot that runs an existing
// acmemail command; the timer starts it and is enabled by timers.target.
func TestExampleSystemd(t *testing.T) {
	svc := unitFile(t, "acmemail-renew.service")
	if svc["Unit"] == nil || svc["Service"] == nil {
		t.Fatalf("acmemail-renew.service lacks [Unit] or [Service]: %v", svc)
	}
	if got := svc["Service"]["Type"]; len(got) != 1 || got[0] != "oneshot" {
		t.Errorf("Type = %q, want oneshot", got)
	}
	exec := svc["Service"]["ExecStart"]
	if len(exec) != 1 {
		t.Fatalf("ExecStart = %q, want one command", exec)
	}
	checkExampleCommand(t, "acmemail-renew.service ExecStart", strings.Fields(exec[0]))
	tm := unitFile(t, "acmemail-renew.timer")
	if len(tm["Timer"]["OnCalendar"]) == 0 {
		t.Error("acmemail-renew.timer has no OnCalendar")
	}
	if u := tm["Timer"]["Unit"]; len(u) > 0 && u[0] != "acmemail-renew.service" {
		t.Errorf("the timer starts %q, not acmemail-renew.service", u)
	}
	if w := tm["Install"]["WantedBy"]; len(w) != 1 || w[0] != "timers.target" {
		t.Errorf("WantedBy = %q, want timers.target", w)
	}
}
