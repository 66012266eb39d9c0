package imapd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
	"pushmail/notify"
)

// fuzzDeadline bounds one fuzz input's whole conversation: longer means
// the server hung (it gets EOF after the input, so it has nothing to wait
// for).
const fuzzDeadline = 10 * time.Second

// FuzzIMAPSession feeds arbitrary client bytes to a real Server on a
// loopback connection, then closes the client's side. When the first
// argument is true the harness first logs in as alice, so that mutations
// spend their time past LOGIN; otherwise the input starts at the greeting.
// It asserts:
//   - no panic (imapserver would recover it and log it), no Error-level
//     log (imapd writes one for each NO [SERVERBUG] it sends), and no
//     plain error from a Session method, which imapserver would answer
//     NO [SERVERBUG] past imapd's one error mapping (go-imap's own
//     decoder errors excepted: see goIMAPDecoderErrors);
//   - no hang: the server closes the connection before fuzzDeadline;
//   - every response line, literals skipped, is tagged ("tag OK|NO|BAD"),
//     untagged ("* …") or a continuation request ("+ …"), RFC 9051 §2.2.2;
//   - one user never sees another's mailboxes (DESIGN.md §5): a second
//     user holds a random secret in a mailbox name, a subject and a body,
//     and the secret never appears in the output, and alice's commands
//     never change that user's mailboxes;
//   - no command hidden in a literal runs (RFC 9051 §4.3, RFC 7888 §4):
//     after each input, a mailbox named injectedMarker exists only if the
//     input names it outside non-synchronizing literal data (see
//     injectedOnlyInLiterals); the seeds hide "CREATE FuzzInjected" in
//     literals the server refuses or never reads;
//   - the server still greets a fresh connection afterwards.
//
// Failed logins are delayed by microseconds and never refused here
// (Options.AuthLimiter): throttling is tested elsewhere, and its real
// delays would make most inputs that mutate a LOGIN look like a hang.
//
// The store and server are opened once per fuzz process and shared by the
// inputs, as a t.TempDir per input would dominate the run time; so alice's
// mailboxes change from input to input.
func FuzzIMAPSession(f *testing.F) {
	for _, s := range imapSeeds {
		f.Add(true, []byte(s))
	}
	for _, s := range loginSeeds {
		f.Add(false, []byte(s))
	}
	fz := newFuzzIMAP(f)
	f.Fuzz(func(t *testing.T, login bool, script []byte) {
		if login {
			script = append(bytes.Clone(fz.login), script...)
		}
		fz.run(t, script)
	})
}

// fuzzMessage is a multipart message with a nested message/rfc822 part, so
// that FETCH sections have something to address.
const fuzzMessage = "From: Bob <bob@example.org>\r\nTo: alice@localhost\r\nSubject: =?utf-8?q?fuzz_=C3=BC?=\r\n" +
	"Date: Mon, 2 Jan 2006 15:04:05 +0000\r\nMessage-ID: <fuzz@example.org>\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n\r\nHall=C3=B6\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n" +
	"Subject: inner\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n"

