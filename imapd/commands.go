package imapd

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Version is the server version ID reports (RFC 2971).
var Version = "dev"

// connState is a session's IMAP state (RFC 9051 §3).
type connState int

const (
	stateNotAuth connState = iota
	stateAuth
	stateSelected
)

func (s *session) state() connState {
	switch {
	case s.user == nil:
		return stateNotAuth
	case s.sel == nil:
		return stateAuth
	}
	return stateSelected
}

// commandStates gives the state each command needs (RFC 9051 §6): absent
// commands are valid in every state.
var commandStates = map[string]connState{
	"STARTTLS": stateNotAuth, "LOGIN": stateNotAuth, "AUTHENTICATE": stateNotAuth,

	"ENABLE": stateAuth, "SELECT": stateAuth, "EXAMINE": stateAuth,
	"CREATE": stateAuth, "DELETE": stateAuth, "RENAME": stateAuth,
	"SUBSCRIBE": stateAuth, "UNSUBSCRIBE": stateAuth, "LIST": stateAuth,
	"LSUB": stateAuth, "NAMESPACE": stateAuth, "STATUS": stateAuth,
	"APPEND": stateAuth, "IDLE": stateAuth, "COMPRESS": stateAuth,
	"GETQUOTA": stateAuth, "GETQUOTAROOT": stateAuth, "SETQUOTA": stateAuth,
	"GETMETADATA": stateAuth, "SETMETADATA": stateAuth,
	"NOTIFY": stateAuth,

	"CHECK": stateSelected, "CLOSE": stateSelected, "UNSELECT": stateSelected,
	"EXPUNGE": stateSelected, "SEARCH": stateSelected, "FETCH": stateSelected,
	"STORE": stateSelected, "COPY": stateSelected, "MOVE": stateSelected,
	"SORT": stateSelected, "THREAD": stateSelected,
}

// checkState answers a command given in the wrong state: BAD, as a
// protocol error (RFC 9051 §6).
func (s *session) checkState(name string) error {
	want, ok := commandStates[name]
	if !ok {
		return nil
	}
	have := s.state()
	switch {
	case want == stateNotAuth && have != stateNotAuth:
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Already logged in"}
	case want != stateNotAuth && have == stateNotAuth:
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Not logged in"}
	case want == stateSelected && have != stateSelected:
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "No mailbox selected"}
	}
	return nil
}

// nextStep is what the connection's goroutine does after a command.
type nextStep int

const (
	stepNext   nextStep = iota // read the next command
	stepEnd                    // end the session (LOGOUT, a BYE, a failed write)
	stepParked                 // IDLE hibernated: leave the session (hibernate.go)
)

// execute runs one command and writes its responses.
func (s *session) execute(cmd *wire.Command) nextStep {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer s.releaseMessage()
	if s.byed {
		return stepEnd
	}
	s.tag, s.okCode, s.noTagged, s.loggingOut, s.okModSeq = cmd.Tag, wire.Code{}, false, false, false
	s.bad = 0
	err := s.checkState(cmd.Name)
	if err == nil {
		err = s.dispatch(cmd)
	}
	if err == errParked {
		return stepParked
	}
	return s.finish(cmd.Name, cmd.UID, err)
}

// finish completes the command name whose work is done with err: the
// pending updates, the tagged reply. An IDLE woken from hibernation
// finishes here too. The caller holds wmu.
func (s *session) finish(name string, uid bool, err error) nextStep {
	// The message is stored or refused by now: give its budget back
	// before the client hears the answer and sends the next.
	s.releaseMessage()
	if s.idling {
		s.idling = false
		s.startWatch()
	}
	if s.byed {
		return stepEnd
	}
	// SELECT and EXAMINE have just read the mailbox: changes since then
	// wait for the next command, so that the client hears nothing of the
	// new mailbox before the tagged OK tells it the mailbox is selected.
	fresh := name == "SELECT" || name == "EXAMINE"
	if err == nil && s.state() != stateNotAuth && !s.loggingOut && !fresh {
		// RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or
		// SEARCH by sequence number, which it would renumber.
		// SORT and THREAD (RFC 5256) answer with sequence numbers too.
		allowExpunge := uid || (name != "FETCH" && name != "STORE" && name != "SEARCH" &&
			name != "SORT" && name != "THREAD")
		err = s.poll(allowExpunge)
		if s.byed {
			return stepEnd
		}
		if err == nil && s.okModSeq && s.sel != nil {
			s.okCode = highestModSeqCode(s.sel.reportModSeq())
		}
	}
	if !s.noTagged {
		if uid {
			name = "UID " + name
		}
		s.answer(s.tag, name, err)
	}
	if s.flush() != nil || s.loggingOut || s.byed {
		return stepEnd
	}
	return stepNext
}

