package acmemail

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tokenJoinVectors is testdata/token-join.json (a copy of
// the shared token-join vectors), computed independently.
type tokenJoinVectors struct {
	Cases []struct {
		Note                        string `json:"note"`
		TokenPart1                  string `json:"token_part1"`
		TokenPart2                  string `json:"token_part2"`
		Thumbprint                  string `json:"jwk_thumbprint"`
		DigestStringJoin            string `json:"digest_string_join"`
		DigestStringJoinTP1Unpadded string `json:"digest_string_join_tp1_unpadded"`
		DigestOctetJoin             string `json:"digest_octet_join"`
	} `json:"cases"`
}

func TestTokenJoinVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "token-join.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v tokenJoinVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) < 4 {
		t.Fatalf("token-join.json has %d cases, want at least 4", len(v.Cases))
	}
	for _, c := range v.Cases {
		t.Run(c.Note, func(t *testing.T) {
			unpadded := strings.TrimRight(c.TokenPart1, "=")
			checks := []struct {
				name string
				tp1  string
				mode JoinMode
				want string
			}{
				{"digest_string_join", c.TokenPart1, JoinString, c.DigestStringJoin},
				{"digest_string_join_tp1_unpadded", unpadded, JoinString, c.DigestStringJoinTP1Unpadded},
				{"digest_octet_join", c.TokenPart1, JoinOctet, c.DigestOctetJoin},
				// The octet join decodes, so padding on token-part1 cannot matter.
				{"digest_octet_join (tp1 unpadded)", unpadded, JoinOctet, c.DigestOctetJoin},
			}
			for _, k := range checks {
				if k.want == "" {
					t.Fatalf("%s: the vector is empty", k.name)
				}
				ka, err := KeyAuthorization(k.tp1, c.TokenPart2, c.Thumbprint, k.mode)
				if err != nil {
					t.Fatalf("%s: KeyAuthorization: %v", k.name, err)
				}
				if got := ResponseDigest(ka); got != k.want {
					t.Errorf("%s: ResponseDigest(KeyAuthorization(%s join)) = %s, want %s", k.name, k.mode, got, k.want)
				}
			}
		})
	}
}

// TestKeyAuthorizationTokens checks the joined token itself against
// PROTOCOL.md §1.5 (the octet-joined token of the RFC example).
func TestKeyAuthorizationTokens(t *testing.T) {
	const (
		tp1   = "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME="
		tp2   = "DGyRejmCefe7v4NfDGDKfA"
		thumb = "1_nKJnlH9boVxdoO63T8zP7O2w42qZL4d6xj35Hy5aI"
	)
	tests := []struct {
		mode JoinMode
		want string
	}{
		{JoinString, "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=DGyRejmCefe7v4NfDGDKfA." + thumb},
		{JoinOctet, "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sMEMbJF6OYJ597u_g18MYMp8." + thumb},
	}
	for _, tt := range tests {
		got, err := KeyAuthorization(tp1, tp2, thumb, tt.mode)
		if err != nil || got != tt.want {
			t.Errorf("KeyAuthorization(%s) = %q, %v; want %q", tt.mode, got, err, tt.want)
		}
	}
}

func TestKeyAuthorizationErrors(t *testing.T) {
	const (
		tp1   = "V4nE8NhYh6edBpfQTg5qqQ"
		tp2   = "x6I65YvEk6xC4KV0QMvdJw"
		thumb = "hC4xyXNn8ZDH4yrcp93Zj3qgQs7LyT_GUL45YD7IVMQ"
	)
	tests := []struct {
		name            string
		tp1, tp2, thumb string
		mode            JoinMode
		errText         string
	}{
		{"empty tp1", "", tp2, thumb, JoinString, "token-part1: empty"},
		{"padding only tp1", "==", tp2, thumb, JoinOctet, "token-part1: empty"},
		{"empty tp2", tp1, "", thumb, JoinString, "token-part2: empty"},
		{"bad tp1", tp1 + "!", tp2, thumb, JoinString, "token-part1"},
		{"bad tp2", tp1, "a+b/" + tp2, thumb, JoinOctet, "token-part2"},
		{"tp1 with space", "V4nE8NhYh6 edBpfQTg5qqQ", tp2, thumb, JoinString, "token-part1"},
		{"tp2 wrong padding", tp1, tp2 + "=", thumb, JoinOctet, "padding"},
		{"tp2 impossible length", tp1, tp2[:21], thumb, JoinOctet, "whole octets"},
		{"empty thumbprint", tp1, tp2, "", JoinString, "thumbprint is empty"},
		{"padded thumbprint", tp1, tp2, thumb + "=", JoinString, "thumbprint"},
		{"unknown mode", tp1, tp2, thumb, JoinMode(7), "unknown token join mode"},
	}
	for _, tt := range tests {
		got, err := KeyAuthorization(tt.tp1, tt.tp2, tt.thumb, tt.mode)
		if err == nil {
			t.Errorf("%s: KeyAuthorization = %q, want an error", tt.name, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("%s: error = %q, want it to contain %q", tt.name, err, tt.errText)
		}
		// Never leak the token parts in an error.
		for _, secret := range []string{tt.tp1, tt.tp2} {
			if len(secret) > 8 && strings.Contains(err.Error(), secret[:8]) {
				t.Errorf("%s: error %q contains a token part", tt.name, err)
			}
		}
	}
}

func TestResponseDigest(t *testing.T) {
	// SHA-256("") and SHA-256("abc"), base64url without padding.
	tests := []struct{ in, want string }{
		{"", "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"},
		{"abc", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"},
	}
	for _, tt := range tests {
		if got := ResponseDigest(tt.in); got != tt.want {
			t.Errorf("ResponseDigest(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestJoinMode(t *testing.T) {
	tests := []struct {
		in      string
		want    JoinMode
		wantErr bool
	}{
		{"string", JoinString, false},
		{"octet", JoinOctet, false},
		{" Octet ", JoinOctet, false},
		{"STRING", JoinString, false},
		{"", 0, true},
		{"octets", 0, true},
		{"bytes", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseJoinMode(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseJoinMode(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	for m, want := range map[JoinMode]string{JoinString: "string", JoinOctet: "octet", JoinMode(9): "JoinMode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("JoinMode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
	for _, m := range []JoinMode{JoinString, JoinOctet} {
		text, err := m.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v): %v", m, err)
		}
		var back JoinMode = 5
		if err := back.UnmarshalText(text); err != nil || back != m {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, m)
		}
	}
	if _, err := JoinMode(9).MarshalText(); err == nil {
		t.Error("JoinMode(9).MarshalText() succeeded, want an error")
	}
	var m JoinMode
	if err := m.UnmarshalText([]byte("nope")); err == nil {
		t.Error(`UnmarshalText("nope") succeeded, want an error`)
	}
}
