package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// secretSource says where a secret may come from, in order: a file named
// by a flag, an environment variable, or a prompt on the terminal. Never a
// flag value. (The mail password has more sources, see credentials.go.)
type secretSource struct {
	what    string // "mail password", "PKCS#12 password"
	envVar  string // e.g. ACMEMAIL_P12_PASSWORD
	file    string // from a --...-file flag
	flag    string // the file flag's name, for messages
	confirm bool   // ask twice when prompting
}

// errNoTTY is returned when a secret is needed, none was given, and there
// is no terminal to ask on.
var errNoTTY = errors.New("no terminal to ask on")

func (g *globals) secret(s secretSource) (string, error) {
	if s.file != "" {
		data, err := readSecretFile(s.file)
		if err != nil {
			return "", usageErrorf("read the %s from --%s: %w", s.what, s.flag, err)
		}
		return data, nil
	}
	if v := g.getenv(s.envVar); s.envVar != "" && v != "" {
		return v, nil
	}
	v, err := promptTTY(s.what, s.confirm)
	if errors.Is(err, errNoTTY) {
		if s.envVar == "" {
			return "", usageErrorf("the %s is needed: use --%s (%w)", s.what, s.flag, errNoTTY)
		}
		return "", usageErrorf("the %s is needed: set %s or use --%s (%w)", s.what, s.envVar, s.flag, errNoTTY)
	}
	return v, err
}

// ttyPath is the terminal prompts use; tests point it elsewhere so that a
// test run from a terminal never waits for input.
var ttyPath = "/dev/tty"

// promptTTY asks for a secret on the terminal (twice with confirm); it
// fails with errNoTTY when there is no terminal, as under cron.
func promptTTY(what string, confirm bool) (string, error) {
	tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return "", errNoTTY
	}
	defer tty.Close()
	for {
		v, err := promptSecret(tty, fmt.Sprintf("acmemail: %s: ", what))
		if err != nil {
			return "", err
		}
		if v == "" {
			fmt.Fprintf(tty, "acmemail: the %s must not be empty\n", what)
			continue
		}
		if confirm {
			again, err := promptSecret(tty, fmt.Sprintf("acmemail: %s again: ", what))
			if err != nil {
				return "", err
			}
			if again != v {
				fmt.Fprintln(tty, "acmemail: the two entries differ, try again")
				continue
			}
		}
		return v, nil
	}
}

func promptSecret(tty *os.File, prompt string) (string, error) {
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("read from the terminal: %w", err)
	}
	return string(b), nil
}

// readSecretFile returns the first line of a file, without its newline.
// It warns nobody: permissions are the user's business, but the error
// never contains the content.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	s := strings.TrimSuffix(string(line), "\r")
	if s == "" {
		return "", errors.New("the file's first line is empty")
	}
	return s, nil
}