// answer writes the tagged reply of a command: OK with the code the
// command left in okCode, or the reply err maps to. This is the one place
// where errors become replies; reply (errors.go) has mapped store errors
// to *imap.Error before.
func (s *session) answer(tag, name string, err error) {
	if err == nil {
		s.w.Tagged(tag, wire.OK, s.okCode, name+" completed")
		return
	}
	var ie *imap.Error
	if !errors.As(err, &ie) {
		if connectionGone(err) || errors.Is(err, os.ErrDeadlineExceeded) {
			// The client hung up, or stopped reading, mid-answer: no
			// fault of the server's, and nobody to tell.
			s.log.Debug("connection lost during a command", "command", name, "err", err)
			s.byed = true
			return
		}
		s.log.Error("command failed", "command", name, "err", err)
		ie = errServerBug
	}
	if ie.Type == imap.StatusResponseTypeBye {
		s.byeLocked(ie.Text)
		return
	}
	if ie.Type == imap.StatusResponseTypeBad {
		s.log.Debug("command refused", "command", name, "code", ie.Code, "text", ie.Text)
	}
	s.w.Tagged(tag, wire.StatusType(ie.Type), wireCode(ie.Code), ie.Text)
}

// dispatch runs a command valid in the session's state.
func (s *session) dispatch(cmd *wire.Command) error {
	switch cmd.Name {
	case "CAPABILITY":
		s.w.Raw("* CAPABILITY ").Raw(strings.Join(s.capabilities(), " ")).CRLF()
		return nil
	case "NOOP", "CHECK":
		// RFC 9051 §6.1.2: NOOP's updates are what poll sends; CHECK is
		// NOOP here (RFC 3501 §6.4.1: every change is already durable).
		return s.checkAccount()
	case "LOGOUT":
		// RFC 9051 §6.1.3: BYE, then the tagged OK, then close.
		s.w.Untagged(wire.BYE, wire.Code{}, "Logging out")
		s.loggingOut = true
		s.srv.releaseSlot(s)
		return nil
	case "ID":
		return s.answerID(cmd.Args.(*wire.ID))
	case "STARTTLS":
		return s.startTLS(cmd.Tag)
	case "COMPRESS":
		return s.compress(cmd.Tag, cmd.Args.(*wire.Compress))
	case "LOGIN":
		a := cmd.Args.(*wire.Login)
		return s.Login(a.Username, a.Password)
	case "AUTHENTICATE":
		return s.authenticate(cmd.Args.(*wire.Authenticate))
	case "ENABLE":
		return s.enable(cmd.Args.(*wire.Enable))
	case "NAMESPACE":
		// RFC 2342: one personal namespace, "" with "/".
		s.w.Raw(`* NAMESPACE (("" "/")) NIL NIL`).CRLF()
		return nil
	case "SELECT", "EXAMINE":
		return s.Select(cmd.Args.(*wire.Select), cmd.Name == "EXAMINE")
	case "CREATE":
		return s.Create(cmd.Args.(*wire.Create))
	case "DELETE":
		return s.Delete(cmd.Args.(*wire.Mailbox).Name)
	case "RENAME":
		a := cmd.Args.(*wire.Rename)
		return s.Rename(a.From, a.To)
	case "SUBSCRIBE":
		return s.setSubscribed(cmd.Args.(*wire.Mailbox).Name, true)
	case "UNSUBSCRIBE":
		return s.setSubscribed(cmd.Args.(*wire.Mailbox).Name, false)
	case "LIST":
		return s.List(listOptions(cmd.Args.(*wire.List)))
	case "LSUB":
		a := cmd.Args.(*wire.Lsub)
		return s.List(listCommand{ref: a.Reference, patterns: []string{a.Pattern}, lsub: true,
			opts: imap.ListOptions{SelectSubscribed: true}})
	case "STATUS":
		return s.Status(cmd.Args.(*wire.Status))
	case "APPEND":
		return s.Append(cmd.Args.(*wire.Append))
	case "IDLE":
		return s.idle(cmd.Tag)
	case "CLOSE":
		return s.close()
	case "UNSELECT":
		s.unselect()
		return nil
	case "EXPUNGE":
		var set *wire.NumSet
		if a, ok := cmd.Args.(*wire.Expunge); ok {
			set = &a.Set
		}
		return s.Expunge(set)
	case "SEARCH":
		return s.Search(cmd.UID, cmd.Args.(*wire.Search))
	case "SORT":
		return s.Sort(cmd.UID, cmd.Args.(*wire.Sort))
	case "THREAD":
		return s.Thread(cmd.UID, cmd.Args.(*wire.Thread))
	case "FETCH":
		return s.Fetch(cmd.UID, cmd.Args.(*wire.Fetch))
	case "STORE":
		return s.Store(cmd.UID, cmd.Args.(*wire.Store))
	case "COPY":
		a := cmd.Args.(*wire.Copy)
		return s.Copy(cmd.UID, a.Set, a.Mailbox)
	case "MOVE":
		a := cmd.Args.(*wire.Copy)
		return s.Move(cmd.UID, a.Set, a.Mailbox)
	case "GETQUOTA":
		return s.getQuota(cmd.Args.(*wire.GetQuota))
	case "GETQUOTAROOT":
		return s.getQuotaRoot(cmd.Args.(*wire.GetQuotaRoot))
	case "SETQUOTA":
		return errSetQuota
	case "GETMETADATA":
		return s.getMetadata(cmd.Args.(*wire.GetMetadata))
	case "SETMETADATA":
		return s.setMetadata(cmd.Args.(*wire.SetMetadata))
	case "NOTIFY":
		return s.notifyCommand(cmd.Args.(*wire.Notify))
	}
	// The parser knows no command this switch does not.
	return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
}