// imapSeeds are command sequences after LOGIN, real and broken.
var imapSeeds = []string{
	"a1 SELECT INBOX\r\na2 FETCH 1:* (FLAGS UID ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)\r\n" +
		"a3 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY[1.MIME] BODY[2.HEADER] BODY[]<0.10> BINARY.PEEK[1] BINARY.SIZE[1])\r\n" +
		"a4 UID FETCH 1:* (BODY[TEXT] BODY[2.1] BODY[3] BODY[HEADER.FIELDS.NOT (DATE)] RFC822 RFC822.HEADER RFC822.TEXT)\r\na5 LOGOUT\r\n",
	"a1 APPEND INBOX (\\Seen $Label) {" + strconv.Itoa(len(fuzzMessage)) + "}\r\n" + fuzzMessage + "\r\n" +
		"a2 APPEND Archive {5+}\r\nHello\r\na3 APPEND INBOX \"02-Jan-2006 15:04:05 +0000\" {12}\r\nSubject: x\r\n\r\n" +
		"a4 APPEND Nowhere {3}\r\nabc\r\na5 APPEND INBOX {0}\r\n\r\na6 APPEND INBOX {99999999999}\r\n",
	// MULTIAPPEND (RFC 3502), whole and with a refused third message.
	"a1 APPEND INBOX {5+}\r\nHello (\\Seen) \"02-Jan-2006 15:04:05 +0000\" {2+}\r\nhi ~{3+}\r\nx\x00y\r\n" +
		"a2 APPEND INBOX {1+}\r\na {1+}\r\nb {99999999999+}\r\nCREATE FuzzInjected\r\n",
	// COMPRESS DEFLATE (RFC 4978), then raw DEFLATE with a sync flush:
	// "b SELECT INBOX", a FETCH, a MULTIAPPEND, IDLE and DONE, a second
	// COMPRESS and LOGOUT.
	"a COMPRESS DEFLATE\r\n" +
		"\x4a\x52\x08\x76\xf5\x71\x75\x0e\x51\xf0\xf4\x73\xf2\x8f\xe0\xe5\x4a\x56\x70\x73\x0d\x71\xf6\x50\x30\xb4\xd2\x52\xd0\x70\xf3\x71\x74\x0f\x56\x70\xf2\x77\x89\xd4\x0b\x70\x75\xf5\x8e\x8e\xd5\xe4\xe5\x4a\x51\x70\x0c\x08\x70\xf5\x73\x81\x68\x50\xa8\x36\xd5\xae\xe5\xe5\xca\x48\xcd\xc9\xc9\x57\xa8\x36\x02\xb3\x33\x79\xb9\x52\x15\x3c\x5d\x7c\x5c\x79\xb9\x5c\xfc\xfd\x80\x64\x9a\x82\xb3\xbf\x6f\x40\x90\x6b\x70\xb0\x82\x8b\x2b\xd0\xcc\x10\xa0\x58\xba\x82\x8f\xbf\xbb\x7f\x68\x08\x2f\x17\x00\x00\x00\xff\xff",
	"a1 SELECT INBOX\r\na2 SEARCH OR (FROM bob NOT SEEN) (OR SUBJECT \"x\" LARGER 10) UID 1:*\r\n" +
		"a3 UID SEARCH RETURN (MIN MAX COUNT ALL) NOT (OR DELETED (NOT ANSWERED)) SINCE 1-Jan-2000 BODY hello\r\n" +
		"a4 SEARCH CHARSET UTF-8 TEXT {2+}\r\n\xc3\xbc\r\na5 SEARCH RETURN (SAVE) 1:2\r\na6 FETCH $ (UID)\r\n" +
		"a7 SEARCH NOT NOT NOT OR OR OR ALL ALL ALL ALL\r\na8 SEARCH HEADER Message-ID fuzz KEYWORD $Label 2,4:*\r\n",
	"a1 SELECT INBOX\r\na2 SORT (REVERSE ARRIVAL SUBJECT FROM TO CC SIZE DATE) UTF-8 ALL\r\na3 UID SORT RETURN (MIN MAX ALL COUNT SAVE) (DISPLAYTO) US-ASCII 1:*\r\n" +
		"a4 FETCH $ (UID)\r\na5 THREAD REFERENCES UTF-8 ALL\r\na6 UID THREAD ORDEREDSUBJECT UTF-8 NOT DELETED\r\na7 THREAD X UTF-8 ALL\r\n",
	// PARTIAL (RFC 9394): pages from both ends, with SAVE, in SORT and UID
	// FETCH, and the refused forms.
	"a1 SELECT INBOX\r\na2 UID SEARCH RETURN (MIN MAX COUNT SAVE PARTIAL -1:-2) ALL\r\na3 UID FETCH $ (UID) (PARTIAL 2:1)\r\n" +
		"a4 SORT RETURN (PARTIAL 1:4294967295) (SUBJECT) UTF-8 ALL\r\na5 FETCH 1:* (UID) (PARTIAL 1:2)\r\na6 SEARCH RETURN (ALL PARTIAL 1:2) ALL\r\n",
	"a1 SELECT INBOX\r\na2 STORE 1:* +FLAGS (\\Deleted $Label)\r\na3 UID STORE 1:* -FLAGS.SILENT (\\Deleted)\r\n" +
		"a4 STORE 2 FLAGS (\\Seen \\Flagged)\r\na5 STORE 3 +FLAGS.SILENT (\\Deleted)\r\na6 EXPUNGE\r\na7 UID EXPUNGE 1:3\r\n" +
		"a8 STORE 99 +FLAGS (x)\r\na9 STORE 1 +FLAGS (\\Recent \\Bogus (nested))\r\n",
	"a1 SELECT INBOX\r\na2 IDLE\r\nDONE\r\na3 NOOP\r\na4 IDLE\r\nnot done\r\na5 IDLE\r\n",
	// NOTIFY (RFC 5465): every filter and event, STATUS, the refused
	// forms, changes it reports (to other mailboxes, in IDLE), NONE.
	"a1 SELECT INBOX\r\na2 NOTIFY SET STATUS (selected (MessageNew (UID FLAGS BODY.PEEK[HEADER.FIELDS (From)] BODY[1]) MessageExpunge FlagChange)) " +
		"(subtree (Archive \"Lists\") (MessageNew MessageExpunge FlagChange MailboxName)) (mailboxes Junk NONE) (subscribed (SubscriptionChange)) " +
		"(inboxes (MessageNew MessageExpunge)) (personal (MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange))\r\n" +
		"a3 COPY 1:* Archive\r\na4 CREATE Lists/x\r\na5 RENAME Lists/x Lists/y\r\na6 SUBSCRIBE Lists/y\r\na7 SETMETADATA \"\" (/private/x \"1\")\r\n" +
		"a8 IDLE\r\nDONE\r\na9 DELETE Lists/y\r\na10 NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge FlagChange))\r\n" +
		"a11 NOTIFY SET (personal (MessageNew AnnotationChange))\r\na12 NOTIFY SET (selected (MailboxName))\r\na13 NOTIFY SET (selected MessageNew)\r\n" +
		"a14 NOTIFY SET (subtree () (MessageNew MessageExpunge))\r\na15 NOTIFY NONE\r\na16 NOTIFY SET (personal (MessageNew (RFC822) MessageExpunge))\r\n",
	"a1 ENABLE UTF8=ACCEPT IMAP4rev2\r\na2 CREATE \"&AMk-t&AOk-\"\r\na3 CREATE \"Été/Sub/\"\r\na4 LIST \"\" \"*\"\r\n" +
		"a5 LIST (SPECIAL-USE SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (STATUS (MESSAGES UNSEEN SIZE) CHILDREN)\r\n" +
		"a6 RENAME \"&AMk-t&AOk-\" \"&Jjo-\"\r\na7 STATUS \"&Jjo-\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE)\r\n" +
		"a8 SUBSCRIBE \"&Jjo-\"\r\na9 LSUB \"\" *\r\na10 DELETE \"&Jjo-\"\r\na11 CREATE \"&bad-utf7\"\r\na12 CREATE Trash (USE (\\Trash))\r\n",
	// Reaching for the other user's mailboxes.
	"a1 SELECT \"bob@localhost/INBOX\"\r\na2 SELECT \"../bob@localhost\"\r\na3 LIST \"\" \"%\"\r\na4 LIST \"/\" \"*\"\r\n" +
		"a5 LIST \"bob@localhost\" \"*\"\r\na6 STATUS \"#shared/bob\" (MESSAGES)\r\na7 SELECT \"Other Users/bob/INBOX\"\r\n" +
		"a8 NAMESPACE\r\na9 LIST \"\" \"Private*\"\r\na10 RENAME INBOX \"../bob\"\r\na11 DELETE INBOX\r\n",
	"a1 SELECT INBOX\r\na2 COPY 1:2 Archive\r\na3 UID MOVE 1 Archive\r\na4 COPY 1 Nowhere\r\na5 MOVE 1:* \"Archive/2024\"\r\n" +
		"a6 EXAMINE Archive\r\na7 STORE 1 +FLAGS (\\Seen)\r\na8 CLOSE\r\na9 UNSELECT\r\na10 SELECT Archive\r\na11 UID COPY 1:* INBOX\r\n",
	"a1 CAPABILITY\r\na2 NOOP\r\na3 CHECK\r\na4 EXAMINE INBOX\r\na5 CLOSE\r\na6 STATUS INBOX (MESSAGES RECENT DELETED)\r\n" +
		"a7 LOGIN alice@localhost secret\r\na8 AUTHENTICATE PLAIN\r\na9 STARTTLS\r\na10 UNAUTHENTICATE\r\na11 ID NIL\r\n",
	"a1 FETCH (\r\na2 SELECT {999999999}\r\na3 SEARCH ((((((((((\r\na4 SELECT \"unterminated\r\na5 LIST \"\" \"\\\\\"\r\n" +
		"a6 FETCH 1:* (BODY[1.2.3.4.5.6.7.8.9.10.11.12.HEADER] BODY[0] BODY[HEADER]<4294967295.4294967295> BINARY[1.TEXT])\r\n" +
		"a7 SELECT INBOX\r\na8 FETCH 4294967295,0,*:1 (FLAGS)\r\na9 UID FETCH 0:4294967296 UID\r\n" +
		"a10 " + strings.Repeat("X", 60000) + "\r\n",
	// A bad tag ends the connection: nothing after it is read.
	"\x00\xff garbage\r\n* * *\r\n+\r\n\r\n",
	// Commands hidden in literals the server does not read: over the
	// append limit, over go-imap's 4096 bytes for other literals, after
	// a syntax error or an unknown command. None may run.
	"A APPEND INBOX {30000000+}\r\nc CREATE " + injectedMarker + "\r\nd NOOP\r\n",
	"A APPEND INBOX UTF8 (~{30000000+}\r\nx\r\nc CREATE " + injectedMarker + "\r\n)\r\n",
	"A APPEND {5000+}\r\nx\r\nc CREATE " + injectedMarker + "\r\n",
	"a1 SELECT INBOX\r\na2 SEARCH TEXT {5000+}\r\nx\r\nc CREATE " + injectedMarker + "\r\n",
	"A APPEND INBOX (\\Seen) notadate {100+}\r\nx\r\nc CREATE " + injectedMarker + "\r\n",
	"A FROB {100+}\r\nx\r\nc CREATE " + injectedMarker + "\r\n",
	"A LOGIN {40+}\r\nx\r\nc CREATE " + injectedMarker + "\r\nd NOOP\r\n",
	"A IDLE\r\nDONE {40+}\r\nx\r\nc CREATE " + injectedMarker + "\r\nd NOOP\r\n",
}

