package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	legolog "github.com/go-acme/lego/v5/log"
)

// loggingProvider logs through lego's logger, as lego's exec provider
// does with its script's output and dns01 does with a CNAME it follows.
type loggingProvider struct{}

func (loggingProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	legolog.Info("lego says hello", slog.String("domain", domain))
	return nil
}
func (loggingProvider) CleanUp(ctx context.Context, domain, token, keyAuth string) error { return nil }

// TestLegoLogNeverOnStdout: lego logs to stdout by default, which would
// put its lines into --json; here it logs to the caller's logger during
// a call and nowhere otherwise.
func TestLegoLogNeverOnStdout(t *testing.T) {
	ctx := context.Background()
	if legolog.Default().Enabled(ctx, slog.LevelError) {
		t.Fatal("lego's logger is enabled outside a call: it writes to stdout")
	}
	if err := Present(ctx, loggingProvider{}, "", "mail.example.test", "", "ka"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	if err := Present(WithLegoLogger(ctx, l), loggingProvider{}, "", "mail.example.test", "", "ka"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "lego says hello") || !strings.Contains(buf.String(), "mail.example.test") {
		t.Errorf("the caller's logger got %q, want lego's line", buf.String())
	}
	if legolog.Default().Enabled(ctx, slog.LevelError) {
		t.Error("lego's logger is still the caller's after the call")
	}
}