// capabilities lists what the server announces now (RFC 9051 §7.2.2):
// before login, how to log in; after it, the extensions. LOGINDISABLED
// replaces AUTH= where no password may be sent (RFC 9051 §6.2.3).
func (s *session) capabilities() []string {
	caps := []string{"IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"}
	if s.user == nil {
		if s.offerStartTLS() {
			caps = append(caps, "STARTTLS")
		}
		if s.authAllowed() {
			caps = append(caps, "AUTH=PLAIN")
		} else {
			caps = append(caps, "LOGINDISABLED")
		}
		return caps
	}
	return append(caps,
		"NAMESPACE",             // RFC 2342
		"UNSELECT",              // RFC 3691
		"UIDPLUS",               // RFC 4315
		"ESEARCH",               // RFC 4731
		"SEARCHRES",             // RFC 5182
		"LIST-EXTENDED",         // RFC 5258
		"LIST-STATUS",           // RFC 5819
		"MOVE",                  // RFC 6851
		"STATUS=SIZE",           // RFC 8438
		"BINARY",                // RFC 3516
		"CHILDREN",              // RFC 3348
		"SPECIAL-USE",           // RFC 6154
		"CREATE-SPECIAL-USE",    // RFC 6154 §3
		"UTF8=ACCEPT",           // RFC 6855
		"CONDSTORE",             // RFC 7162 §3.1
		"QRESYNC",               // RFC 7162 §3.2
		"QUOTA",                 // RFC 9208
		"QUOTA=RES-STORAGE",     // RFC 9208 §5.1
		"QUOTA=RES-MESSAGE",     // RFC 9208 §5.2
		"METADATA",              // RFC 5464
		"METADATA-SERVER",       // RFC 5464 §1
		"SORT",                  // RFC 5256 §3
		"SORT=DISPLAY",          // RFC 5957
		"THREAD=ORDEREDSUBJECT", // RFC 5256 §2.2
		"THREAD=REFERENCES",     // RFC 5256 §2.2
		"ESORT",                 // RFC 5267 §3.2
		"MULTIAPPEND",           // RFC 3502
		"COMPRESS=DEFLATE",      // RFC 4978
		"NOTIFY",                // RFC 5465
		"WITHIN",                // RFC 5032
		"OBJECTID",              // RFC 8474
		"SAVEDATE",              // RFC 8514
		"PARTIAL",               // RFC 9394
		"APPENDLIMIT="+strconv.FormatUint(uint64(s.srv.opts.AppendLimit), 10), // RFC 7889
	)
}

