package mailbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// RemoveResult says what [Remove] did.
type RemoveResult struct {
	// Found is how many messages had the Message-ID.
	Found int
	// Expunged reports whether they were removed for good. When false
	// (the server lacks UID EXPUNGE), they are only flagged \Deleted and
	// \Seen, and disappear at the mailbox's next expunge.
	Expunged bool
}

// Remove deletes the messages of cfg.Mailbox whose Message-ID header field
// is messageID ("<...>"), in a connection of its own: it flags them
// \Seen and \Deleted and, when the server offers UID EXPUNGE (UIDPLUS or
// IMAP4rev2), expunges exactly those messages. It never issues a plain
// EXPUNGE, which would also remove other messages the user flagged
// \Deleted.
func Remove(ctx context.Context, cfg IMAPConfig, messageID string) (RemoveResult, error) {
	var res RemoveResult
	if !strings.HasPrefix(messageID, "<") || !strings.HasSuffix(messageID, ">") || strings.ContainsAny(messageID, "\r\n") {
		return res, fmt.Errorf("imap remove: %q is not a Message-ID", messageID)
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.Username == "" {
		return res, errors.New("imap login: no user name configured")
	}
	w := &Watcher{
		cfg:    cfg,
		log:    discardLogger(cfg.Logger).With("mailbox", cfg.Mailbox),
		trace:  newRedactor(cfg.DebugWriter, false, cfg.Username, cfg.Password),
		exists: make(chan struct{}, 1),
	}
	sess, err := w.connect(ctx)
	if err != nil {
		return res, err
	}
	c := sess.c
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	data, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: messageID}},
	}, nil).Wait()
	if err != nil {
		return res, fmt.Errorf("imap search %q for %s: %w", cfg.Mailbox, messageID, err)
	}
	uids := data.AllUIDs()
	res.Found = len(uids)
	if len(uids) == 0 {
		c.Logout().Wait()
		return res, nil
	}
	set := imap.UIDSetNum(uids...)
	if err := c.Store(set, &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted},
	}, nil).Close(); err != nil {
		return res, fmt.Errorf("imap flag %s as deleted: %w", messageID, err)
	}
	if c.Caps().Has(imap.CapUIDPlus) {
		if err := c.UIDExpunge(set).Close(); err != nil {
			return res, fmt.Errorf("imap UID EXPUNGE %s: %w", messageID, err)
		}
		res.Expunged = true
	}
	if err := c.Logout().Wait(); err != nil {
		w.log.Debug("imap logout", "error", err)
	}
	return res, nil
}
