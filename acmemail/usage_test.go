package acmemail

import (
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"testing"
)

func TestKeyUsageFor(t *testing.T) {
	keys := csrTestKeys()
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const (
		ds = x509.KeyUsageDigitalSignature
		ke = x509.KeyUsageKeyEncipherment
		ka = x509.KeyUsageKeyAgreement
	)
	tests := []struct {
		key    string
		pub    crypto.PublicKey
		usage  Usage
		want   x509.KeyUsage
		wantOK bool
	}{
		{key: "rsa2048", usage: UsageSign, want: ds, wantOK: true},
		{key: "rsa2048", usage: UsageEncrypt, want: ke, wantOK: true},
		{key: "rsa2048", usage: UsageBoth, want: ds | ke, wantOK: true},
		{key: "p256", usage: UsageSign, want: ds, wantOK: true},
		{key: "p256", usage: UsageEncrypt, want: ka, wantOK: true},
		{key: "p256", usage: UsageBoth, want: ds | ka, wantOK: true},
		{key: "ed25519", usage: UsageSign, want: ds, wantOK: true},
		{key: "ed25519", usage: UsageEncrypt},
		{key: "ed25519", usage: UsageBoth},
		{key: "p256", usage: Usage(3)},
		{key: "x25519", pub: x.PublicKey(), usage: UsageEncrypt},
		{key: "nil", pub: nil, usage: UsageSign},
	}
	for _, tt := range tests {
		pub := tt.pub
		if k, ok := keys[tt.key]; ok {
			pub = k.Public()
		}
		got, ok := KeyUsageFor(pub, tt.usage)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("KeyUsageFor(%s, %s) = %v, %v; want %v, %v", tt.key, tt.usage, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		in      string
		want    Usage
		wantErr bool
	}{
		{"both", UsageBoth, false},
		{"sign", UsageSign, false},
		{"encrypt", UsageEncrypt, false},
		{" Sign\n", UsageSign, false},
		{"ENCRYPT", UsageEncrypt, false},
		{"", 0, true},
		{"signing", 0, true},
		{"all", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseUsage(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseUsage(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	for u, want := range map[Usage]string{UsageBoth: "both", UsageSign: "sign", UsageEncrypt: "encrypt", Usage(-1): "Usage(-1)"} {
		if got := u.String(); got != want {
			t.Errorf("Usage(%d).String() = %q, want %q", int(u), got, want)
		}
	}
	for _, u := range []Usage{UsageBoth, UsageSign, UsageEncrypt} {
		text, err := u.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v): %v", u, err)
		}
		var back Usage = 7
		if err := back.UnmarshalText(text); err != nil || back != u {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, u)
		}
	}
	if _, err := Usage(5).MarshalText(); err == nil {
		t.Error("Usage(5).MarshalText() succeeded, want an error")
	}
	var u Usage
	if err := u.UnmarshalText([]byte("nope")); err == nil {
		t.Error(`UnmarshalText("nope") succeeded, want an error`)
	}
}