// offerStartTLS reports whether STARTTLS may start now: the server has a
// certificate, the connection has no TLS yet, and nobody has logged in
// (RFC 9051 §6.2.1).
func (s *session) offerStartTLS() bool {
	return s.srv.opts.TLSConfig != nil && !s.isTLS() && s.user == nil
}

// isTLS reports whether the connection carries TLS: implicit, or started
// with STARTTLS.
func (s *session) isTLS() bool { return connIsTLS(s.nc) }

// connIsTLS reports whether nc is a TLS connection, compressed or not.
func connIsTLS(nc net.Conn) bool {
	if dc, ok := nc.(*deflateConn); ok {
		nc = dc.Conn
	}
	_, ok := nc.(*tls.Conn)
	return ok
}

// startTLS answers STARTTLS and runs the handshake (RFC 9051 §6.2.1).
// Bytes the client sent after its STARTTLS line, before the handshake,
// would be commands injected in the clear (CVE-2011-0411 and kin): the
// session ends instead of reading them.
func (s *session) startTLS(tag string) error {
	if !s.offerStartTLS() {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "STARTTLS not available"}
	}
	if s.br.Buffered() > 0 {
		s.log.Info("STARTTLS: the client sent data before the handshake")
		s.byeLocked("Data after STARTTLS before the TLS handshake")
		return nil
	}
	s.noTagged = true
	s.w.Tagged(tag, wire.OK, wire.Code{}, "Begin TLS negotiation now")
	if err := s.flush(); err != nil {
		return err
	}
	tc := newTLSServer(s.nc, s.srv.opts.TLSConfig) // tlspark.go
	if err := s.raw.SetDeadline(time.Now().Add(s.srv.opts.CommandTimeout)); err != nil {
		return err
	}
	if err := s.handshake(tc); err != nil { // tlspark.go
		s.log.Debug("STARTTLS handshake failed", "err", err)
		s.byed = true // nothing can be said: close quietly
		if cerr := s.raw.Close(); cerr != nil {
			s.log.Debug("close", "err", cerr)
		}
		return nil
	}
	if err := s.raw.SetWriteDeadline(time.Time{}); err != nil {
		return err
	}
	s.nc = tc
	s.br.Reset(s.input())
	s.bw.Reset(tc)
	return nil
}

// answerID answers ID (RFC 2971 §3.1): the server's name and version; the
// client's own ID is logged, which helps tell clients' faults apart.
func (s *session) answerID(a *wire.ID) error {
	if !a.Nil {
		args := make([]any, 0, 2*len(a.Fields))
		for _, f := range a.Fields {
			if f.HasValue {
				args = append(args, strings.ToLower(f.Key), f.Value)
			}
		}
		s.log.Debug("client id", args...)
	}
	s.w.Raw(`* ID ("name" "pushmail" "version" `).String(Version).Raw(")").CRLF()
	return nil
}

