package mailstore

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
)

// The operations the model tests apply, and the one decoder that turns
// bytes into them: the seeded generator of TestStoreModel produces bytes
// for it, and FuzzStoreModel hands it the fuzzer's.

// opKind is a store operation of the model test.
type opKind uint8

const (
	opDeliver opKind = iota
	opAppend
	opStoreFlags
	opCopy
	opMove
	opExpunge
	opCreate
	opRename
	opDelete
	opSubscribe
	opDeleteUser
	opAddUser
	opStoreIf // StoreFlagsUnchangedSince
)

var opKindNames = [...]string{
	opDeliver: "Deliver", opAppend: "Append", opStoreFlags: "StoreFlags", opCopy: "Copy", opMove: "Move",
	opExpunge: "Expunge", opCreate: "CreateMailbox", opRename: "RenameMailbox", opDelete: "DeleteMailbox",
	opSubscribe: "SetSubscribed", opDeleteUser: "DeleteUser", opAddUser: "AddUser",
	opStoreIf: "StoreFlagsUnchangedSince",
}

func (k opKind) String() string { return opKindNames[k] }

// opTable maps an op's kind byte (modulo its length) to a kind: its
// repetitions are the kinds' relative frequencies. AddUser is rare because
// it costs a bcrypt hash, even when it fails.
var opTable = []opKind{
	opDeliver, opDeliver, opDeliver, opDeliver,
	opAppend, opAppend, opAppend,
	opStoreFlags, opStoreFlags, opStoreFlags, opStoreFlags, opStoreFlags, opStoreFlags,
	opStoreIf, opStoreIf, opStoreIf,
	opCopy, opCopy, opMove, opMove,
	opExpunge, opExpunge, opExpunge, opExpunge, opExpunge,
	opCreate, opCreate, opRename, opRename, opDelete, opDelete,
	opSubscribe, opDeleteUser, opAddUser,
}

// modelUsers is the number of user slots a sequence plays with. Slot 0 is
// created before the first op; the others only by AddUser ops.
const modelUsers = 3

// modelNames are the mailbox names ops use: INBOX in two spellings,
// default mailboxes, hierarchies whose parents CREATE and RENAME make,
// names that usually do not exist, and one invalid name.
var modelNames = []string{
	"INBOX", "inbox", "Sent", "Trash", "a", "a/b", "a/b/c", "b", "b/c",
	"INBOX/x", "Archive/2024", "x/y/z", "c", "bad//name",
}

// modelFlagPool are the flags a flag mask picks from: every system flag
// and keywords that differ only in case (RFC 9051 §2.3.2: flags are
// case-insensitive).
var modelFlagPool = []string{FlagSeen, FlagDeleted, FlagFlagged, FlagAnswered, FlagDraft, "work", "Work", "$Junk"}

// opBytes is how many bytes one op takes; maxOps bounds a decoded sequence.
const (
	opBytes = 10
	maxOps  = 40
)

// op is one operation, with its arguments as the test passes them.
type op struct {
	kind      opKind
	user      int    // user slot
	dstUser   int    // Copy, Move: the destination's user slot
	mailbox   string // the mailbox, Copy's source, Rename's old name
	dst       string // Copy, Move: destination; Rename: the new name
	set       UIDSet
	flagOp    FlagOp
	flags     []string // Append, StoreFlags
	rcpts     []int    // Deliver: user slots, repeats allowed
	headers   []bool   // Deliver: give rcpts[i] a header of its own
	subscribe bool     // SetSubscribed
	origin    uint64   // Append, StoreFlags, Copy, Move, Expunge: the event Origin
	// StoreFlagsUnchangedSince: the UNCHANGEDSINCE modseq is chosen by
	// sinceSel from what the model observed (pickUnchangedSince), or,
	// with sinceFixed, is unchangedSince (chosen as the op ran).
	sinceSel       byte
	sinceFixed     bool
	unchangedSince uint64
}