// injectedMarker is the mailbox name the seeds hide in literals.
const injectedMarker = "FuzzInjected"

// injectedOnlyInLiterals reports whether every mention of injectedMarker
// in script lies in the data of a non-synchronizing literal, past its
// first byte (a literal that starts with the name may be the name, or a
// name under it; any other mention can only run if the data is taken for
// commands). The framing is the client's: a line
// ending in "{n+}" (imapwire's [SP] [CR] LF after it) is followed by n
// bytes of data. After the first synchronizing literal the framing is
// unknown (the server may refuse it, and the client here sends its data
// anyway), so later mentions count as outside.
func injectedOnlyInLiterals(script []byte) bool {
	type span struct{ start, end int }
	var lits []span
	known := len(script) // framing is known before this offset
	for i := 0; i < len(script); {
		j := bytes.IndexByte(script[i:], '\n')
		if j < 0 {
			break
		}
		line := script[i : i+j+1]
		i += j + 1
		m := announceRE.FindSubmatch(line)
		if m == nil {
			continue
		}
		if len(m[2]) == 0 {
			known = i
			break
		}
		n, err := strconv.Atoi(string(m[1]))
		if err != nil || n > len(script)-i {
			n = len(script) - i
		}
		lits = append(lits, span{i, i + n})
		i += n
	}
	found := false
	for off := 0; ; {
		k := bytes.Index(script[off:], []byte(injectedMarker))
		if k < 0 {
			return found
		}
		k += off
		off = k + 1
		inside := false
		for _, l := range lits {
			if k > l.start && k+len(injectedMarker) <= l.end && k < known {
				inside = true
			}
		}
		if !inside {
			return false
		}
		found = true
	}
}

