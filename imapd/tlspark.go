package imapd

import (
	"context"
	"crypto/tls"
	"io"
	"net"
)

// TLS sessions hibernate too (issue 15), keeping their tls.Conn: the
// parked socket must then show all the input there is, as it does for a
// plaintext session with an empty reader. crypto/tls holds input in two
// places the socket no longer shows:
//   - decrypted bytes not read yet (tls.Conn's input): Read copies at
//     most len(p) of them, so a Read that returned fewer than len(p)
//     bytes, or an error, left none (tlsInput tracks it);
//   - raw bytes read from the socket and not yet processed (rawInput):
//     readFromUntil reads as much as the socket gives, which may be
//     records past the one it needs. Under the tls.Conn, recordConn hands
//     it at most the rest of the current record per Read, keeping the
//     bytes past the record's end itself; so once tls.Conn has processed
//     the record (Read returns only then, every record up to one with
//     application data processed: TLS 1.3's post-handshake messages such
//     as NewSessionTicket or KeyUpdate included, RFC 8446 §4.6),
//     rawInput is empty, and recordConn knows whether a record is cut
//     short or it keeps bytes.
// A TLS session parks only when both say nothing is held.
//
// A parked TLS session wakes for every event: a direct push
// (pushdirect.go) would have to encrypt on a fan-out worker through
// tls.Conn.Write, whose failed or short write breaks the connection for
// good (crypto/tls makes every write error permanent), so it cannot be
// a non-blocking write that hands the rest to the session.

// recordConn is the connection under a server's tls.Conn: it returns at
// most one TLS record's bytes per Read (RFC 8446 §5.1: a 5-byte header
// whose last two bytes are the length of the fragment that follows), and
// keeps what the socket gave past the record's end for the next Read.
// Only the tls.Conn's reader uses it (under tls.Conn's input lock).
type recordConn struct {
	net.Conn
	hn   int    // bytes of the current record's header read so far
	left int    // bytes of the current record's fragment still to come
	more []byte // bytes read past the current record's end, or pieces
	// In the clear handshake (below), reading: more holds part of the
	// record being read whole, nothing to hand out yet. sealed is set at
	// the first record of another type. (No more fields: the struct
	// stays 64 bytes, a parked TLS session keeps it.)
	reading, sealed bool
}

// A parked TLS session keeps its tls.Conn, and with it two buffers
// crypto/tls never shrinks: the raw input buffer, which it grows to
// hold a whole record plus bytes.MinRead (512) bytes, and the handshake
// buffer, grown to hold a whole handshake message. The largest record
// and message most sessions ever get are the ClientHello's (about 1.5
// KB with the X25519MLKEM768 key share, more with some clients), so that
// each parked session holds about 2 KB of raw input buffer and 1.5 KB
// of handshake buffer, empty.
//
// So recordConn hands the client's first handshake records, those in
// the clear before its first record of another type (ChangeCipherSpec,
// or TLS 1.3's encrypted records), to tls.Conn cut into smaller
// records: RFC 8446 §5.1 and RFC 5246 §6.2.1 let a handshake message
// span several records, and the handshake hashes the messages, not the
// records, so the handshake is the same. Each piece is at most
// clearPieceMax bytes, so that the raw input buffer's first size (a
// header and 512 bytes) holds any of them and never grows for the
// handshake. The pieces' sizes also spare the handshake buffer, which
// doubles as it grows: the first piece is the record's size halved
// until it fits, and the next ones end where the data doubles (a 1,500
// byte record goes as 375, 375, 512 and 238 bytes), so that the buffer
// ends about the record's size, not up to twice it. Records after
// the first of another type, encrypted in TLS 1.2 too, pass as they
// come. Heap per parked TLS session: see BENCHMARKS.md (2026-12-06).
const clearPieceMax = 512

// Record types (RFC 8446 §5.1).
const recordTypeHandshake = 22

// maxPlaintext is the largest fragment a record in the clear may have
// (RFC 8446 §5.1: 2^14 bytes); a larger one is passed as it comes, for
// tls.Conn to refuse.
const maxPlaintext = 1 << 14

// recordHeaderLen is a TLS record header's length (RFC 8446 §5.1,
// RFC 5246 §6.2.1).
const recordHeaderLen = 5

// Read returns the next bytes of the stream, none past the end of the
// current record.
func (c *recordConn) Read(p []byte) (int, error) {
	if !c.sealed && (c.reading || len(c.more) == 0 && c.hn == 0) {
		// At a record's start in the clear handshake: the next record
		// whole, cut into pieces into more.
		if err := c.readClear(); err != nil {
			return 0, err
		}
	}
	if len(c.more) > 0 {
		k := c.within(c.more[:min(len(p), len(c.more))])
		copy(p, c.more[:k])
		c.more = c.more[k:]
		if len(c.more) == 0 {
			c.more = nil // rare: not kept for the next time
		}
		return k, nil
	}
	n, err := c.Conn.Read(p)
	k := c.within(p[:n])
	if k < n {
		c.more = append([]byte(nil), p[k:n]...)
	}
	return k, err
}

