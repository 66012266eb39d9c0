package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestWebInboxInChromium drives the web inbox in a real browser, headless
// Chromium (Debian's, installed by ./test.sh), against the binary: it logs
// in, sees a message delivered over SMTP appear without a reload (and the
// unread count in the title), reads it and marks it unread again, opens a
// hostile HTML message that must run no script and load nothing remote,
// deletes it, and moves the first one to Trash. After each change the
// server's state is checked over IMAP.
//
// PUSHMAIL_SCREENSHOT=FILE writes a screenshot of the page after the
// first delivery to FILE (the README's docs/webinbox.png comes from it).
func TestWebInboxInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and a browser")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed: ./test.sh installs it")
	}
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")

	// Anything the hostile message manages to load lands here.
	var leaks atomic.Int32
	leak := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaks.Add(1)
		t.Logf("the hostile message loaded %s", r.URL)
	}))
	defer leak.Close()

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1200, 800))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// clickRow clicks the list row that shows text, in one step in the
	// page: the list is redrawn whenever the event stream says something
	// changed, so a node looked up first may be gone by the click.
	clickRow := func(text string) chromedp.Action {
		return chromedp.Evaluate(`[...document.querySelectorAll("#list tbody tr")].find((tr) => tr.innerText.includes(`+strconv.Quote(text)+`)).click()`, nil)
	}
	// waitJS waits until a JavaScript expression is true.
	waitJS := func(what, expr string) {
		t.Helper()
		run(what, chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(30*time.Second)))
	}

	base := "http://" + srv.addr("http")
	run("log in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#login-form"),
		chromedp.SendKeys("#username", "alice@localhost"),
		chromedp.SendKeys("#password", "secret"),
		chromedp.Click(`#login-form button[type="submit"]`),
		chromedp.WaitVisible("#app"),
	)
	waitJS("the event stream is open", `document.getElementById("live").classList.contains("on")`)

	send := func(subject, contentType, body string) {
		t.Helper()
		msg := "From: Bob <bob@example.org>\r\nTo: alice@localhost\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\nContent-Type: " + contentType + "\r\n\r\n" + body + "\r\n"
		if err := smtp.SendMail(srv.addr("smtp"), nil, "bob@example.org", []string{"alice@localhost"}, []byte(msg)); err != nil {
			t.Fatalf("SMTP: %v", err)
		}
	}
	send("first message", "text/plain; charset=utf-8", "Hello from SMTP.")
	waitJS("the delivery appears without a reload", `document.querySelector("#list").innerText.includes("first message")`)
	waitJS("the title shows one unread", `document.title === "(1) pushmail"`)
	if path := os.Getenv("PUSHMAIL_SCREENSHOT"); path != "" {
		var png []byte
		run("screenshot", chromedp.FullScreenshot(&png, 100) /* 100: PNG */)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// IMAP, to check the server's state after each change.
	c, err := imapclient.DialInsecure(srv.addr("imap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@localhost", "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	flags := func(mailbox string) map[string][]imap.Flag {
		t.Helper()
		sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]imap.Flag{}
		if sel.NumMessages == 0 {
			return out
		}
		var all imap.SeqSet
		all.AddRange(1, 0)
		msgs, err := c.Fetch(all, &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			out[m.Envelope.Subject] = m.Flags
		}
		return out
	}
	waitIMAP := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen over IMAP", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	run("open the message", clickRow("first message"), chromedp.WaitVisible("#reader"))
	waitJS("its text is shown", `document.getElementById("text").textContent.includes("Hello from SMTP.")`)
	waitIMAP("reading sets \\Seen", func() bool { return slices.Contains(flags("INBOX")["first message"], imap.FlagSeen) })
	waitJS("the title drops the count", `document.title === "pushmail"`)
	run("mark unread", chromedp.Click("#toggle-read"))
	waitIMAP("mark unread clears \\Seen", func() bool {
		f, ok := flags("INBOX")["first message"]
		return ok && !slices.Contains(f, imap.FlagSeen)
	})

	hostile := `<p>Hostile</p><script>document.title = "pwned"; parent.document.title = "pwned"; fetch("` + leak.URL + `/script")</script>` +
		`<img src="` + leak.URL + `/img.png"><link rel="stylesheet" href="` + leak.URL + `/style.css">` +
		`<iframe src="` + leak.URL + `/frame"></iframe><img src="x" onerror="fetch('` + leak.URL + `/onerror')">`
	send("hostile message", "text/html; charset=utf-8", hostile)
	waitJS("the hostile message appears", `document.querySelector("#list").innerText.includes("hostile message")`)
	run("open the hostile message",
		clickRow("hostile message"),
		chromedp.WaitVisible("#html"),
	)
	waitJS("its HTML is in the sandboxed frame", `document.getElementById("html").srcdoc.includes("Hostile")`)
	time.Sleep(500 * time.Millisecond) // give any load or script a chance to happen
	var title string
	run("read the title", chromedp.Title(&title))
	if title == "pwned" || leaks.Load() != 0 {
		t.Errorf("the hostile message ran or loaded something: title %q, %d requests to the leak server", title, leaks.Load())
	}
	run("delete it", chromedp.Click("#destroy"))
	waitIMAP("Delete removes the message", func() bool {
		f := flags("INBOX")
		_, gone := f["hostile message"]
		return !gone && len(f) == 1
	})

	run("open the first message again", clickRow("first message"), chromedp.WaitVisible("#reader"))
	run("move it to Trash", chromedp.Click("#to-trash"))
	waitIMAP("Move to Trash moves it", func() bool {
		return len(flags("INBOX")) == 0 && len(flags("Trash")) == 1
	})
	waitJS("the list is empty", `!document.getElementById("empty").hidden`)
}