// announceRE matches a line that ends in a literal announcement.
var announceRE = regexp.MustCompile(`\{([0-9]+)(\+?)\} ?\r?\n$`)

// loginSeeds start at the greeting: logins right and wrong, as the other
// user too, SASL, STARTTLS.
var loginSeeds = []string{
	"a1 CAPABILITY\r\na2 LOGIN alice@localhost secret\r\na3 SELECT INBOX\r\na4 FETCH 1:* (ENVELOPE)\r\na5 LOGOUT\r\n",
	"a1 LOGIN bob@localhost secret\r\na2 LOGIN \"bob@localhost\" {6}\r\nsecret\r\na3 LOGIN {15+}\r\nalice@localhost \"\"\r\n" +
		"a4 LOGIN alice@localhost\r\na5 LOGIN ALICE@LOCALHOST secret\r\na6 SELECT INBOX\r\na7 LIST \"\" *\r\n",
	"a1 AUTHENTICATE PLAIN AGFsaWNlQGxvY2FsaG9zdABzZWNyZXQ=\r\na2 STATUS INBOX (MESSAGES)\r\n",
	"a1 AUTHENTICATE PLAIN\r\nAGJvYkBsb2NhbGhvc3QAc2VjcmV0\r\na2 AUTHENTICATE PLAIN\r\n*\r\na3 AUTHENTICATE PLAIN =\r\n" +
		"a4 AUTHENTICATE PLAIN !!!\r\na5 AUTHENTICATE CRAM-MD5\r\na6 AUTHENTICATE PLAIN Ym9iQGxvY2FsaG9zdABhbGljZUBsb2NhbGhvc3QAc2VjcmV0\r\n",
	"a1 STARTTLS\r\na2 NOOP\r\na3 ID (\"name\" \"fuzz\")\r\na4 SELECT INBOX\r\na5 ENABLE UTF8=ACCEPT\r\n",
}

