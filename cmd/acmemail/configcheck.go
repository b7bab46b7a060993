package main

import (
	"fmt"
	"strings"

	cfgfile "github.com/acmemail/acmemail/cmd/internal/config"
)

// checkSettingValues returns one error naming every setting whose value a
// command would refuse (see cfgfile.CheckValue), with where it came from.
func checkSettingValues(settings []setting) error {
	var bad []string
	for _, s := range settings {
		if err := cfgfile.CheckValue(s.Key, s.Value); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %s %q: %v", s.Source, s.Key, s.Value, err))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return withHint(usageErrorf("%s", strings.Join(bad, "; ")),
		"commands given these settings would stop with the same error; acmemail COMMAND --help lists what each flag takes")
}
