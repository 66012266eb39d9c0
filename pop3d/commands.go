package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"strings"
)

// handler runs one command with the rest of its line (after the keyword
// and one space). It writes its positive reply itself; an error it
// returns is written as -ERR (see reply).
type handler func(s *session, arg string) error

// command is one POP3 command and the states it is valid in.
type command struct {
	run    handler
	states []state
}

var (
	authorization = []state{stateAuthorization}
	transaction   = []state{stateTransaction}
	anyState      = []state{stateAuthorization, stateTransaction}
)

// commands are the commands the server knows, by upper-case keyword
// (RFC 1939 §3: keywords are case-insensitive). APOP is not offered.
var commands = map[string]command{
	"CAPA": {(*session).capa, anyState},      // RFC 2449 §5
	"QUIT": {(*session).quit, anyState},      // RFC 1939 §5, §6
	"STLS": {(*session).stls, authorization}, // RFC 2595 §4
	"USER": {(*session).userCmd, authorization},
	"PASS": {(*session).pass, authorization},
	"AUTH": {(*session).auth, authorization}, // RFC 5034
	"STAT": {(*session).stat, transaction},
	"LIST": {(*session).list, transaction},
	"UIDL": {(*session).uidl, transaction},
	"RETR": {(*session).retr, transaction},
	"TOP":  {(*session).top, transaction},
	"DELE": {(*session).dele, transaction},
	"RSET": {(*session).rset, transaction},
	// RFC 1939 §5: NOOP is a TRANSACTION state command.
	"NOOP": {(*session).noop, transaction},
}

// execute runs one command line and writes its reply; false ends the
// session.
func (s *session) execute(line string) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.byed {
		return false
	}
	keyword, arg, _ := strings.Cut(line, " ")
	keyword = strings.ToUpper(keyword)
	cmd, known := commands[keyword]
	var err error
	switch {
	case !known && s.state == stateAuthorization && looksLikeOtherProtocol(keyword):
		s.log.Debug("not a POP3 client", "command", keyword)
		s.byeLocked("", "This is a POP3 server")
		return false
	case !known:
		err = errUnknownCommand
	case !inState(cmd.states, s.state):
		err = errWrongState
	default:
		err = cmd.run(s, arg)
	}
	if err != nil {
		e := s.reply(err)
		if e == errUnknownCommand || e == errWrongState || e == errSyntax {
			s.log.Debug("invalid command", "command", keyword, "state", s.state, "err", e.Text)
			s.bad++
			limit := maxBadCommands
			if s.state == stateTransaction {
				limit *= 10
			}
			if s.bad >= limit {
				s.byeLocked("", "Too many invalid commands")
				return false
			}
		} else {
			s.bad = 0
		}
		s.writeErr(e)
	} else {
		s.bad = 0
	}
	if s.byed {
		return false
	}
	if s.quitting || !s.pendingCommand() {
		if err := s.bw.Flush(); err != nil {
			s.log.Debug("write", "err", err)
			return false
		}
	}
	return !s.quitting
}

func inState(states []state, st state) bool {
	for _, x := range states {
		if x == st {
			return true
		}
	}
	return false
}

// capa lists the capabilities of the current state (RFC 2449 §5), one
// per line.
func (s *session) capa(arg string) error {
	if arg != "" {
		return errSyntax
	}
	s.ok("Capability list follows")
	s.line("TOP")            // RFC 2449 §6.1
	s.line("UIDL")           // RFC 2449 §6.7
	s.line("RESP-CODES")     // RFC 2449 §6.4
	s.line("AUTH-RESP-CODE") // RFC 3206 §6
	s.line("PIPELINING")     // RFC 2449 §6.6
	if s.state == stateAuthorization {
		if s.authAllowed() {
			// RFC 2449 §6.3, §6.8; RFC 2595 §4: left out while a
			// password would cross the link in cleartext.
			s.line("USER")
			s.line("SASL PLAIN")
		}
		if s.srv.opts.TLSConfig != nil && !isTLS(s.nc) {
			s.line("STLS") // RFC 2595 §4
		}
	}
	s.end()
	return nil
}

// noop does nothing (RFC 1939 §5).
func (s *session) noop(arg string) error {
	if arg != "" {
		return errSyntax
	}
	s.ok("")
	return nil
}

// stls starts TLS on the connection (RFC 2595 §4). The server stays in
// the AUTHORIZATION state and forgets USER's argument.
func (s *session) stls(arg string) error {
	if arg != "" {
		return errSyntax
	}
	if isTLS(s.nc) {
		return errTLSActive
	}
	if s.srv.opts.TLSConfig == nil {
		return errNoTLS
	}
	if s.br.Buffered() > 0 {
		// Bytes sent after STLS before the handshake would be read as
		// if they came over TLS (CVE-2011-0411, RFC 2595 §4's
		// "before the TLS negotiation"): refuse and end the session.
		s.log.Info("data pipelined after STLS: disconnecting")
		s.byeLocked("", "No data may follow STLS")
		return nil
	}
	s.ok("Begin TLS negotiation")
	if err := s.bw.Flush(); err != nil {
		s.byed = true
		return nil
	}
	tc := tls.Server(s.raw, s.srv.opts.TLSConfig)
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.opts.CommandTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Debug("STLS handshake failed", "err", err)
		s.byed = true // nothing more can be said on this connection
		if err := s.raw.Close(); err != nil {
			s.log.Debug("close", "err", err)
		}
		return nil
	}
	s.nc = tc
	s.br = bufio.NewReaderSize(tc, maxLineLength)
	s.bw = bufio.NewWriterSize(tc, writeBufSize)
	s.userArg = ""
	return nil
}