// fuzzIMAP is the server and store shared by one fuzz process's inputs.
type fuzzIMAP struct {
	store *mailstore.Store
	addr  string
	logs  *fuzzLog
	login []byte // the harness's LOGIN command

	alice mailstore.UserID

	// secret is in the other user's mailbox name, subject and body.
	secret    []byte
	other     mailstore.UserID
	otherMbs  []string
	otherUIDs []mailstore.UID
}

func newFuzzIMAP(f *testing.F) *fuzzIMAP {
	f.Helper()
	ctx := context.Background()
	logs := &fuzzLog{}
	logger := slog.New(logs)
	store, err := mailstore.Open(ctx, filepath.Join(f.TempDir(), "mail.db"), mailstore.Options{
		PasswordCost: bcrypt.MinCost, Hub: notify.New(0), Logger: logger,
	})
	if err != nil {
		f.Fatalf("mailstore.Open() = %v", err)
	}
	fz := &fuzzIMAP{store: store, logs: logs, login: []byte("a0 LOGIN " + testUser + " " + testPassword + "\r\n")}

	// alice: a few messages and mailboxes for the inputs to work on.
	alice, err := store.AddUser(ctx, testUser, testPassword)
	if err != nil {
		f.Fatalf("AddUser() = %v", err)
	}
	fz.alice = alice.ID
	inbox, err := store.Resolve(ctx, testUser)
	if err != nil {
		f.Fatalf("Resolve() = %v", err)
	}
	for _, msg := range [][]byte{testMessage(1), []byte(fuzzMessage), testMessage(3)} {
		if _, err := store.Deliver(ctx, msg, []mailstore.Recipient{inbox}); err != nil {
			f.Fatalf("Deliver() = %v", err)
		}
	}
	for _, name := range []string{"Archive", "Archive/2024", "Été"} {
		if _, err := store.CreateMailbox(ctx, alice.ID, name, ""); err != nil && !errors.Is(err, mailstore.ErrMailboxExists) {
			f.Fatalf("CreateMailbox(%s) = %v", name, err)
		}
	}

	// The other user, with a password nobody knows.
	fz.secret = []byte(rand.Text())
	other, err := store.AddUser(ctx, "bob@localhost", rand.Text())
	if err != nil {
		f.Fatalf("AddUser(bob) = %v", err)
	}
	fz.other = other.ID
	if _, err := store.CreateMailbox(ctx, other.ID, "Private-"+string(fz.secret), ""); err != nil {
		f.Fatalf("CreateMailbox() = %v", err)
	}
	bobInbox, err := store.Resolve(ctx, "bob@localhost")
	if err != nil {
		f.Fatalf("Resolve(bob) = %v", err)
	}
	secretMsg := fmt.Appendf(nil, "From: carol@example.org\r\nTo: bob@localhost\r\nSubject: secret-%s\r\n\r\nThe secret is %s.\r\n", fz.secret, fz.secret)
	if _, err := store.Deliver(ctx, secretMsg, []mailstore.Recipient{bobInbox}); err != nil {
		f.Fatalf("Deliver(bob) = %v", err)
	}
	fz.otherMbs, fz.otherUIDs = fz.otherState(f)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatalf("Listen() = %v", err)
	}
	fz.addr = ln.Addr().String()
	srv := New(store, Options{
		Logger:      logger,
		AuthLimiter: authlimit.New(authlimit.Config{PerIP: 1 << 30, PerAccount: 1 << 30, Delay: time.Microsecond}),
		// Inputs run one after another, but the server may still be
		// closing the last connection when the next one arrives.
		MaxConnsPerIP: -1,
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	f.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, fuzzDeadline)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			f.Errorf("Shutdown() = %v", err)
		}
		if err := <-served; err != nil {
			f.Errorf("Serve() = %v, want nil after Shutdown", err)
		}
		if err := store.Close(); err != nil {
			f.Errorf("store.Close() = %v", err)
		}
		if bad := logs.take(); len(bad) > 0 {
			f.Errorf("server logged errors: %q", bad)
		}
	})
	return fz
}

