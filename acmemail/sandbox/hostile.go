package sandbox

import (
	"bytes"
	"strings"
	"time"
)

// Forgeries is the list of forged challenge mails that a hostile sandbox
// (Options.Hostile) delivers to the user's INBOX before the genuine
// challenge, in this order, each with a fresh fake token-part1. A client
// that answers any of them sends a reply the CA counts (and refuses).
// After the genuine challenge, it delivers a replay of it.
var Forgeries = []string{
	"no signature",
	"signature by another domain",
	"valid signature over a tampered body",
	"From not the challenge's from",
	"To not the address",
	"reply subject",
	"l= signature",
	"duplicated From header",
	"forged Authentication-Results",
}

// deliverForgeries puts one mail of each kind in Forgeries into to's INBOX.
func (ca *authority) deliverForgeries(from, to string) {
	for _, kind := range Forgeries {
		tp1, err := newToken(ca.opt.TokenLength)
		if err != nil {
			return
		}
		msgID := "<" + newID() + "@" + ca.caDomain + ">"
		raw := composeChallenge(from, to, tp1, msgID, time.Now(), !ca.opt.OmitAutoSubmitted)
		var forged []byte
		switch kind {
		case "no signature":
			forged = raw
		case "signature by another domain":
			forged, err = ca.keys.sign("evil.sandbox.test", raw)
		case "valid signature over a tampered body":
			if forged, err = ca.keys.sign(ca.caDomain, raw); err == nil {
				forged = append(forged, []byte("Also send your password to evil@evil.sandbox.test.\r\n")...)
			}
		case "From not the challenge's from":
			raw = composeChallenge("acme-challenge+forged@"+ca.caDomain, to, tp1, msgID, time.Now(), !ca.opt.OmitAutoSubmitted)
			forged, err = ca.keys.sign(ca.caDomain, raw)
		case "To not the address":
			raw = composeChallenge(from, "someone-else@"+domainOf(to), tp1, msgID, time.Now(), !ca.opt.OmitAutoSubmitted)
			forged, err = ca.keys.sign(ca.caDomain, raw)
		case "reply subject":
			raw = bytes.Replace(raw, []byte("\r\nSubject: ACME: "), []byte("\r\nSubject: Re: ACME: "), 1)
			forged, err = ca.keys.sign(ca.caDomain, raw)
		case "l= signature":
			if forged, err = ca.keys.sign(ca.caDomain, raw); err == nil {
				forged = bytes.Replace(forged, []byte("DKIM-Signature: a="), []byte("DKIM-Signature: l=10; a="), 1)
				if !bytes.Contains(forged, []byte("l=10;")) {
					// Never deliver a valid mail in a forgery's place.
					ca.log.Error("hostile: cannot add l= to the signature")
					continue
				}
			}
		case "duplicated From header":
			if forged, err = ca.keys.sign(ca.caDomain, raw); err == nil {
				forged = append([]byte("From: "+from+"\r\n"), forged...)
				forged = bytes.Replace(forged, []byte("\r\nFrom: "+from+"\r\n"), []byte("\r\nFrom: billing@evil.sandbox.test\r\n"), 1)
			}
		case "forged Authentication-Results":
			forged = append([]byte("Authentication-Results: mx.sandbox.test; dkim=pass header.d="+ca.caDomain+"\r\n"), raw...)
		}
		if err != nil {
			ca.log.Error("hostile: cannot forge", "kind", kind, "error", err)
			continue
		}
		ca.forge(kind, to, forged)
	}
}

// forge delivers raw straight into to's INBOX, as a forger would.
func (ca *authority) forge(kind, to string, raw []byte) {
	if err := ca.mail.appendInbox(to, raw); err != nil {
		ca.log.Error("hostile: cannot deliver", "kind", kind, "error", err)
		return
	}
	ca.log.Info("hostile: delivered a forged challenge", "kind", kind, "to", to)
}

func domainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}
