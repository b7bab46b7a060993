package acmemail

import (
	"encoding/hex"
	"math/big"
	"strings"
)

// FormatSerial is a certificate serial number as OpenSSL prints it
// (openssl x509 -serial): the magnitude in upper-case hex, whole bytes,
// so a leading zero nibble is kept ("067B2F53…", not "67b2f53…"). acmemail
// shows serial numbers this way everywhere: text, JSON, the deploy hook.
func FormatSerial(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := new(big.Int).Abs(n).Bytes()
	if len(b) == 0 {
		return "00"
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// FormatSerialText is FormatSerial of a serial number stored as hex in
// any case and with or without leading zeros (meta.json and
// renewal.json hold it as Go's big.Int.Text(16) writes it); a string that
// is not hex is returned as is.
func FormatSerialText(s string) string {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return s
	}
	return FormatSerial(n)
}