// otherState returns the other user's mailbox names and INBOX UIDs.
func (fz *fuzzIMAP) otherState(t testing.TB) ([]string, []mailstore.UID) {
	t.Helper()
	ctx := context.Background()
	mbs, err := fz.store.Mailboxes(ctx, fz.other)
	if err != nil {
		t.Fatalf("Mailboxes(bob) = %v", err)
	}
	var names []string
	var uids []mailstore.UID
	for _, mb := range mbs {
		names = append(names, mb.Name)
		if mb.Name == "INBOX" {
			if uids, err = fz.store.UIDs(ctx, mb.ID); err != nil {
				t.Fatalf("UIDs(bob INBOX) = %v", err)
			}
		}
	}
	return names, uids
}

func (fz *fuzzIMAP) run(t *testing.T, script []byte) {
	out, readErr := converse(t, fz.addr, script)
	out = inflateAfterCompress(t, script, out)
	if bytes.Contains(out, fz.secret) {
		t.Fatalf("input %s: the other user's secret is in the output at byte %d:\n%s", abbrev(script), bytes.Index(out, fz.secret), out)
	}
	checkResponses(t, script, out, readErr)
	if bad := fz.logs.take(); len(bad) > 0 {
		t.Fatalf("input %s: server logged errors: %q", abbrev(script), bad)
	}
	fz.checkInjected(t, script)
	if mbs, uids := fz.otherState(t); !slices.Equal(mbs, fz.otherMbs) || !slices.Equal(uids, fz.otherUIDs) {
		t.Fatalf("input %s changed the other user's mailboxes: %q, INBOX UIDs %v; want %q, %v",
			abbrev(script), mbs, uids, fz.otherMbs, fz.otherUIDs)
	}
	fz.checkAlive(t)
}

