package imapd

import (
	"strconv"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// multiAppend answers an APPEND of several messages (RFC 3502
// MULTIAPPEND): all of them are stored in one transaction or none is
// (§3: "If the server is unable to append all of the messages, it MUST
// NOT append any"), and APPENDUID carries the UID set (RFC 4315 §3, "the
// UIDs of the messages in the order they were appended"). By the time it
// runs the parser has read every message, each one within APPENDLIMIT and
// the command's whole memory within the in-flight budget (growMessage):
// a refusal of any of them was NO before anything was stored. A bad
// message the store refuses (a flag) refuses them all the same way.
func (s *session) multiAppend(a *wire.Append) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return s.reply(err, roleTarget)
	}
	msgs := a.Messages()
	batch := make([]mailstore.AppendMessage, len(msgs))
	for i, m := range msgs {
		batch[i] = mailstore.AppendMessage{Raw: m.Message, Flags: m.Flags, Date: m.Date}
	}
	res, err := s.srv.store.AppendBatch(s.ctx, mb.ID, batch, s.origin())
	if err != nil {
		return s.reply(err, roleTarget)
	}
	s.okCode = wire.Code{Name: "APPENDUID", Args: strconv.FormatUint(uint64(res.UIDValidity), 10) + " " + uidList(res.UIDs)}
	return nil
}
