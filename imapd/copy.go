package imapd

import (
	"strconv"
	"strings"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Copy copies messages to another mailbox, keeping flags and dates
// (RFC 9051 §6.4.7), and reports COPYUID in the tagged OK (RFC 4315 §3).
// A missing target is NO [TRYCREATE]. Copies into the selected mailbox
// reach the view as an event, announced by the poll that follows.
func (s *session) Copy(byUID bool, set wire.NumSet, dest string) error {
	refs, dst, err := s.copyArgs(set, byUID, dest)
	if err != nil || len(refs) == 0 {
		return err
	}
	res, err := s.srv.store.Copy(s.ctx, s.sel.mb.ID, uidSetOf(refs), dst.ID, s.sel.sub.ID())
	if err != nil {
		return s.reply(err, roleTarget)
	}
	s.okCode = copyUID(res)
	return nil
}

// Move moves messages to another mailbox (RFC 6851): COPYUID first, in an
// untagged OK (§4.3), then an EXPUNGE for each source message.
func (s *session) Move(byUID bool, set wire.NumSet, dest string) error {
	sel := s.sel
	if sel.readOnly {
		// RFC 6851 §3.3: MOVE expunges, which EXAMINE does not allow.
		return errReadOnly
	}
	refs, dst, err := s.copyArgs(set, byUID, dest)
	if err != nil || len(refs) == 0 {
		return err
	}
	// One store call: the MOVE is atomic (RFC 6851 §3.3), all or none.
	res, moveErr := s.srv.store.Move(s.ctx, sel.mb.ID, uidSetOf(refs), dst.ID, sel.sub.ID())
	if code := copyUID(res); code.Name != "" {
		s.w.Untagged(wire.OK, code, "Moved")
	}
	for _, uid := range res.Source {
		if _, ok := sel.seqOf(uid); ok {
			sel.markGone(uid)
		}
	}
	if err := sel.flushExpunged(updates{s}); err != nil {
		return err
	}
	s.okModSeq = s.condstore && len(res.Source) > 0 // as EXPUNGE's (expunge.go)
	return s.reply(moveErr, roleTarget)
}

// copyArgs resolves COPY and MOVE's messages and target mailbox.
func (s *session) copyArgs(set wire.NumSet, byUID bool, dest string) ([]msgRef, mailstore.Mailbox, error) {
	if err := s.checkSelected(s.sel); err != nil {
		return nil, mailstore.Mailbox{}, err
	}
	refs, err := s.sel.resolve(set, byUID)
	if err != nil {
		return nil, mailstore.Mailbox{}, err
	}
	name, err := s.mailboxName(dest)
	if err != nil {
		return nil, mailstore.Mailbox{}, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return nil, mailstore.Mailbox{}, s.reply(err, roleTarget)
	}
	return refs, mb, nil
}

// copyUID is the COPYUID response code of a store result (RFC 4315 §3):
// "COPYUID uidvalidity source-uids dest-uids"; none if nothing moved.
func copyUID(res mailstore.CopyResult) wire.Code {
	if len(res.Source) == 0 {
		return wire.Code{}
	}
	args := strconv.FormatUint(uint64(res.UIDValidity), 10) + " " +
		uidList(res.Source) + " " + uidList(res.Dest)
	return wire.Code{Name: "COPYUID", Args: args}
}

// uidList writes UIDs as a uid-set, in their order (RFC 4315 §4: the
// source and destination sets correspond element by element, so they are
// not sorted), with runs of consecutive UIDs as ranges.
func uidList(uids []mailstore.UID) string {
	var sb strings.Builder
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatUint(uint64(uids[i]), 10))
		if j > i {
			sb.WriteByte(':')
			sb.WriteString(strconv.FormatUint(uint64(uids[j]), 10))
		}
		i = j + 1
	}
	return sb.String()
}
