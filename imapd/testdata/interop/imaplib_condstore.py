# CONDSTORE and QRESYNC (RFC 7162) through Python's imaplib, driven by
# imaplib_condstore_test.go: at each "CHECKPOINT name" line the script
# waits for a line on stdin while the test checks (or changes) the store.
# Usage: imaplib_condstore.py HOST PORT USER PASSWORD
import imaplib
import re
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
expunged, flagged, new = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])


def checkpoint(name):
    print("SYNC", name, flush=True)
    if sys.stdin.readline().strip() != "ok":
        sys.exit(1)


def check(cond, what):
    if not cond:
        print("FAIL", what, flush=True)
        sys.exit(1)


def ok(typ, data, what):
    check(typ == "OK", "%s: %s %r" % (what, typ, data))
    return data


def fetch_uids(data):
    """UIDs of the FETCH responses in data, with their MODSEQ."""
    out = {}
    for item in data:
        if isinstance(item, tuple):
            item = item[0]
        if item is None:
            continue
        m = re.search(rb"UID (\d+)", item)
        ms = re.search(rb"MODSEQ \((\d+)\)", item)
        check(m is not None and ms is not None, "FETCH without UID or MODSEQ: %r" % item)
        out[int(m.group(1))] = int(ms.group(1))
    return out


c = imaplib.IMAP4(host, port)
ok(*c.login(user, password), "LOGIN")
# RFC 7162 §3.2.3: ENABLE QRESYNC implies CONDSTORE.
typ, data = c._simple_command("ENABLE", "CONDSTORE", "QRESYNC")
ok(typ, data, "ENABLE")
enabled = b" ".join(c.untagged_responses.pop("ENABLED", [b""])).upper()
check(b"CONDSTORE" in enabled and b"QRESYNC" in enabled, "ENABLED said %r" % enabled)

ok(*c.select("INBOX"), "SELECT")
uidvalidity = int(c.untagged_responses["UIDVALIDITY"][0])
m0 = int(c.untagged_responses["HIGHESTMODSEQ"][0])

# STORE answers with the new MODSEQ (RFC 7162 §3.1.4.1).
data = ok(*c.uid("STORE", "1", "+FLAGS", r"(\Seen)"), "UID STORE 1")
stored = fetch_uids(data)
check(list(stored) == [1] and stored[1] > m0, "UID STORE 1 answered %r" % data)

# FETCH CHANGEDSINCE: only what changed after m0 (§3.1.4.1).
data = ok(*c.uid("FETCH", "1:*", "(FLAGS) (CHANGEDSINCE %d)" % m0), "UID FETCH CHANGEDSINCE")
changed = fetch_uids(data)
check(changed == stored, "CHANGEDSINCE %d returned %r, want only UID 1" % (m0, data))

# STORE UNCHANGEDSINCE: message 1 changed after m0, so it is left alone
# and named in MODIFIED; message 2 is stored (§3.1.3).
c.untagged_responses.pop("MODIFIED", None)
ok(*c.uid("STORE", "1,2", "(UNCHANGEDSINCE %d)" % m0, "+FLAGS", r"(\Answered)"), "UID STORE UNCHANGEDSINCE")
modified = c.untagged_responses.pop("MODIFIED", [b""])
check(modified == [b"1"], "MODIFIED = %r, want [b'1']" % modified)
checkpoint("stored")

typ, data = c.status("INBOX", "(HIGHESTMODSEQ)")
ok(typ, data, "STATUS")
m1 = int(re.search(rb"HIGHESTMODSEQ (\d+)", data[0]).group(1))
c.logout()
# The test expunges, flags and delivers while the client is away.
checkpoint("away")

c = imaplib.IMAP4(host, port)
ok(*c.login(user, password), "LOGIN again")
ok(*c._simple_command("ENABLE", "QRESYNC"), "ENABLE QRESYNC")
typ, data = c._simple_command("SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, m1))
ok(typ, data, "SELECT QRESYNC")
c.state = "SELECTED"  # imaplib does not know SELECT's parameters
vanished = [v.decode() for v in c.untagged_responses.pop("VANISHED", [])]
fetched = fetch_uids(c.untagged_responses.pop("FETCH", []))

# The same through UID FETCH … (CHANGEDSINCE m1 VANISHED) (§3.2.6).
data = ok(*c.uid("FETCH", "1:*", "(FLAGS) (CHANGEDSINCE %d VANISHED)" % m1), "UID FETCH VANISHED")
fetched2 = fetch_uids(data)
vanished2 = [v.decode() for v in c.untagged_responses.pop("VANISHED", [])]
c.logout()
# RFC 7162 §3.2.5.2: the expunged UID in VANISHED (EARLIER), a FETCH
# for the reflagged and the new message, nothing else.
want_vanished = ["(EARLIER) %d" % expunged]
want_fetched = sorted([flagged, new])
check(vanished == want_vanished, "SELECT QRESYNC: VANISHED %r, want %r" % (vanished, want_vanished))
check(sorted(fetched) == want_fetched, "SELECT QRESYNC: FETCH of %r, want %r" % (sorted(fetched), want_fetched))
check(all(m > m1 for m in fetched.values()), "SELECT QRESYNC: MODSEQ not above %d: %r" % (m1, fetched))
check(vanished2 == want_vanished, "UID FETCH VANISHED: VANISHED %r, want %r" % (vanished2, want_vanished))
check(sorted(fetched2) == want_fetched, "UID FETCH VANISHED: FETCH of %r, want %r" % (sorted(fetched2), want_fetched))
checkpoint("resynced")
print("PASS", flush=True)