// checkInjected fails if alice has a mailbox injectedMarker (or one under
// it) that script names only inside literal data, and removes it.
func (fz *fuzzIMAP) checkInjected(t *testing.T, script []byte) {
	t.Helper()
	ctx := context.Background()
	mbs, err := fz.store.Mailboxes(ctx, fz.alice)
	if err != nil {
		t.Fatalf("Mailboxes(alice) = %v", err)
	}
	var made []string
	for _, mb := range mbs {
		if mb.Name == injectedMarker || strings.HasPrefix(mb.Name, injectedMarker+"/") {
			made = append(made, mb.Name)
		}
	}
	if len(made) == 0 {
		return
	}
	if injectedOnlyInLiterals(script) {
		t.Fatalf("input %s: a command inside a literal ran: alice has %q", abbrev(script), made)
	}
	slices.Reverse(made) // children first
	for _, name := range made {
		if err := fz.store.DeleteMailbox(ctx, fz.alice, name); err != nil && !errors.Is(err, mailstore.ErrNoSuchMailbox) {
			t.Fatalf("DeleteMailbox(%s) = %v", name, err)
		}
	}
}

// converse writes script on a new connection to addr, closes the write
// side, and returns everything the server sent until it closed the
// connection. readErr is nil for a clean close, else the error that ended
// the read (a reset, after the server closed on unread input).
func converse(t *testing.T, addr string, script []byte) (out []byte, readErr error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(fuzzDeadline)); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// Write errors are expected: the server may close first.
		if _, err := nc.Write(script); err == nil {
			_ = nc.(*net.TCPConn).CloseWrite() // an error means the server is gone; the read sees it
		}
	}()
	out, readErr = io.ReadAll(nc)
	var ne net.Error
	if errors.As(readErr, &ne) && ne.Timeout() {
		t.Fatalf("server still holds the connection after %v (hang) on input %s; it sent %s", fuzzDeadline, abbrev(script), abbrev(out))
	}
	<-wrote
	return out, readErr
}

var (
	// literalRE ends a response line that a literal follows: "{n}", or
	// "~{n}" for BINARY (RFC 3516 §4.2).
	literalRE = regexp.MustCompile(`~?\{([0-9]+)\}$`)
	// taggedRE is a tagged status response (RFC 9051 §7.1). The tag is
	// the client's: go-imap (v2.0.0-beta.8) also takes tags that start
	// with "+" or "*", which RFC 9051 §9 excludes, and echoes them.
	taggedRE = regexp.MustCompile(`^[^ ]+ (OK|NO|BAD)( |$)`)
)