// enable answers ENABLE (RFC 5161): IMAP4rev2 (RFC 9051 §6.3.1) and
// UTF8=ACCEPT (RFC 6855 §3), which make mailbox names UTF-8, CONDSTORE
// and QRESYNC (RFC 7162 §3.1, §3.2.3) are the extensions it can turn on.
// ENABLED lists those this command turned on.
func (s *session) enable(a *wire.Enable) error {
	var enabled []string
	for _, c := range a.Caps {
		switch c {
		case "CONDSTORE":
			if !s.condstore {
				enabled = append(enabled, "CONDSTORE")
			}
			s.enableCondStore()
		case "QRESYNC":
			if !s.qresync {
				enabled = append(enabled, "QRESYNC")
				s.enableQResync()
			}
		case "IMAP4REV2":
			if !s.rev2 {
				s.rev2 = true
				enabled = append(enabled, "IMAP4rev2")
				if s.sel != nil {
					// RFC 9051 has no \Recent: from now on the
					// session shows none and claims none.
					s.sel.recent = recentState{}
				}
			}
		case "UTF8=ACCEPT":
			if !s.utf8 {
				s.utf8 = true
				enabled = append(enabled, "UTF8=ACCEPT")
			}
		}
	}
	utf8 := s.rev2 || s.utf8
	s.p.SetUTF8(utf8)
	s.w.UTF8 = utf8
	s.w.Raw("* ENABLED")
	for _, c := range enabled {
		s.w.SP().Raw(c)
	}
	s.w.CRLF()
	return nil
}

// authenticate runs AUTHENTICATE PLAIN (RFC 9051 §6.2.2, RFC 4616), with
// SASL-IR's initial response (RFC 4959).
func (s *session) authenticate(a *wire.Authenticate) error {
	if a.Mechanism != "PLAIN" {
		return errSASLMechanism
	}
	if !s.authAllowed() {
		return errPrivacyRequired
	}
	resp := a.Initial
	if resp == nil {
		// RFC 9051 §6.2.2: an empty challenge.
		s.w.Raw("+ ").CRLF()
		if err := s.flush(); err != nil {
			return err
		}
		r, canceled, err := s.p.ReadSASL()
		if err != nil {
			var pe *wire.Error
			if errors.As(err, &pe) && !pe.Fatal {
				return errBadSASLResponse
			}
			return err
		}
		if canceled {
			// RFC 9051 §6.2.2: "*" cancels; the reply is BAD.
			return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "AUTHENTICATE cancelled"}
		}
		resp = r
	}
	// RFC 4616 §2: [authzid] NUL authcid NUL passwd.
	parts := strings.Split(string(resp), "\x00")
	if len(parts) != 3 || parts[1] == "" {
		return errBadSASLResponse
	}
	if parts[0] != "" && parts[0] != parts[1] {
		return errSASLIdentity
	}
	return s.Login(parts[1], parts[2])
}

// idle pushes changes until the client sends DONE (RFC 2177, RFC 9051
// §6.3.13). With Options.Hibernate it may return errParked: the session
// sleeps without a goroutine until something happens (hibernate.go).
// Otherwise it waits in idleWait. The caller holds wmu.
func (s *session) idle(tag string) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	// IDLE watches NOTIFY's subscription itself, awake (idleWait) or
	// parked (hibernate.go); finish starts the watch goroutine again.
	s.idling = true
	if s.notif != nil {
		s.notif.stopWatch()
	}
	s.w.Continue("idling")
	// This update covers what Ready may hold from before: a session that
	// hibernates would otherwise wake at once for it.
	s.drainReady()
	if err := s.update(updates{s}, true); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.idleUntil = time.Now().Add(s.srv.opts.IdleTimeout)
	if err := s.nc.SetReadDeadline(s.idleUntil); err != nil {
		return err
	}
	s.srv.opts.Metrics.idleStarted()
	if s.hibernate() {
		return errParked
	}
	defer s.srv.opts.Metrics.idleEnded()
	return s.idleWait()
}

