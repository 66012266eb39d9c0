// pushmail's HTTP API driven by jmap-jam, a JMAP client library nobody
// here wrote. Run by cmd/pushmail's TestJMAPJam:
//   node test.mjs SESSION_URL USER PASSWORD
// It lists the mailboxes, reads the INBOX's mail, marks the first message
// $seen, then opens the event stream, prints READY, and prints the first
// StateChange it receives (the test delivers a message over SMTP after
// READY). Any failure exits non-zero with the reason on stderr.
import JamClient from "jmap-jam";

const [sessionUrl, user, password] = process.argv.slice(2);
const token = Buffer.from(`${user}:${password}`).toString("base64");

// jmap-jam authenticates with bearer tokens only; pushmail takes the
// user's password over HTTP Basic (RFC 7617). Adapt the header, nothing
// else, on every request the library makes.
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init = {}) => {
  const headers = new Headers(init.headers);
  if (headers.get("Authorization") === `Bearer ${token}`) {
    headers.set("Authorization", `Basic ${token}`);
  }
  return realFetch(url, { ...init, headers });
};

function check(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
}

const jam = new JamClient({ sessionUrl, bearerToken: token });
const accountId = await jam.getPrimaryAccount();
check(accountId, "a primary mail account");

const [mailboxes] = await jam.api.Mailbox.get({ accountId });
const inbox = mailboxes.list.find((m) => m.role === "inbox");
check(inbox && inbox.name === "INBOX", "an INBOX with role inbox");
check(mailboxes.list.some((m) => m.role === "sent"), "a Sent mailbox");

const [{ emails }] = await jam.requestMany((t) => {
  const ids = t.Email.query({
    accountId,
    filter: { inMailbox: inbox.id },
    sort: [{ property: "receivedAt", isAscending: true }],
  });
  const emails = t.Email.get({
    accountId,
    ids: ids.$ref("/ids"),
    properties: ["id", "subject", "from", "keywords", "preview"],
  });
  return { ids, emails };
});
check(emails.list.length === 1, `one message in the INBOX, got ${emails.list.length}`);
const first = emails.list[0];
check(first.subject === "before jam", `subject "before jam", got ${JSON.stringify(first.subject)}`);
check(first.from[0].email === "app@example.org", "from app@example.org");

const [set] = await jam.api.Email.set({
  accountId,
  update: { [first.id]: { "keywords/$seen": true } },
});
check(set.updated && first.id in set.updated, "Email/set updated the message");
const [after] = await jam.api.Email.get({ accountId, ids: [first.id], properties: ["keywords"] });
check(after.list[0].keywords.$seen === true, "the message is $seen");

// Node 20 has no EventSource; read the session's event source with fetch,
// as Server-Sent Events (RFC 8620 §7.3).
const session = await jam.session;
const url = session.eventSourceUrl
  .replace("{types}", "*")
  .replace("{closeafter}", "state")
  .replace("{ping}", "0");
const resp = await fetch(url, { headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" } });
check(resp.ok, `event source status ${resp.status}`);
const reader = resp.body.getReader();
const decoder = new TextDecoder();
let buf = "";
let ready = false;
for (;;) {
  const { value, done } = await reader.read();
  if (done) {
    throw new Error("event stream ended without a state event");
  }
  buf += decoder.decode(value, { stream: true });
  if (!ready && buf.includes("\n\n")) {
    ready = true;
    console.log("READY");
  }
  const m = buf.match(/event: state\n(?:id: [^\n]*\n)?data: ([^\n]*)\n\n/);
  if (m) {
    const change = JSON.parse(m[1]);
    check(change["@type"] === "StateChange", "a StateChange");
    check(change.changed[accountId] && change.changed[accountId].Email, "an Email state");
    console.log("STATECHANGE " + JSON.stringify(change));
    break;
  }
}
