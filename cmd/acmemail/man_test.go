package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

var updateMan = flag.Bool("update-man", false, "rewrite the man pages in ../../man")

// TestManPages keeps man/ in step with the commands' help: it fails when a
// command's help changed and the pages were not regenerated with
// go test ./cmd/acmemail -run TestManPages -update-man
func TestManPages(t *testing.T) {
	root := newRootCmd(&globals{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	root.DisableAutoGenTag = true
	dir := t.TempDir()
	date := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	hdr := &doc.GenManHeader{Section: "1", Date: &date, Source: "acmemail", Manual: "acmemail manual"}
	if err := genManPages(root, hdr, dir); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join("..", "..", "man")
	if *updateMan {
		os.RemoveAll(want)
		if err := os.CopyFS(want, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	have, _ := filepath.Glob(filepath.Join(want, "*.1"))
	if len(got) != len(have) {
		t.Fatalf("man/ has %d pages, the commands make %d; run: go test ./cmd/acmemail -run TestManPages -update-man", len(have), len(got))
	}
	for _, g := range got {
		gen, _ := os.ReadFile(g)
		old, err := os.ReadFile(filepath.Join(want, filepath.Base(g)))
		if err != nil || !bytes.Equal(gen, old) {
			t.Errorf("man/%s is out of date; run: go test ./cmd/acmemail -run TestManPages -update-man", filepath.Base(g))
		}
	}
}

// genManPages writes the man page of root and of each of its commands to
// dir, as doc.GenManTree does, each with an EXIT STATUS section of its own
// (from exitLines, as --help has it) after OPTIONS, the place
// man-pages(7) gives it; cobra knows no such section.
func genManPages(root *cobra.Command, hdr *doc.GenManHeader, dir string) error {
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := genManPages(c, hdr, dir); err != nil {
			return err
		}
	}
	h := *hdr // GenMan fills in the title
	var page bytes.Buffer
	if err := doc.GenMan(root, &h, &page); err != nil {
		return err
	}
	withExit, err := insertManSection(page.String(), exitStatusRoff(root))
	if err != nil {
		return fmt.Errorf("%s: %w", root.CommandPath(), err)
	}
	name := strings.ReplaceAll(root.CommandPath(), " ", "-") + "." + hdr.Section
	return os.WriteFile(filepath.Join(dir, name), []byte(withExit), 0o644)
}

// insertManSection puts section before the page's EXAMPLE section, or
// else before SEE ALSO.
func insertManSection(page, section string) (string, error) {
	for _, next := range []string{"\n.SH EXAMPLE\n", "\n.SH SEE ALSO\n"} {
		if i := strings.Index(page, next); i >= 0 {
			return page[:i+1] + section + "\n\n" + page[i+1:], nil
		}
	}
	return "", fmt.Errorf("the page has neither EXAMPLE nor SEE ALSO to put EXIT STATUS before")
}

// exitStatusRoff is c's EXIT STATUS section in roff: a tagged paragraph
// per status, which man wraps and indents to the terminal's width.
func exitStatusRoff(c *cobra.Command) string {
	var b strings.Builder
	b.WriteString(".SH \"EXIT STATUS\"\n")
	if intro := exitIntro(c); intro != "" {
		b.WriteString(roffText(intro) + "\n")
	}
	for _, l := range exitLines(c) {
		fmt.Fprintf(&b, ".TP\n\\fB%d\\fP\n%s\n", l.code, roffText(l.meaning))
	}
	return b.String()
}

// roffText escapes text for a roff text line: backslashes, a control
// character (. or ') at its start, and hyphens, as \- so that no line
// breaks inside a flag such as --wait-lock.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
