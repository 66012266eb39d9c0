# Every IMAP command family through Python's imaplib, as a program using
# it would send them: run by TestPythonImaplibCommandFamilies, over plain
# TCP, STARTTLS or implicit TLS. At each "SYNC name" the Go test checks
# what the server's store holds before the script goes on; the script
# checks what imaplib was told. The state at each checkpoint is spelt out
# in the Go test.
#
# usage: imaplib_families.py host port plain|starttls|imaps cafile user password fixtures.json
import base64
import datetime
import imaplib
import json
import re
import ssl
import sys
import time

host, port, mode, cafile, user, password, fixtures = sys.argv[1:8]
port = int(port)
with open(fixtures) as f:
    msgs = {k: base64.b64decode(v) for k, v in json.load(f).items()}


def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)


def sync(name):
    print("SYNC", name, flush=True)
    answer = sys.stdin.readline().strip()
    check(answer == "ok", "server state at checkpoint %s (see the Go test's errors)" % name)


def ok(res, what):
    typ, data = res
    check(typ == "OK", "%s: %s %r" % (what, typ, data))
    return data


def refused(fn, code, what):
    """fn must end in a tagged NO carrying the response code."""
    try:
        typ, data = fn()
    except imaplib.IMAP4.error as e:
        check(code in str(e), "%s: %s, want NO [%s]" % (what, e, code))
        return
    check(typ == "NO" and code.encode() in data[-1], "%s: %s %r, want NO [%s]" % (what, typ, data, code))


def fetched(data):
    """The literals of a FETCH reply by (sequence number, item name)."""
    out, last = {}, 0
    for part in data:
        if not isinstance(part, tuple):
            continue
        meta, literal = part
        m = re.search(rb"([A-Z0-9.]+(?:\[[^\]]*\])?(?:<\d+>)?) \{\d+\}$", meta)
        check(m is not None, "literal item in %r" % meta)
        seq = re.match(rb"(\d+) \(", meta)
        out[(int(seq.group(1)) if seq else last, m.group(1))] = literal
        if seq:
            last = int(seq.group(1))
    return out


def meta_of(data, seq):
    """The non-literal text of message seq's FETCH reply."""
    text = b""
    for part in data:
        chunk = part[0] if isinstance(part, tuple) else part
        if chunk is None:
            continue
        if re.match(rb"%d \(" % seq, chunk):
            text = chunk
        elif text and not re.match(rb"\d+ \(", chunk):
            text += chunk
        elif text:
            break
    return text


ctx = ssl.create_default_context(cafile=cafile)


def connect():
    if mode == "imaps":
        M = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=10)
        check(M.sock.version() is not None, "no TLS over imaps")
    else:
        M = imaplib.IMAP4(host, port, timeout=10)
        if mode == "starttls":
            check("STARTTLS" in M.capabilities, "STARTTLS not offered: %r" % (M.capabilities,))
            ok(M.starttls(ssl_context=ctx), "starttls")
            check("STARTTLS" not in M.capabilities, "STARTTLS offered again after it: %r" % (M.capabilities,))
    return M


# 1. AUTHENTICATE PLAIN and ENABLE, on a connection of their own: after
# ENABLE UTF8=ACCEPT imaplib speaks UTF-8 (RFC 6855).
A = connect()
check("AUTH=PLAIN" in A.capabilities, "AUTH=PLAIN not offered: %r" % (A.capabilities,))
check("LOGINDISABLED" not in A.capabilities, "LOGINDISABLED: %r" % (A.capabilities,))
refused(lambda: A.authenticate("PLAIN", lambda _: ("\0%s\0wrong" % user).encode()),
        "AUTHENTICATIONFAILED", "AUTHENTICATE PLAIN with a wrong password")
ok(A.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (user, password)).encode()), "authenticate")
check(A.state == "AUTH", "state after AUTHENTICATE: %s" % A.state)
ok(A.enable("UTF8=ACCEPT"), "enable")
typ, data = A.response("ENABLED")
check(data == [b"UTF8=ACCEPT"], "ENABLED: %r" % data)
# As a user writes it: imaplib sends the name unquoted, which the server
# takes once UTF8=ACCEPT is on.
ok(A.create('Grüße'), "create UTF-8 name")
data = ok(A.list('""', '"Gr*"'), "list UTF-8")
check(len(data) == 1 and data[0].endswith('"/" "Grüße"'.encode()), "LIST Gr* in UTF-8: %r" % data)
typ, data = A.logout()
check(typ == "BYE", "logout: %s %r" % (typ, data))
sync("authenticate")

