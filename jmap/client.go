package jmap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file is a small JMAP client of the server's own API, for
// "pushmail wait": it blocks on the event source until a message
// matching a filter is in the account. It speaks only what the session
// resource advertises (RFC 8620 §2), so it works against any JMAP
// server that has an event source.

// WaitOptions says what Wait waits for and where.
type WaitOptions struct {
	// Server is the base URL, such as http://127.0.0.1:8025; the session
	// resource is at /.well-known/jmap under it.
	Server string
	// User and Password authenticate (HTTP Basic).
	User, Password string
	// To, From and Subject, when set, must each occur in the message's
	// field (RFC 8621 §4.4.1 to, from, subject: case-insensitive
	// substrings).
	To, From, Subject string
	// Since also accepts a message received this long before Wait
	// started; 0 accepts only messages received after.
	Since time.Duration
	// Client makes the requests; nil means a client without a timeout
	// (ctx bounds Wait).
	Client *http.Client
	// Waiting, if set, is called once, when no matching message is there
	// yet and the event stream is open: from then on a delivery wakes
	// Wait. A caller tells its user (or its test) it is waiting.
	Waiting func()
}

// ErrWaitTimeout: ctx ended before a matching message arrived.
var ErrWaitTimeout = errors.New("no matching message arrived in time")

// WaitResult is the message Wait found.
type WaitResult struct {
	// Email holds its properties: id, blobId, mailboxIds, keywords,
	// receivedAt, from, to, subject, messageId, preview, and the text
	// of its text body (textBody, bodyValues).
	Email map[string]any
	// Raw is the message as stored (RFC 5322), when Wait was asked for it.
	Raw []byte
}

// waitClient is one Wait's connection state.
type waitClient struct {
	opts    WaitOptions
	http    *http.Client
	session struct {
		APIURL          string            `json:"apiUrl"`
		DownloadURL     string            `json:"downloadUrl"`
		EventSourceURL  string            `json:"eventSourceUrl"`
		PrimaryAccounts map[string]string `json:"primaryAccounts"`
	}
	account string
}

// Wait blocks until the account holds a message matching opts received
// at or after start − opts.Since, and returns the newest such message
// (raw as well when raw is set). It opens the event stream before it
// first looks, so that a message arriving in between wakes it; each
// StateChange makes it look again. ctx's end is ErrWaitTimeout.
func Wait(ctx context.Context, opts WaitOptions, raw bool) (WaitResult, error) {
	start := time.Now()
	c := &waitClient{opts: opts, http: opts.Client}
	if c.http == nil {
		c.http = &http.Client{}
	}
	res, err := c.wait(ctx, start, raw)
	if err != nil && ctx.Err() != nil {
		return WaitResult{}, ErrWaitTimeout
	}
	return res, err
}

func (c *waitClient) wait(ctx context.Context, start time.Time, raw bool) (WaitResult, error) {
	if err := c.getSession(ctx); err != nil {
		return WaitResult{}, err
	}
	// Open the stream first: a message delivered while the first query
	// runs is then announced on it.
	u := strings.NewReplacer("{types}", "Email", "{closeafter}", "no", "{ping}", "30").Replace(c.session.EventSourceURL)
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return WaitResult{}, err
	}
	req.SetBasicAuth(c.opts.User, c.opts.Password)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return WaitResult{}, fmt.Errorf("event source: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return WaitResult{}, fmt.Errorf("event source: %s", resp.Status)
	}
	events := bufio.NewReader(resp.Body)
	after := start.Add(-c.opts.Since)
	for {
		email, err := c.find(ctx, after)
		if err != nil {
			return WaitResult{}, err
		}
		if email != nil {
			res := WaitResult{Email: email}
			if raw {
				if res.Raw, err = c.download(ctx, email["blobId"].(string)); err != nil {
					return WaitResult{}, err
				}
			}
			return res, nil
		}
		if c.opts.Waiting != nil {
			c.opts.Waiting()
			c.opts.Waiting = nil
		}
		// Wait for the next state event (RFC 8620 §7.3); pings and
		// comments only keep the stream alive.
		if err := nextStateEvent(events); err != nil {
			return WaitResult{}, fmt.Errorf("event source: %w", err)
		}
	}
}

