package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ExternalMail makes the CA use a real mail system instead of the world's
// own: it submits its challenge emails through Send (unsigned; the mail
// system is expected to DKIM-sign them for the domain of Address, as a
// provider's submission server does), and it validates the response
// emails that the caller reads from the CA's mailbox and hands to
// [World.Deliver] (with the address [World.CAFrom]).
//
// In this mode the CA accepts orders for any address, since the world's
// own mailboxes are not where the mail goes, and response DKIM keys are
// looked up with Options.LookupTXT (default: the system resolver), not in
// the world's DNS zone.
type ExternalMail struct {
	// Address is the CA's mail address, such as acme@ca.example.net; its
	// challenge emails come from plus addresses of it (acme+ID@...), so the
	// mail system must deliver those to the same mailbox and let the CA's
	// login send as them.
	Address string
	// Send submits raw from the envelope sender from to the recipients to.
	Send func(ctx context.Context, from string, to []string, raw []byte) error
	// SendTimeout bounds one Send. Default 2 minutes.
	SendTimeout time.Duration
}

const defaultSendTimeout = 2 * time.Minute

func (e *ExternalMail) check() error {
	if e.Send == nil {
		return errors.New("external mail: no Send function")
	}
	addr, prob := canonicalAddress(e.Address)
	if prob != nil {
		return fmt.Errorf("external mail: the CA address: %s", prob.Detail)
	}
	local, _ := splitAddress(addr)
	if strings.Contains(local, "+") {
		return fmt.Errorf("external mail: the CA address %s must not have a +extension: challenges come from its plus addresses", addr)
	}
	e.Address = addr
	if e.SendTimeout <= 0 {
		e.SendTimeout = defaultSendTimeout
	}
	return nil
}

// systemLookupTXT is the default TXT lookup of an external-mail world.
func systemLookupTXT(ctx context.Context, name string) ([]string, error) {
	return net.DefaultResolver.LookupTXT(ctx, name)
}

// sendExternal submits a challenge email through the external mail system.
func (ca *authority) sendExternal(from, to string, raw []byte) error {
	ext := ca.opt.External
	ctx, cancel := context.WithTimeout(context.Background(), ext.SendTimeout)
	defer cancel()
	if err := ext.Send(ctx, from, []string{to}, raw); err != nil {
		return fmt.Errorf("submit the challenge email: %w", err)
	}
	return nil
}