# 2. Everything else on one connection, from CAPABILITY to LOGOUT.
M = connect()
data = ok(M.capability(), "capability")
caps = data[0].upper().split()
check(b"IMAP4REV1" in caps and b"AUTH=PLAIN" in caps, "capabilities before login: %r" % caps)
ok(M.noop(), "noop before login")
ok(M.login(user, password), "login")
caps = ok(M.capability(), "capability after login")[0].upper().split()
for c in (b"IMAP4REV1", b"MOVE", b"UIDPLUS", b"IDLE", b"NAMESPACE", b"UNSELECT", b"ENABLE", b"ID", b"LITERAL+"):
    check(c in caps, "%s missing after login: %r" % (c, caps))
check(b"AUTH=PLAIN" not in caps and b"STARTTLS" not in caps, "pre-login capabilities after login: %r" % caps)
ok(M.noop(), "noop")

data = ok(M.namespace(), "namespace")
check(data == [b'(("" "/")) NIL NIL'], "NAMESPACE: %r" % data)


def listed(data):
    names = {}
    for line in data:
        m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
        check(m is not None, "LIST line %r" % line)
        name = m.group(2)
        if name.startswith(b'"'):
            name = name[1:-1]
        names[name] = m.group(1).split()
    return names


# Without ENABLE, the UTF-8 name comes as modified UTF-7 (RFC 3501 §5.1.3).
names = listed(ok(M.list(), "list"))
for n in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Gr&APwA3w-e"):
    check(n in names, "%s not listed: %r" % (n, names))
check(b"\\Sent" in names[b"Sent"] and b"\\Trash" in names[b"Trash"], "special-use attributes: %r" % names)

ok(M.create("Saved"), "create Saved")
ok(M.create("Projects/2024"), "create Projects/2024")
refused(lambda: M.create("Saved"), "ALREADYEXISTS", "CREATE Saved again")
ok(M.create("Old"), "create Old")
ok(M.rename("Old", "Older"), "rename")
ok(M.delete("Older"), "delete")
refused(lambda: M.select("Older"), "NONEXISTENT", "SELECT a deleted mailbox")
names = listed(ok(M.list('""', "Projects/*"), "list Projects/*"))
check(list(names) == [b"Projects/2024"], "LIST Projects/*: %r" % names)
sync("mailboxes")

before = set(listed(ok(M.lsub(), "lsub")))
ok(M.subscribe("Saved"), "subscribe")
ok(M.subscribe("Projects/2024"), "subscribe")
ok(M.unsubscribe("Projects/2024"), "unsubscribe")
after = set(listed(ok(M.lsub(), "lsub")))
check(after == before | {b"Saved"}, "LSUB %r after subscribing Saved to %r" % (after, before))
sync("subscriptions")

