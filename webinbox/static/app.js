// pushmail's web inbox: a JMAP client (RFC 8620, RFC 8621) of the server
// it is served by. It logs in with a session cookie (webinbox.go), reads
// the JMAP session, shows mailboxes, messages and one message, and listens
// on the JMAP event stream (RFC 8620 §7.3), refreshing when the server
// says a state changed: no polling. Message text is shown with
// textContent; HTML only in a sandboxed iframe whose policy loads nothing.

const CORE = "urn:ietf:params:jmap:core";
const MAIL = "urn:ietf:params:jmap:mail";
const $ = (id) => document.getElementById(id);

const st = {
  csrf: "",
  session: null,
  accountId: "",
  mailboxes: [],
  current: "", // mailbox id
  emails: [],
  open: null, // the email shown
  stream: null,
};

async function request(url, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (init.method && init.method !== "GET") headers["X-CSRF-Token"] = st.csrf;
  const res = await fetch(url, { ...init, headers, credentials: "same-origin" });
  if (res.status === 401) {
    showLogin();
    throw new Error("logged out");
  }
  return res;
}

// api sends method calls and returns their responses by call id; a method
// error throws.
async function api(calls) {
  const res = await request(st.session.apiUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ using: [CORE, MAIL], methodCalls: calls }),
  });
  if (!res.ok) throw new Error(`JMAP request: ${res.status}`);
  const out = {};
  for (const [name, args, id] of (await res.json()).methodResponses) {
    if (name === "error") throw new Error(`${id}: ${args.type} ${args.description || ""}`);
    out[id] = args;
  }
  return out;
}

function showLogin() {
  if (st.stream) st.stream.close();
  st.stream = null;
  $("app").hidden = true;
  $("login").hidden = false;
  document.title = "pushmail";
}

async function start(who) {
  st.csrf = who.csrf;
  $("who").textContent = who.username;
  st.session = await (await request("/.well-known/jmap")).json();
  st.accountId = st.session.primaryAccounts[MAIL];
  $("login").hidden = true;
  $("app").hidden = false;
  await refreshMailboxes();
  const inbox = st.mailboxes.find((m) => m.role === "inbox") || st.mailboxes[0];
  await select(inbox.id);
  listen();
}

async function refreshMailboxes() {
  const r = await api([["Mailbox/get", { accountId: st.accountId, ids: null, properties: ["name", "role", "sortOrder", "unreadEmails", "totalEmails"] }, "m"]]);
  st.mailboxes = r.m.list.sort((a, b) => (a.role === "inbox" ? -1 : b.role === "inbox" ? 1 : a.sortOrder - b.sortOrder || a.name.localeCompare(b.name)));
  const ul = $("mailboxes");
  ul.replaceChildren();
  for (const m of st.mailboxes) {
    const li = document.createElement("li");
    li.dataset.id = m.id;
    li.textContent = m.name;
    if (m.unreadEmails > 0) {
      const c = document.createElement("span");
      c.className = "count";
      c.textContent = m.unreadEmails;
      li.append(c);
    }
    if (m.id === st.current) li.className = "current";
    li.onclick = () => select(m.id);
    ul.append(li);
  }
  const inbox = st.mailboxes.find((m) => m.role === "inbox");
  const unread = inbox ? inbox.unreadEmails : 0;
  document.title = unread > 0 ? `(${unread}) pushmail` : "pushmail";
}

async function select(id) {
  st.current = id;
  for (const li of $("mailboxes").children) li.className = li.dataset.id === id ? "current" : "";
  closeReader();
  await refreshList();
}

