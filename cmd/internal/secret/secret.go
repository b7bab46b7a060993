// Package secret gives acmemail's commands the secrets they need, from
// the sources the user names: the mail login of a profile (an OAuth token
// command, or a password from a command, a file, the environment, the OS
// keyring or a prompt on the terminal), and other secrets from a file, a
// variable or a prompt. A flag never holds a secret, and a secret is never
// kept beyond the run nor shown, not even in errors.
//
// Mistakes in what was given are *[issuer.UsageError]s; errors carry
// *[issuer.HintError] hints. Both name the CLI's flags.
package secret

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// Sources is where one command finds its secrets.
type Sources struct {
	Getenv func(string) string // the environment; nil: os.Getenv
	// Stderr receives what secret commands print on their stderr (a
	// password manager may ask there); nil: discarded.
	Stderr io.Writer
	Logger *slog.Logger // says where each secret came from; nil: no logs
}

func (s *Sources) getenv(key string) string {
	if s.Getenv == nil {
		return os.Getenv(key)
	}
	return s.Getenv(key)
}

func (s *Sources) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Spec says which secret is wanted and where it may come from, in order:
// a file named by a flag, an environment variable, or a prompt on the
// terminal. Never a flag value. (The mail login has more sources, see
// Sources.MailLogin.)
type Spec struct {
	What    string // "mail password", "PKCS#12 password"
	EnvVar  string // e.g. ACMEMAIL_P12_PASSWORD
	File    string // from a --...-file flag
	Flag    string // the file flag's name, for messages
	Confirm bool   // ask twice when prompting
}

// ErrNoTTY is returned when a secret is needed, none was given, and there
// is no terminal to ask on.
var ErrNoTTY = errors.New("no terminal to ask on")

// Get returns the secret of spec from the first of its sources that has
// one.
func (s *Sources) Get(spec Spec) (string, error) {
	if spec.File != "" {
		data, err := ReadFile(spec.File)
		if err != nil {
			return "", issuer.Usagef("read the %s from --%s: %w", spec.What, spec.Flag, err)
		}
		return data, nil
	}
	if v := s.getenv(spec.EnvVar); spec.EnvVar != "" && v != "" {
		return v, nil
	}
	v, err := Prompt(spec.What, spec.Confirm)
	if errors.Is(err, ErrNoTTY) {
		if spec.EnvVar == "" {
			return "", issuer.Usagef("the %s is needed: use --%s (%w)", spec.What, spec.Flag, ErrNoTTY)
		}
		return "", issuer.Usagef("the %s is needed: set %s or use --%s (%w)", spec.What, spec.EnvVar, spec.Flag, ErrNoTTY)
	}
	return v, err
}

// TTYPath is the terminal prompts use; tests point it elsewhere so that a
// test run from a terminal never waits for input.
var TTYPath = "/dev/tty"

// Prompt asks for a secret on the terminal (twice with confirm); it fails
// with ErrNoTTY when there is no terminal, as under cron.
func Prompt(what string, confirm bool) (string, error) {
	tty, err := os.OpenFile(TTYPath, os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return "", ErrNoTTY
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

// maxFile is how much of a secret file is read.
const maxFile = 64 << 10

// ReadFile returns the first line of a file, without its newline. The file
// is a regular file, or a pipe the shell names (bash's and zsh's
// <(command) give /dev/fd/N or /proc/self/fd/N; /dev/stdin): a named pipe
// elsewhere would wait for a writer, a device may never end. At most 64
// KiB are read. It warns nobody: permissions are the user's business, but
// the error never contains the content.
func ReadFile(path string) (string, error) {
	var f *os.File
	var err error
	if shellPipe(path) {
		f, err = os.Open(path)
	} else {
		// Without blocking: a named pipe opens at once, to be refused.
		f, err = os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	if !shellPipe(path) {
		fi, err := f.Stat()
		if err != nil {
			return "", err
		}
		if !fi.Mode().IsRegular() {
			return "", notRegular(path, fi.Mode())
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile))
	if err != nil {
		return "", err
	}
	line, _, found := bytes.Cut(data, []byte("\n"))
	if !found && len(data) == maxFile {
		return "", errors.New("the file's first line is longer than 64 KiB")
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return "", errors.New("the file's first line holds a NUL byte (is it a binary file?)")
	}
	s := strings.TrimSuffix(string(line), "\r")
	if s == "" {
		return "", errors.New("the file's first line is empty")
	}
	return s, nil
}

// shellPipe reports whether path names a file descriptor the shell passes,
// such as bash's <(command).
func shellPipe(path string) bool {
	p := filepath.ToSlash(filepath.Clean(path))
	return p == "/dev/stdin" || strings.HasPrefix(p, "/dev/fd/") || strings.HasPrefix(p, "/proc/self/fd/")
}

// notRegular is the error for a secret file that is not a regular file.
func notRegular(path string, mode fs.FileMode) error {
	kind := ""
	switch {
	case mode&fs.ModeNamedPipe != 0:
		kind = " (a named pipe)"
	case mode&fs.ModeDevice != 0:
		kind = " (a device)"
	case mode.IsDir():
		kind = " (a directory)"
	case mode&fs.ModeSocket != 0:
		kind = " (a socket)"
	}
	return issuer.WithHint(fmt.Errorf("%s is not a regular file%s", path, kind),
		"name a regular file holding the secret on its first line, or pass a command's output as <(command)")
}