// opsFromBytes decodes ops from b, opBytes bytes each (a short last op is
// padded with zeros), at most maxOps. Every input decodes to something.
//
//	b[0] kind (opTable)        b[1] user slot (low 4 bits); bit 7 set: Copy/Move to user slot bits 4-5
//	b[2] mailbox (modelNames)  b[3] destination or new name (modelNames)
//	b[4] UID set shape         b[5], b[6] UID set numbers
//	b[7] flag op (%3), bit 4 subscribe, bits 0-2 Deliver's per-recipient headers
//	b[8] flag mask (modelFlagPool)  b[9] flag spellings and invalid flags
//	b[3] StoreFlagsUnchangedSince: the UNCHANGEDSINCE selector (pickUnchangedSince)
//
// Deliver takes 1 + (b[1]>>5)%3 recipients, user slots from bit pairs of b[2].
func opsFromBytes(b []byte) []op {
	var ops []op
	for i := 0; i < len(b) && len(ops) < maxOps; i += opBytes {
		var c [opBytes]byte
		copy(c[:], b[i:])
		o := op{
			kind:      opTable[int(c[0])%len(opTable)],
			user:      int(c[1]&0x0f) % modelUsers,
			mailbox:   modelNames[int(c[2])%len(modelNames)],
			dst:       modelNames[int(c[3])%len(modelNames)],
			set:       decodeSet(c[4], c[5], c[6]),
			flagOp:    FlagOp(c[7] % 3),
			subscribe: c[7]&0x10 != 0,
			flags:     decodeFlagList(c[8], c[9]),
			origin:    uint64(len(ops) + 1),
			sinceSel:  c[3],
		}
		o.dstUser = o.user
		if c[1]&0x80 != 0 {
			o.dstUser = int(c[1]>>4&3) % modelUsers
		}
		if o.kind == opDeliver {
			n := 1 + int(c[1]>>5)%3
			for j := range n {
				o.rcpts = append(o.rcpts, int(c[2]>>(2*j))%4%modelUsers)
				o.headers = append(o.headers, c[7]&(1<<j) != 0)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

// decodeSet makes the UID set shapes that matter: nil and empty sets
// (nothing), AllUIDs, single UIDs, ranges in either order, open-ended
// ranges (Stop 0), several ranges, sets beyond any UID, and a range from 0.
func decodeSet(shape, x, y byte) UIDSet {
	a, b := UID(1+x%16), UID(1+y%16)
	switch shape % 12 {
	case 0:
		return nil
	case 1:
		return UIDSet{}
	case 2, 11:
		return AllUIDs()
	case 3:
		return UIDSet{{a, a}}
	case 4:
		return UIDSet{{a, b}} // reversed when a > b
	case 5:
		return UIDSet{{a, 0}}
	case 6:
		return UIDSet{{a, a}, {b, b}}
	case 7:
		return UIDSet{{a, b}, {b + 3, 0}}
	case 8:
		return UIDSet{{a + 100, b + 200}}
	case 9:
		return UIDSet{{b + 5, a}}
	default:
		return UIDSet{{0, a}}
	}
}

// decodeFlagList picks flags from modelFlagPool by mask, respelling
// system flags and adding an invalid flag as spell says.
func decodeFlagList(mask, spell byte) []string {
	var flags []string
	for i, f := range modelFlagPool {
		if mask&(1<<i) == 0 {
			continue
		}
		switch {
		case f == FlagDeleted && spell&0x10 != 0:
			f = `\DELETED`
		case f == FlagSeen && spell&0x20 != 0:
			f = `\seen`
		}
		flags = append(flags, f)
	}
	switch spell % 32 {
	case 0:
		flags = append(flags, `\Recent`) // not storable (RFC 9051 §2.3.2)
	case 1:
		flags = append(flags, "bad(kw") // not an atom
	}
	return flags
}

// genOpBytes returns the bytes of a random sequence of about n ops.
func genOpBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, (n+1)*opBytes)
	if r.IntN(3) == 0 {
		b = append(b, encodeOp(opAddUser, byte(1+r.IntN(modelUsers-1)))...)
	}
	for len(b) < n*opBytes {
		b = append(b, byte(r.Uint32()))
	}
	return b
}

// encodeOp returns the bytes of an op of kind with the given argument
// bytes (b[1]...), for seeds.
func encodeOp(kind opKind, args ...byte) []byte {
	b := make([]byte, opBytes)
	for i, k := range opTable {
		if k == kind {
			b[0] = byte(i)
			break
		}
	}
	copy(b[1:], args)
	return b
}

func (o op) String() string {
	u := fmt.Sprintf("u%d", o.user)
	switch o.kind {
	case opDeliver:
		var rs []string
		for i, r := range o.rcpts {
			s := fmt.Sprintf("u%d", r)
			if o.headers[i] {
				s += "+hdr"
			}
			rs = append(rs, s)
		}
		return fmt.Sprintf("Deliver(#%d to %s)", o.origin, strings.Join(rs, ","))
	case opAppend:
		return fmt.Sprintf("Append(#%d, %s %q, %q)", o.origin, u, o.mailbox, o.flags)
	case opStoreFlags:
		return fmt.Sprintf("StoreFlags(%s %q, %s, %s, %q)", u, o.mailbox, fmtSet(o.set), [...]string{"FLAGS", "+FLAGS", "-FLAGS"}[o.flagOp], o.flags)
	case opStoreIf:
		since := fmt.Sprintf("sel %d", o.sinceSel)
		if o.sinceFixed {
			since = fmt.Sprint(o.unchangedSince)
		}
		return fmt.Sprintf("StoreFlagsUnchangedSince(%s %q, %s, %s, %q, %s)", u, o.mailbox, fmtSet(o.set), [...]string{"FLAGS", "+FLAGS", "-FLAGS"}[o.flagOp], o.flags, since)
	case opCopy, opMove:
		return fmt.Sprintf("%s(%s %q, %s, u%d %q)", o.kind, u, o.mailbox, fmtSet(o.set), o.dstUser, o.dst)
	case opExpunge:
		return fmt.Sprintf("Expunge(%s %q, %s)", u, o.mailbox, fmtSet(o.set))
	case opCreate, opDelete:
		return fmt.Sprintf("%s(%s %q)", o.kind, u, o.mailbox)
	case opRename:
		return fmt.Sprintf("RenameMailbox(%s %q -> %q)", u, o.mailbox, o.dst)
	case opSubscribe:
		return fmt.Sprintf("SetSubscribed(%s %q, %v)", u, o.mailbox, o.subscribe)
	default:
		return fmt.Sprintf("%s(%s)", o.kind, u)
	}
}

// fmtSet prints a set in IMAP syntax, with nil and {} told apart.
func fmtSet(set UIDSet) string {
	if set == nil {
		return "nil"
	}
	if len(set) == 0 {
		return "{}"
	}
	var parts []string
	for _, r := range set {
		switch {
		case r.Stop == 0:
			parts = append(parts, fmt.Sprintf("%d:*", r.Start))
		case r.Start == r.Stop:
			parts = append(parts, fmt.Sprint(r.Start))
		default:
			parts = append(parts, fmt.Sprintf("%d:%d", r.Start, r.Stop))
		}
	}
	return strings.Join(parts, ",")
}

// fmtOps lists ops one a line, numbered, for a failure report, with the
// bytes they decode from (a FuzzStoreModel seed).
func fmtOps(ops []op, raw []byte) string {
	var b strings.Builder
	for i, o := range ops {
		fmt.Fprintf(&b, "\t%2d %v\n", i, o)
	}
	if raw != nil {
		fmt.Fprintf(&b, "\tbytes (for f.Add): %s\n", hex.EncodeToString(raw))
	}
	return b.String()
}
