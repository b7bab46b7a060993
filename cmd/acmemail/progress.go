package main

import (
	"io"

	"github.com/acmemail/acmemail/cmd/internal/termout"
)

// progress prints acmemail's progress on stderr (termout.Progress).
type progress = termout.Progress

func newProgress(w io.Writer) *progress { return termout.New(w) }