data = ok(M.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"), "status")
# RECENT's value is not checked: imapd shows no message \Recent yet.
for item in (b"MESSAGES 3", b"RECENT ", b"UIDNEXT 4", b"UNSEEN 3", b"UIDVALIDITY "):
    check(item in data[0], "STATUS INBOX: %r lacks %r" % (data, item))

appended = datetime.datetime(2020, 5, 6, 12, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
ok(M.append("INBOX", r"(\Flagged $Label1)", appended, msgs["ap"]), "append")
typ, data = M.response("APPENDUID")
check(data[0] is not None and data[0].split()[1] == b"4", "APPENDUID: %r" % data)
sync("append")

# EXAMINE: read-only; a FETCH of BODY[] sets no \Seen (RFC 9051 §6.3.3),
# STORE is refused.
data = ok(M.select("INBOX", readonly=True), "examine")
check(data == [b"4"], "EXAMINE INBOX: %r" % data)
data = ok(M.fetch("1", "(BODY[])"), "fetch in EXAMINE")
check(data[0][1] == msgs["m1"], "BODY[] in EXAMINE: %r" % data)
refused(lambda: M.store("1", "+FLAGS", r"(\Deleted)"), "CANNOT", "STORE in EXAMINE")
ok(M.close(), "close after examine")
sync("examine")

data = ok(M.select("INBOX"), "select")
check(data == [b"4"], "SELECT INBOX: %r" % data)
check(M.response("UIDNEXT")[1] == [b"5"], "UIDNEXT after APPEND")
check(b"\\*" in M.response("PERMANENTFLAGS")[1][0], "PERMANENTFLAGS allows keywords")

data = ok(M.fetch("1:4", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[])"), "fetch")
bodies = fetched(data)
for seq, key in ((1, "m1"), (2, "mp"), (3, "u8"), (4, "ap")):
    check(bodies.get((seq, b"BODY[]")) == msgs[key], "BODY[] of %d: %r" % (seq, bodies.get((seq, b"BODY[]"))))
    meta = meta_of(data, seq)
    check(b"UID %d " % seq in meta, "UID of %d in %r" % (seq, meta))
    check(b"RFC822.SIZE %d " % len(msgs[key]) in meta, "RFC822.SIZE of %d in %r" % (seq, meta))
m1 = meta_of(data, 1)
check(b'"test 1"' in m1 and b'"<1@example.org>"' in m1 and b'("Bob" NIL "bob" "example.org")' in m1, "ENVELOPE of 1: %r" % m1)
mp = meta_of(data, 2).upper()
check(b'"MIXED" ("BOUNDARY" "B1")' in mp and b'"APPLICATION" "OCTET-STREAM"' in mp, "BODYSTRUCTURE of 2: %r" % mp)
when = imaplib.Internaldate2tuple(meta_of(data, 4))
check(when is not None and time.mktime(when) == appended.timestamp(), "INTERNALDATE of 4: %r" % meta_of(data, 4))
check(b"\\Seen" not in b"".join(meta_of(data, s) for s in range(1, 5)), "BODY.PEEK[] set \\Seen: %r" % data)

data = ok(M.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.10>)"), "fetch sections")
parts = fetched(data)
check(parts.get((2, b"BODY[1]")) == b"First part.", "BODY[1]: %r" % data)
check(parts.get((2, b"BODY[2]")) == b"AAECAwQF", "BODY[2]: %r" % data)
check(parts.get((2, b'BODY[HEADER.FIELDS (SUBJECT)]')) == b"Subject: multipart\r\n\r\n", "HEADER.FIELDS: %r" % data)
check(parts.get((2, b"BODY[]<0>")) == msgs["mp"][:10], "BODY[]<0.10>: %r" % data)
data = ok(M.fetch("1", "(BODY[TEXT])"), "fetch text")
check(data[0][1] == b"Body of message 1.\r\n", "BODY[TEXT]: %r" % data)
data = ok(M.fetch("1", "(FLAGS)"), "fetch flags")
check(b"\\Seen" in data[0], "BODY[TEXT] did not set \\Seen: %r" % data)
sync("fetch")

data = ok(M.store("2", "+FLAGS", r"(\Answered \Draft)"), "store +flags")
check(b"\\Answered" in data[0] and b"\\Draft" in data[0], "STORE +FLAGS: %r" % data)
data = ok(M.store("2", "-FLAGS", r"(\Draft)"), "store -flags")
check(b"\\Draft" not in data[0], "STORE -FLAGS: %r" % data)
data = ok(M.store("3", "FLAGS.SILENT", r"(\Seen $Work)"), "store flags.silent")
check(data == [None], "STORE FLAGS.SILENT answered FETCH: %r" % data)
sync("store")


def search(want, *criteria, charset=None, literal=None, uid=False):
    if literal is not None:
        M.literal = literal
    args = (("CHARSET", charset) if charset else ()) + criteria
    if uid:
        data = ok(M.uid("SEARCH", *args), "uid search %r" % (criteria,))
    else:
        data = ok(M.search(None, *args), "search %r" % (criteria,))
    check(data == [want], "SEARCH %s %r: %r, want %r" % (charset, criteria, data, want))


search(b"1 2 3 4", "ALL")
search(b"4", "FLAGGED")
search(b"2 4", "UNSEEN")
search(b"2", "ANSWERED")
search(b"3", "KEYWORD", "$Work")
search(b"1", "SUBJECT", '"test 1"')
search(b"2", "FROM", "carol")
search(b"2", "HEADER", "Message-ID", '"<multipart@example.org>"')
search(b"4", "BEFORE", "1-Jan-2021")
search(b"2 4", "OR", "FLAGGED", "ANSWERED")
search(b"2 3", "2:3", "NOT", "DELETED")
search(b"3", "SUBJECT", charset="UTF-8", literal="Grüße".encode())
search(b"3", "BODY", charset="UTF-8", literal="crème".encode())
search(b"3", "TEXT", charset="UTF-8", literal="Café".encode(), uid=True)
search(b"1 2 3 4", "ALL", uid=True)
search(b"4", "UID", "4", uid=True)
# WITHIN (RFC 5032): UID 4 was appended with a 2020 internal date, the
# others delivered just now; SAVEDATE (RFC 8514): all were saved now.
search(b"4", "OLDER", "86400")
search(b"1 2 3", "YOUNGER", "86400", uid=True)
search(b"1 2 3 4", "SAVEDSINCE", "1-Jan-2021")
search(b"4", "BEFORE", "1-Jan-2021", "SAVEDATESUPPORTED")
# OBJECTID (RFC 8474): UID 3's EMAILID, to be found again after its MOVE.
data = ok(M.uid("FETCH", "3", "(EMAILID THREADID SAVEDATE)"), "uid fetch objectid")
m = re.search(rb"EMAILID \(([A-Za-z0-9_-]+)\) THREADID \(([A-Za-z0-9_-]+)\) SAVEDATE \"[^\"]+\"", data[0])
check(m is not None, "UID FETCH EMAILID THREADID SAVEDATE: %r" % data)
emailid = m.group(1).decode()
search(b"3", "EMAILID", emailid, uid=True)

# UID FETCH, STORE, COPY, MOVE.
data = ok(M.uid("FETCH", "4", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "uid fetch")
check(b"UID 4" in data[0][0] and data[0][1] == b"Subject: appended draft\r\n\r\n", "UID FETCH: %r" % data)
data = ok(M.uid("STORE", "1", "+FLAGS", r"(\Flagged)"), "uid store")
check(b"UID 1" in data[0] and b"\\Flagged" in data[0], "UID STORE: %r" % data)
ok(M.uid("COPY", "1:2", "Saved"), "uid copy")
check(M.response("COPYUID")[1][0].split()[1:] == [b"1:2", b"1:2"], "COPYUID of UID COPY")
ok(M.uid("MOVE", "3", "Saved"), "uid move")
check(M.response("COPYUID")[1][0].split()[1:] == [b"3", b"3"], "COPYUID of UID MOVE")
check(M.response("EXPUNGE")[1] == [b"3"], "UID MOVE expunged seq 3")
# COPY and MOVE by sequence number: INBOX is UIDs 1, 2, 4 now.
ok(M.copy("1", "Projects/2024"), "copy")
check(M.response("COPYUID")[1][0].split()[1:] == [b"1", b"1"], "COPYUID of COPY")
ok(M._simple_command("MOVE", "2", "Projects/2024"), "move")
check(M.response("COPYUID")[1][0].split()[1:] == [b"2", b"2"], "COPYUID of MOVE")
check(M.response("EXPUNGE")[1] == [b"2"], "MOVE expunged seq 2")
sync("copymove")

# EXPUNGE and UID EXPUNGE: INBOX is UIDs 1 and 4.
ok(M.store("1", "+FLAGS.SILENT", r"(\Deleted)"), "store deleted")
data = ok(M.expunge(), "expunge")
check(data == [b"1"], "EXPUNGE: %r" % data)
ok(M.append("INBOX", None, None, msgs["m5"]), "append m5")
ok(M.noop(), "noop after append")
check(M.response("EXISTS")[1][-1] == b"2", "EXISTS after APPEND")
ok(M.uid("STORE", "4:5", "+FLAGS.SILENT", r"(\Deleted)"), "uid store deleted")
ok(M.uid("EXPUNGE", "5"), "uid expunge")
check(M.response("EXPUNGE")[1] == [b"2"], "UID EXPUNGE 5 expunged seq 2 only")
ok(M.uid("STORE", "4", "-FLAGS.SILENT", r"(\Deleted)"), "uid store undelete")
sync("expunge")

# CLOSE expunges (RFC 9051 §6.4.1), UNSELECT does not (RFC 3691).
data = ok(M.select("Saved"), "select Saved")
check(data == [b"3"], "SELECT Saved: %r" % data)
check(len(M.response("MAILBOXID")[1]) == 1, "SELECT Saved: no MAILBOXID")
# UID 3 here is INBOX's UID 3, moved: the same EMAILID (RFC 8474 §5.1).
data = ok(M.uid("SEARCH", "EMAILID", emailid), "uid search emailid in Saved")
check(data == [b"3"], "UID SEARCH EMAILID %s in Saved: %r" % (emailid, data))
ok(M.store("2", "+FLAGS", r"(\Deleted)"), "store deleted in Saved")
ok(M.close(), "close Saved")
check(M.state == "AUTH", "state after CLOSE: %s" % M.state)
ok(M.select("INBOX"), "select INBOX")
ok(M.close(), "close INBOX with nothing deleted")
ok(M.select("Projects/2024"), "select Projects/2024")
ok(M.store("1", "+FLAGS", r"(\Deleted)"), "store deleted in Projects/2024")
ok(M.unselect(), "unselect")
check(M.state == "AUTH", "state after UNSELECT: %s" % M.state)
ok(M.rename("Saved", '"Old Saved"'), "rename Saved")
sync("close")

# IDLE: the test delivers a message and flags UID 4 from elsewhere.
data = ok(M.select("INBOX"), "select for idle")
check(data == [b"1"], "SELECT INBOX before IDLE: %r" % data)
if hasattr(M, "idle"):  # Python 3.14: IMAP4.idle() yields (type, data)
    pushed = []

    def items(datum):
        return datum if isinstance(datum, list) else [datum]

    def got_exists():
        return any(t == "EXISTS" and b"2" in items(d) for t, d in pushed)

    def got_fetch():
        return any(t == "FETCH" and any(isinstance(i, bytes) and b"UID 4" in i and b"\\Seen" in i for i in items(d)) for t, d in pushed)

    with M.idle(duration=20) as idler:
        sync("idle")
        for typ, datum in idler:
            pushed.append((typ, datum))
            if got_exists() and got_fetch():
                break
    check(got_exists(), "IDLE pushed %r, want EXISTS 2" % pushed)
    check(got_fetch(), "IDLE pushed %r, want UID 4's flags" % pushed)
else:
    tag = M._new_tag()
    M.send(tag + b" IDLE\r\n")
    line = M.readline()
    check(line.startswith(b"+"), "IDLE continuation: %r" % line)
    sync("idle")
    lines = []
    while not any(b"FETCH" in l for l in lines) or b"* 2 EXISTS\r\n" not in lines:
        line = M.readline()
        check(line != b"", "connection closed in IDLE after %r" % lines)
        lines.append(line)
    check(any(re.match(rb"\* 1 FETCH \(UID 4 FLAGS \(.*\\Seen", l) for l in lines), "IDLE pushed %r" % lines)
    M.send(b"DONE\r\n")
    line = M.readline()
    check(line.startswith(tag + b" OK"), "IDLE completion: %r" % line)
data = ok(M.fetch("2", "(BODY.PEEK[])"), "fetch pushed message")
check(data[0][1] == msgs["m6"], "pushed message: %r" % data)

ok(M.xatom("ID", '("name" "imaplib" "version" "%s")' % sys.version.split()[0]), "id")
typ, data = M.response("ID")
check(data[0] is not None and b'"name" "pushmail"' in data[0], "ID: %r" % data)
typ, data = M.logout()
check(typ == "BYE", "logout: %s %r" % (typ, data))
print("PASS", flush=True)