// checkResponses checks that out is a sequence of responses, the first of
// them the greeting. Literals in responses are skipped by their length.
func checkResponses(t *testing.T, script, out []byte, readErr error) {
	t.Helper()
	rest := out
	first := true
	for len(rest) > 0 {
		// One response: lines joined by the literals that end them.
		var resp []byte
		for {
			i := bytes.Index(rest, []byte("\r\n"))
			if i < 0 {
				if readErr == nil {
					t.Fatalf("input %s: response %q does not end in CRLF", abbrev(script), rest)
				}
				return // cut off by a reset
			}
			line := rest[:i]
			rest = rest[i+2:]
			resp = append(resp, line...)
			m := literalRE.FindSubmatch(line)
			if m == nil {
				break
			}
			n, err := strconv.Atoi(string(m[1]))
			if err != nil || n > len(rest) {
				if readErr == nil {
					t.Fatalf("input %s: literal {%s} longer than the rest of the output", abbrev(script), m[1])
				}
				return
			}
			rest = rest[n:]
		}
		s := string(resp)
		switch {
		case first && !strings.HasPrefix(s, "* OK "):
			t.Fatalf("greeting %q, want * OK", s)
		case strings.HasPrefix(s, "* "), s == "+", strings.HasPrefix(s, "+ "), taggedRE.MatchString(s):
		default:
			t.Fatalf("input %s: response %q is neither tagged, untagged nor a continuation request; all:\n%s", abbrev(script), s, abbrev(out))
		}
		first = false
	}
	if first && readErr == nil {
		t.Fatalf("input %s: server closed without a greeting", abbrev(script))
	}
}

// checkAlive checks that the server greets a new connection and answers
// LOGOUT.
func (fz *fuzzIMAP) checkAlive(t *testing.T) {
	t.Helper()
	out, err := converse(t, fz.addr, []byte("z LOGOUT\r\n"))
	if err != nil || !bytes.HasPrefix(out, []byte("* OK ")) || !bytes.HasSuffix(out, []byte("z OK LOGOUT completed\r\n")) {
		t.Fatalf("after the input, a new connection got %q, %v; want a greeting and LOGOUT completed", out, err)
	}
}

// fuzzLog is a slog.Handler that keeps what a fuzz input must never
// cause: Error records (imapd logs the cause of NO [SERVERBUG] there),
// panics, which imapserver recovers and logs at Warn, and plain errors
// that reached imapserver without imapd's mapping (errors.go).
type fuzzLog struct {
	mu  sync.Mutex
	bad []string
}

func (l *fuzzLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }

func (l *fuzzLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && !strings.Contains(r.Message, "panic") && !sessionError(r.Message) {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.bad = append(l.bad, b.String())
	l.mu.Unlock()
	return nil
}

// goIMAPDecoderErrors start the plain errors that go-imap (v2.0.0-beta.8)
// returns for some client errors before any Session method runs: a
// mailbox name that is not modified UTF-7 or not UTF-8, a sequence set
// with 0 or a number past 2^32-1, an over-long command or SASL response,
// an AUTHENTICATE initial response that is not base64, a client that
// hangs up mid-command or mid-AUTHENTICATE, and what imapserver wraps as
// "in <grammar rule>: …" (a bad APPEND date-time). imapserver answers them
// NO [SERVERBUG]; pushmail cannot map them.
var goIMAPDecoderErrors = []string{
	"utf7: ", "invalid UTF-8", "illegal base64 data", "SASL response too long", "imap: bad number set value",
	"imapwire: ", "unexpected EOF", "EOF", "read tcp ", "in ",
}

// sessionError reports whether msg is imapserver's log line for a plain
// error that a Session method returned ("handling X command: …"), which
// it answers NO [SERVERBUG]: an error that escaped imapd's one mapping.
func sessionError(msg string) bool {
	_, err, ok := strings.Cut(msg, " command: ")
	if !ok || !strings.HasPrefix(msg, "handling ") {
		return false
	}
	for _, p := range goIMAPDecoderErrors {
		if strings.HasPrefix(err, p) {
			return false
		}
	}
	return true
}

func (l *fuzzLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *fuzzLog) WithGroup(string) slog.Handler      { return l }

// take returns and forgets the records kept so far.
func (l *fuzzLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := l.bad
	l.bad = nil
	return bad
}

// abbrev quotes b for a failure message, cut to its first 500 bytes.
func abbrev(b []byte) string {
	if len(b) > 500 {
		return fmt.Sprintf("%q… (%d bytes)", b[:500], len(b))
	}
	return fmt.Sprintf("%q", b)
}
