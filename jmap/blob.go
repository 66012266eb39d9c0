package jmap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"pushmail/mailstore"
)

// Blobs (RFC 8620 §6): an email's blob is its raw message ("G" + id), a
// leaf part's is its decoded content ("P" + id + "_" + section), and an
// upload's is "U" + the hex SHA-256 of its bytes, kept in memory for
// the hour RFC 8620 §6.1 asks for ("at least 1 hour"), or until the
// bounded store needs the room. Uploads do not survive a restart:
// Email/import them to keep them.

// uploadLifetime is how long an upload is kept.
const uploadLifetime = time.Hour

type upload struct {
	user    mailstore.UserID
	data    []byte
	typ     string
	expires time.Time
}

// blobStore holds uploads, at most max bytes in all; the oldest go
// first when a new one needs room. Safe for concurrent use.
type blobStore struct {
	max int64

	mu    sync.Mutex
	size  int64
	blobs map[string]*upload
	order []string // insertion order, oldest first
}

func newBlobStore(max int64) *blobStore {
	return &blobStore{max: max, blobs: map[string]*upload{}}
}

func (b *blobStore) put(id string, u *upload) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := strconv.FormatInt(int64(u.user), 10) + "/" + id
	if old, ok := b.blobs[key]; ok {
		old.expires = u.expires
		return
	}
	now := time.Now()
	for len(b.order) > 0 && (b.size+int64(len(u.data)) > b.max || b.blobs[b.order[0]] == nil || b.blobs[b.order[0]].expires.Before(now)) {
		if old := b.blobs[b.order[0]]; old != nil {
			b.size -= int64(len(old.data))
			delete(b.blobs, b.order[0])
		}
		b.order = b.order[1:]
	}
	b.blobs[key] = u
	b.order = append(b.order, key)
	b.size += int64(len(u.data))
}

func (b *blobStore) get(user mailstore.UserID, id string) (*upload, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.blobs[strconv.FormatInt(int64(user), 10)+"/"+id]
	if !ok || u.expires.Before(time.Now()) {
		return nil, false
	}
	return u, true
}

// serveUpload answers POST /jmap/upload/{accountId}/ (RFC 8620 §6.1).
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, u *user) {
	if r.PathValue("accountId") != accountID(u.ID) {
		problem(w, http.StatusNotFound, "about:blank", "No such account", nil)
		return
	}
	if !s.acquire(s.uploading, u.ID, s.limits.MaxConcurrentUpload) {
		problem(w, http.StatusTooManyRequests, errLimit, "Too many concurrent uploads", map[string]any{"limit": "maxConcurrentUpload"})
		return
	}
	defer s.release(s.uploading, u.ID)
	data, err := io.ReadAll(io.LimitReader(r.Body, s.limits.MaxSizeUpload+1))
	if err != nil {
		problem(w, http.StatusBadRequest, "about:blank", "Upload not read", nil)
		return
	}
	if int64(len(data)) > s.limits.MaxSizeUpload {
		problem(w, http.StatusRequestEntityTooLarge, errLimit, "Upload larger than maxSizeUpload", map[string]any{"limit": "maxSizeUpload"})
		return
	}
	sum := sha256.Sum256(data)
	id := "U" + hex.EncodeToString(sum[:])
	typ := r.Header.Get("Content-Type")
	if typ == "" {
		typ = "application/octet-stream"
	}
	s.blobs.put(id, &upload{user: u.ID, data: data, typ: typ, expires: time.Now().Add(uploadLifetime)})
	writeJSON(w, http.StatusCreated, map[string]any{"accountId": accountID(u.ID), "blobId": id, "type": typ, "size": len(data)})
}

// blob returns the bytes of a blob of the call's account.
func (s *Server) blob(c *call, id string) ([]byte, bool) {
	data, _, ok := s.blobData(c.ctx, c.user.ID, id)
	return data, ok
}

// blobData resolves any blob id of user's to its bytes and natural
// media type. The blobs of an email with \Deleted are not found: RFC
// 8621 §4.1.1, it is not visible via JMAP.
func (s *Server) blobData(ctx context.Context, user mailstore.UserID, id string) ([]byte, string, bool) {
	switch {
	case strings.HasPrefix(id, "U"):
		up, ok := s.blobs.get(user, id)
		if !ok {
			return nil, "", false
		}
		return up.data, up.typ, true
	case strings.HasPrefix(id, "G"):
		n, ok := parseID(id, 'G')
		if !ok {
			return nil, "", false
		}
		emails, err := s.store.Emails(ctx, user, []mailstore.EmailID{mailstore.EmailID(n)}, mailstore.EmailOptions{Body: true})
		if err != nil || len(emails) == 0 || hidden(&emails[0]) {
			return nil, "", false
		}
		return emails[0].Raw, "message/rfc822", true
	case strings.HasPrefix(id, "P"):
		num, section, ok := strings.Cut(id[1:], "_")
		if !ok {
			return nil, "", false
		}
		n, ok := parseID("E"+num, 'E')
		if !ok {
			return nil, "", false
		}
		emails, err := s.store.Emails(ctx, user, []mailstore.EmailID{mailstore.EmailID(n)}, mailstore.EmailOptions{Parsed: true, Body: true})
		if err != nil || len(emails) == 0 || hidden(&emails[0]) {
			return nil, "", false
		}
		p := findPart(&emails[0].Parsed.Root, strings.ReplaceAll(section, "_", "."))
		if p == nil {
			return nil, "", false
		}
		return partContent(emails[0].Raw, p), p.Type + "/" + p.Subtype, true
	}
	return nil, "", false
}

// serveDownload answers GET /jmap/download/{accountId}/{blobId}/{name}
// (RFC 8620 §6.2): the bytes with the Content-Type the client asked for
// in accept (or the blob's own), and name as the file name.
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request, u *user) {
	if r.PathValue("accountId") != accountID(u.ID) {
		problem(w, http.StatusNotFound, "about:blank", "No such account", nil)
		return
	}
	data, typ, ok := s.blobData(r.Context(), u.ID, r.PathValue("blobId"))
	if !ok {
		problem(w, http.StatusNotFound, "about:blank", "No such blob", nil)
		return
	}
	if accept := r.URL.Query().Get("accept"); accept != "" {
		if _, _, err := mime.ParseMediaType(accept); err == nil {
			typ = accept
		}
	}
	w.Header().Set("Content-Type", typ)
	// The bytes are mail from anyone, served with the type the client
	// asked for: a browser must not run them as this origin's page.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": r.PathValue("name")}))
	// RFC 8620 §6.2: a blob never changes, so it may be cached for good.
	w.Header().Set("Cache-Control", "private, immutable, max-age=31536000")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data) // the client may be gone; nothing to tell it
}