// idleWait waits in IDLE until DONE. It sleeps on one select: the
// subscription's wake-up, the line that ends IDLE and the session's
// context (Shutdown); it never polls the store. The caller holds wmu;
// idleWait lets go of it while it waits, so that Shutdown's BYE can be
// written.
func (s *session) idleWait() error {
	// The line is read on a goroutine of its own, which ends when it has
	// one or the connection fails (idle waits for it before returning).
	done := make(chan error, 1)
	go func() { done <- s.p.ReadDone() }()

	var ready, notified <-chan struct{}
	if s.sel != nil {
		ready = s.sel.sub.Ready()
	}
	if s.notif != nil {
		// NOTIFY's events wake IDLE as the selected mailbox's do
		// (RFC 5465 §1): the same select, no polling.
		notified = s.notif.sub.Ready()
	}
	s.wmu.Unlock()
	defer s.wmu.Lock()
	// push sends what woke the IDLE; it reports whether IDLE is over.
	push := func() (bool, error) {
		s.wmu.Lock()
		err := s.update(updates{s}, true)
		if err == nil {
			err = s.flush()
		}
		byed := s.byed
		if s.notif == nil {
			notified = nil // NOTIFICATIONOVERFLOW turned it off
		}
		s.wmu.Unlock()
		if err != nil || byed {
			// Ends the reader, if the BYE has not already.
			if cerr := s.raw.Close(); cerr != nil && !byed {
				s.log.Debug("close", "err", cerr)
			}
			<-done
			return true, err
		}
		return false, nil
	}
	for {
		select {
		case <-ready:
			if over, err := push(); over {
				return err
			}
		case <-notified:
			if over, err := push(); over {
				return err
			}
		case err := <-done:
			if err != nil {
				var pe *wire.Error
				if errors.As(err, &pe) {
					if !pe.Fatal {
						return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Expected DONE"}
					}
					// A line announcing a literal: its data must not
					// be read as commands.
					s.wmu.Lock()
					s.byeLocked("Protocol error: " + pe.Msg)
					s.wmu.Unlock()
					return nil
				}
				s.wmu.Lock()
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// RFC 9051 §5.4: the autologout timer ran out.
					s.byeLocked("Autologout; idle for too long")
				} else {
					s.byed = true // the connection failed: nothing to say
				}
				s.wmu.Unlock()
				return nil
			}
			return nil
		case <-s.ctx.Done():
			// Shutdown or the login timer: its BYE closes the connection,
			// which ends the reader.
			<-done
			s.wmu.Lock()
			s.byed = true
			s.wmu.Unlock()
			return nil
		}
	}
}

// close answers CLOSE: EXPUNGE without responses, then UNSELECT (RFC 9051
// §6.4.1); nothing is removed from a mailbox opened with EXAMINE.
func (s *session) close() error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if !sel.readOnly {
		if _, err := s.expunge(mailstore.AllUIDs()); err != nil {
			return err
		}
	}
	s.unselect()
	return nil
}

// updates writes the view's unsolicited responses (view.go's updater).
type updates struct{ s *session }

func (u updates) WriteExpunge(seq uint32) error {
	u.s.w.Raw("* ").Number(uint64(seq)).Raw(" EXPUNGE").CRLF()
	return u.s.w.Err()
}

func (u updates) WriteNumMessages(n uint32) error {
	u.s.w.Raw("* ").Number(uint64(n)).Raw(" EXISTS").CRLF()
	return u.s.w.Err()
}

func (u updates) Flush() error { return u.s.flush() }

func (u updates) WriteRecent(n uint32) error {
	u.s.w.Raw("* ").Number(uint64(n)).Raw(" RECENT").CRLF()
	return u.s.w.Err()
}

func (u updates) WriteMessageFlags(seq uint32, uid mailstore.UID, flags []string, modseq uint64) error {
	u.s.announceKeywords(flags)
	w := u.s.w
	w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (UID ").Number(uint64(uid)).Raw(" FLAGS ")
	u.s.writeMessageFlags(uid, flags)
	u.s.writeModSeq(modseq)
	w.Raw(")").CRLF()
	return w.Err()
}
