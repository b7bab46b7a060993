// Package doctorout is how the doctor commands (acmemail doctor, acmemail
// server doctor) report their checks: one PASS/WARN/FAIL/SKIP line each,
// or a JSON array of the same.
package doctorout

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/acmemail/acmemail/cmd/internal/termout"
)

// Check is one line of the report, as --json prints it.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Status string `json:"status"` // pass, warn, fail, skip
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Print writes the checks as aligned lines, details and fixes escaped.
func Print(w io.Writer, checks []Check) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(c.Status), c.Name, termout.EscapeLines(c.Detail))
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", termout.EscapeLines(c.Fix))
		}
	}
	return tw.Flush()
}
