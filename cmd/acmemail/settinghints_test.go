package main

import (
	"errors"
	"slices"
	"testing"
)

func TestSettingHints(t *testing.T) {
	sources := []configSource{{Flag: "imap", From: "config.toml:4"}, {Flag: "key-type", From: "ACMEMAIL_KEY_TYPE"}, {Flag: "usage", From: "config.toml:9"}}
	for _, tc := range []struct {
		err  string
		want []string
	}{
		{`--key-type "rsa1024": choose rsa2048, ...`, []string{"--key-type is set by ACMEMAIL_KEY_TYPE, not on the command line"}},
		{`--imap-user x: bad`, nil}, // another flag that starts alike
		{`--imap: parse "x"`, []string{"--imap is set by config.toml:4, not on the command line"}},
		{`config.toml:9: usage: bad value for --usage`, nil}, // says where already
		{`--split does not go with --usage sign`, []string{"--usage is set by config.toml:9, not on the command line"}},
		{`no flag named here`, nil},
	} {
		if got := settingHints(errors.New(tc.err), sources); !slices.Equal(got, tc.want) {
			t.Errorf("settingHints(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