async function refreshList() {
  const r = await api([
    ["Email/query", { accountId: st.accountId, filter: { inMailbox: st.current }, sort: [{ property: "receivedAt", isAscending: false }], limit: 200 }, "q"],
    ["Email/get", { accountId: st.accountId, "#ids": { resultOf: "q", name: "Email/query", path: "/ids" }, properties: ["subject", "from", "receivedAt", "keywords", "mailboxIds"] }, "g"],
  ]);
  st.emails = r.g.list;
  const tbody = $("list").tBodies[0];
  tbody.replaceChildren();
  for (const e of st.emails) {
    const tr = document.createElement("tr");
    tr.dataset.id = e.id;
    if (!e.keywords || !e.keywords.$seen) tr.classList.add("unread");
    if (st.open && st.open.id === e.id) tr.classList.add("current");
    for (const text of [sender(e), e.subject || "(no subject)", new Date(e.receivedAt).toLocaleString()]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    tr.onclick = () => openEmail(e.id);
    tbody.append(tr);
  }
  $("empty").hidden = st.emails.length > 0;
  if (st.open && !st.emails.some((e) => e.id === st.open.id)) closeReader();
}

function sender(e) {
  const f = e.from && e.from[0];
  return f ? f.name || f.email : "";
}

async function openEmail(id) {
  const r = await api([
    ["Email/get", { accountId: st.accountId, ids: [id], properties: ["subject", "from", "receivedAt", "keywords", "mailboxIds", "textBody", "htmlBody", "bodyValues"], fetchTextBodyValues: true, fetchHTMLBodyValues: true }, "g"],
  ]);
  const e = r.g.list[0];
  if (!e) return;
  st.open = e;
  $("reader").hidden = false;
  $("subject").textContent = e.subject || "(no subject)";
  $("from").textContent = (e.from || []).map((a) => (a.name ? `${a.name} <${a.email}>` : a.email)).join(", ");
  $("date").textContent = new Date(e.receivedAt).toLocaleString();
  const value = (parts) => (parts || []).map((p) => (e.bodyValues[p.partId] || {}).value || "").join("\n");
  const html = (e.htmlBody || []).some((p) => p.type === "text/html") ? value(e.htmlBody.filter((p) => p.type === "text/html")) : "";
  const frame = $("html");
  if (html) {
    // The frame runs no script (empty sandbox) and, by this policy, loads
    // nothing: no remote images, styles or fonts.
    frame.srcdoc = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">` + html;
    frame.hidden = false;
    $("text").hidden = true;
  } else {
    frame.hidden = true;
    frame.srcdoc = "";
    $("text").hidden = false;
    $("text").textContent = value(e.textBody);
  }
  for (const tr of $("list").tBodies[0].children) tr.classList.toggle("current", tr.dataset.id === id);
  if (!e.keywords || !e.keywords.$seen) await setSeen(true);
  else updateButtons();
}

function closeReader() {
  st.open = null;
  $("reader").hidden = true;
}

function updateButtons() {
  $("toggle-read").textContent = st.open.keywords && st.open.keywords.$seen ? "Mark unread" : "Mark read";
  const trash = st.mailboxes.find((m) => m.role === "trash");
  $("to-trash").hidden = !trash || st.open.mailboxIds[trash.id];
}

async function setSeen(seen) {
  const id = st.open.id;
  const r = await api([["Email/set", { accountId: st.accountId, update: { [id]: { "keywords/$seen": seen || null } } }, "s"]]);
  if (r.s.notUpdated && r.s.notUpdated[id]) throw new Error(`Email/set: ${r.s.notUpdated[id].type}`);
  st.open.keywords = { ...st.open.keywords, $seen: seen || undefined };
  if (!seen) delete st.open.keywords.$seen;
  updateButtons();
  await Promise.all([refreshMailboxes(), refreshList()]);
}

async function moveToTrash() {
  const trash = st.mailboxes.find((m) => m.role === "trash");
  const id = st.open.id;
  const r = await api([["Email/set", { accountId: st.accountId, update: { [id]: { mailboxIds: { [trash.id]: true } } } }, "s"]]);
  if (r.s.notUpdated && r.s.notUpdated[id]) throw new Error(`Email/set: ${r.s.notUpdated[id].type}`);
  closeReader();
  await Promise.all([refreshMailboxes(), refreshList()]);
}

async function destroy() {
  const id = st.open.id;
  const r = await api([["Email/set", { accountId: st.accountId, destroy: [id] }, "s"]]);
  if (r.s.notDestroyed && r.s.notDestroyed[id]) throw new Error(`Email/set: ${r.s.notDestroyed[id].type}`);
  closeReader();
  await Promise.all([refreshMailboxes(), refreshList()]);
}

// listen opens the event stream; each StateChange refreshes the view once
// (changes arriving meanwhile are folded into the next refresh).
function listen() {
  const url = st.session.eventSourceUrl.replace("{types}", "*").replace("{closeafter}", "no").replace("{ping}", "60");
  const es = new EventSource(url, { withCredentials: true });
  st.stream = es;
  es.onopen = () => $("live").classList.add("on");
  es.onerror = () => $("live").classList.remove("on");
  let busy = false;
  let again = false;
  es.addEventListener("state", async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    do {
      again = false;
      try {
        await Promise.all([refreshMailboxes(), refreshList()]);
      } catch (err) {
        console.error(err);
      }
    } while (again);
    busy = false;
  });
}

$("login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const res = await fetch("/webinbox/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  const body = await res.json();
  if (!res.ok) {
    $("login-error").textContent = body.error || `login failed (${res.status})`;
    return;
  }
  $("password").value = "";
  await start(body);
};

$("logout").onclick = async () => {
  await fetch("/webinbox/logout", { method: "POST", headers: { "X-CSRF-Token": st.csrf }, credentials: "same-origin" });
  showLogin();
};
$("toggle-read").onclick = () => setSeen(!(st.open.keywords && st.open.keywords.$seen));
$("to-trash").onclick = moveToTrash;
$("destroy").onclick = destroy;

(async () => {
  const res = await fetch("/webinbox/whoami", { credentials: "same-origin" });
  if (res.ok) await start(await res.json());
  else showLogin();
})();