// within returns how many of b's bytes belong to the current record,
// and takes them as read.
func (c *recordConn) within(b []byte) int {
	i := 0
	for i < len(b) {
		if c.hn < recordHeaderLen {
			// The header's last two bytes are the fragment's length.
			switch c.hn {
			case 3:
				c.left = int(b[i]) << 8
			case 4:
				c.left |= int(b[i])
			}
			c.hn++
			i++
			if c.hn == recordHeaderLen {
				if c.left == 0 {
					c.hn = 0
					return i
				}
			}
			continue
		}
		take := min(c.left, len(b)-i)
		i += take
		c.left -= take
		if c.left == 0 {
			c.hn = 0
			return i
		}
	}
	return i
}

// holdsNothing reports whether every byte read from the socket has been
// handed to tls.Conn as whole records.
func (c *recordConn) holdsNothing() bool {
	return c.hn == 0 && c.left == 0 && len(c.more) == 0
}

// readClear reads the next record in the clear handshake whole, no byte
// past its end, and leaves it in more: a handshake record cut into
// pieces, any other as it came (the clear handshake ends with it).
// Bytes read before an error are kept in more (reading) for the next
// call.
func (c *recordConn) readClear() error {
	if !c.reading {
		c.reading = true
		c.more = make([]byte, 0, recordHeaderLen)
	}
	need := recordHeaderLen
	for {
		if len(c.more) >= recordHeaderLen {
			n := int(c.more[3])<<8 | int(c.more[4])
			if c.more[0] != recordTypeHandshake || n == 0 || n > maxPlaintext {
				// Not one to cut: its header goes first, the rest as
				// it comes (tls.Conn may refuse it by its header).
				c.reading, c.sealed = false, true
				return nil
			}
			need = recordHeaderLen + n
		}
		if len(c.more) == need {
			break
		}
		if cap(c.more) < need {
			c.more = append(make([]byte, 0, need), c.more...)
		}
		n, err := c.Conn.Read(c.more[len(c.more):need])
		c.more = c.more[:len(c.more)+n]
		if err != nil && len(c.more) < need {
			return err
		}
	}
	c.reading = false
	c.more = cutHandshakeRecord(c.more)
	return nil
}

// cutHandshakeRecord returns rec, a whole handshake record, as records
// of at most clearPieceMax bytes of its fragment each (see recordConn):
// the first piece is the fragment's size halved until it fits, and the
// pieces after it end where the bytes so far double, until the end.
func cutHandshakeRecord(rec []byte) []byte {
	hdr, frag := rec[:recordHeaderLen], rec[recordHeaderLen:]
	if len(frag) <= clearPieceMax {
		return rec
	}
	first := len(frag)
	for first > clearPieceMax {
		first = (first + 1) / 2
	}
	out := make([]byte, 0, len(frag)+recordHeaderLen*(len(frag)/clearPieceMax+8))
	next := first // where the current doubling ends
	for i := 0; i < len(frag); {
		if i == next {
			next *= 2
		}
		k := min(clearPieceMax, next-i, len(frag)-i)
		out = append(out, hdr[0], hdr[1], hdr[2], byte(k>>8), byte(k))
		out = append(out, frag[i:i+k]...)
		i += k
	}
	return out
}

// newTLSServer is tls.Server over a recordConn.
func newTLSServer(nc net.Conn, config *tls.Config) *tls.Conn {
	return tls.Server(&recordConn{Conn: nc}, config)
}

// handshake runs tc's handshake, which ends early, its connection
// closed, when the session is cancelled (cancel) or the Server shuts
// down. Its context is not the session's but one of the Server's: on
// the session's, crypto/tls would hang a child context and an
// AfterFunc, which leave it a children map and a done channel (about
// 360 bytes) for the rest of the session's life, parked or not.
func (s *session) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithCancel(s.srv.baseCtx)
	defer cancel()
	s.handshakeCancel.Store(&cancel)
	defer s.handshakeCancel.Store(nil)
	if s.ctx.Err() != nil {
		cancel() // a cancel before the Store did not see it; one after does
	}
	return tc.HandshakeContext(ctx)
}

// tlsInput is what the session's reader reads when the session has TLS:
// the tls.Conn, remembering whether its last Read left decrypted bytes.
type tlsInput struct {
	c       *tls.Conn
	drained bool // the last Read left no decrypted bytes in c
}

// Read reads from the tls.Conn.
func (t *tlsInput) Read(p []byte) (int, error) {
	n, err := t.c.Read(p)
	// tls.Conn.Read fails only with no decrypted input left, and copies
	// min(len(p), what it has).
	t.drained = n < len(p) || err != nil
	return n, err
}

// input returns what the session's reader reads: s.nc, or, over TLS,
// s.tin on it.
func (s *session) input() io.Reader {
	if tc, ok := s.nc.(*tls.Conn); ok {
		if s.tin.c != tc {
			s.tin = tlsInput{c: tc}
		}
		return &s.tin
	}
	return s.nc
}

// tlsHoldsNothing reports whether the session's tls.Conn, if it has one,
// holds no input the socket no longer shows, nor has it under it.
func (s *session) tlsHoldsNothing() bool {
	tc, ok := s.nc.(*tls.Conn)
	if !ok {
		return true
	}
	rc, ok := tc.NetConn().(*recordConn)
	return ok && s.tin.c == tc && s.tin.drained && rc.holdsNothing()
}