// nextStateEvent reads the stream up to the end of the next "state"
// event.
func nextStateEvent(r *bufio.Reader) error {
	name := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if name == "state" {
				return nil
			}
			name = ""
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(line[len("event:"):])
		}
	}
}

func (c *waitClient) getSession(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(c.opts.Server, "/")+"/.well-known/jmap", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.opts.User, c.opts.Password)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("session: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&c.session); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	c.account = c.session.PrimaryAccounts[capMail]
	if c.account == "" || c.session.APIURL == "" || c.session.EventSourceURL == "" {
		return errors.New("session: the server offers no mail account or no event source")
	}
	return nil
}

// find runs Email/query (newest first, one id) and Email/get on its
// result in one request, with a result reference (RFC 8620 §3.7).
func (c *waitClient) find(ctx context.Context, after time.Time) (map[string]any, error) {
	conds := []any{map[string]any{"after": after.UTC().Format(time.RFC3339Nano)}}
	for prop, v := range map[string]string{"to": c.opts.To, "from": c.opts.From, "subject": c.opts.Subject} {
		if v != "" {
			conds = append(conds, map[string]any{prop: v})
		}
	}
	body, err := json.Marshal(map[string]any{
		"using": []string{capCore, capMail},
		"methodCalls": []any{
			[]any{"Email/query", map[string]any{"accountId": c.account,
				"filter": map[string]any{"operator": "AND", "conditions": conds},
				"sort":   []any{map[string]any{"property": "receivedAt", "isAscending": false}}, "limit": 1}, "q"},
			[]any{"Email/get", map[string]any{"accountId": c.account,
				"#ids": map[string]any{"resultOf": "q", "name": "Email/query", "path": "/ids"},
				"properties": []string{"id", "blobId", "mailboxIds", "keywords", "receivedAt", "from", "to", "subject",
					"messageId", "preview", "textBody", "bodyValues"},
				"fetchTextBodyValues": true, "maxBodyValueBytes": 1 << 20}, "g"},
		},
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.session.APIURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.opts.User, c.opts.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512)) // for the error text only
		return nil, fmt.Errorf("query: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var out struct {
		MethodResponses []response `json:"methodResponses"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	for _, r := range out.MethodResponses {
		if r.Name == "error" {
			return nil, fmt.Errorf("query: JMAP error %v: %v", r.Args["type"], r.Args["description"])
		}
	}
	if len(out.MethodResponses) != 2 {
		return nil, errors.New("query: unexpected response")
	}
	list, _ := out.MethodResponses[1].Args["list"].([]any)
	if len(list) == 0 {
		return nil, nil
	}
	email, _ := list[0].(map[string]any)
	return email, nil
}

// download fetches a blob by the session's downloadUrl template (RFC
// 8620 §6.2).
func (c *waitClient) download(ctx context.Context, blobID string) ([]byte, error) {
	u := strings.NewReplacer("{accountId}", url.PathEscape(c.account), "{blobId}", url.PathEscape(blobID),
		"{name}", "message.eml", "{type}", url.QueryEscape("message/rfc822")).Replace(c.session.DownloadURL)
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.opts.User, c.opts.Password)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download: %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// response is one method response: [name, arguments, callId].
type response struct {
	Name   string
	Args   map[string]any
	CallID string
}

// UnmarshalJSON decodes the three-element array.
func (r *response) UnmarshalJSON(b []byte) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return err
	}
	if len(parts) != 3 {
		return fmt.Errorf("method response has %d elements, want 3", len(parts))
	}
	if err := json.Unmarshal(parts[0], &r.Name); err != nil {
		return err
	}
	if err := json.Unmarshal(parts[1], &r.Args); err != nil {
		return err
	}
	return json.Unmarshal(parts[2], &r.CallID)
}
