package imapd

import (
	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// QUOTA (RFC 9208). Each user has one quota root, "", over all their
// mailboxes, with the resources the administrator limited (pushmail user
// quota): STORAGE (§5.1, in units of 1024 octets) and MESSAGE (§5.2). A
// user with no limit has no quota root: GETQUOTAROOT lists none and
// GETQUOTA "" is NO, since RFC 9208 §7's quota_list holds at least one
// resource and a resource without a limit has no figure to give.
// SETQUOTA is refused: limits are the administrator's (§4.2.3 "SETQUOTA
// ... is optional"; QUOTASET is not announced).

// quotaRoot is the name of every user's one quota root.
const quotaRoot = ""

var (
	errNoQuotaRoot = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeNonExistent,
		Text: "No such quota root",
	}
	// RFC 9208 §4.2.3: a server that does not let the client change a
	// limit answers NO.
	errSetQuota = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeNoPerm,
		Text: "Quotas are set by the administrator",
	}
)

// kib is a byte count in RFC 9208 §5.1's units of 1024 octets, rounded
// up: one byte used shows as used, and a limit under 1024 bytes does
// not read as 0, "nothing may be stored".
func kib(n int64) int64 { return (n + 1023) / 1024 }

// hasQuota reports whether q limits anything.
func hasQuota(q mailstore.Quota) bool { return q.StorageLimit > 0 || q.MessageLimit > 0 }

// writeQuota writes "* QUOTA root (resource usage limit …)" (RFC 9208
// §5.1, §5.2) for the resources that have a limit.
func (s *session) writeQuota(q mailstore.Quota) {
	w := s.w
	w.Raw("* QUOTA ").AString(quotaRoot).Raw(" (")
	sep := ""
	if q.StorageLimit > 0 {
		w.Raw("STORAGE ").Number(uint64(kib(q.StorageUsed))).SP().Number(uint64(kib(q.StorageLimit)))
		sep = " "
	}
	if q.MessageLimit > 0 {
		w.Raw(sep).Raw("MESSAGE ").Number(uint64(q.MessagesUsed)).SP().Number(uint64(q.MessageLimit))
	}
	w.Raw(")").CRLF()
}

// getQuota answers GETQUOTA (RFC 9208 §4.2.1).
func (s *session) getQuota(a *wire.GetQuota) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	q, err := s.srv.store.Quota(s.ctx, s.user.ID)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	if a.Root != quotaRoot || !hasQuota(q) {
		return errNoQuotaRoot
	}
	s.writeQuota(q)
	return nil
}

// getQuotaRoot answers GETQUOTAROOT (RFC 9208 §4.2.2): the mailbox's
// quota roots, then each root's QUOTA.
func (s *session) getQuotaRoot(a *wire.GetQuotaRoot) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	if _, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name); err != nil {
		return s.reply(err, roleMailbox)
	}
	q, err := s.srv.store.Quota(s.ctx, s.user.ID)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	s.w.Raw("* QUOTAROOT ").Mailbox(name)
	if hasQuota(q) {
		s.w.SP().AString(quotaRoot)
	}
	s.w.CRLF()
	if hasQuota(q) {
		s.writeQuota(q)
	}
	return nil
}
