package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	if err := doc.GenManTree(root, hdr, dir); err != nil {
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
