package wakeup

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"pushmail/mailstore"
)

// pushService stands in for a browser's push service and the browser
// behind it: it checks each POST's VAPID signature (RFC 8292) and
// decrypts its payload (RFC 8291) with the subscription's private key.
type pushService struct {
	t       *testing.T
	srv     *httptest.Server
	vapid   VAPID
	key     *ecdh.PrivateKey // the subscriber's (the browser's) key pair
	auth    []byte           // its auth secret
	mu      sync.Mutex
	status  int // answer; 0: 201
	got     chan string
	invalid []string // what failed a check
}

func newPushService(t *testing.T, vapid VAPID) *pushService {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &pushService{t: t, vapid: vapid, key: key, auth: make([]byte, 16), got: make(chan string, 100)}
	rand.Read(p.auth)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pushService) keys() (p256dh, auth string) {
	return base64.RawURLEncoding.EncodeToString(p.key.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(p.auth)
}

func (p *pushService) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	plain, err := p.check(r, body)
	p.mu.Lock()
	status := p.status
	if err != nil {
		p.invalid = append(p.invalid, err.Error())
	}
	p.mu.Unlock()
	if status == 0 {
		status = http.StatusCreated
	}
	w.WriteHeader(status)
	if err == nil {
		p.got <- plain
	}
}

// check verifies the VAPID header and the RFC 8030 headers, and returns
// the decrypted payload.
func (p *pushService) check(r *http.Request, body []byte) (string, error) {
	if r.Header.Get("TTL") == "" {
		return "", errors.New("no TTL header (RFC 8030 §5.2)")
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		return "", fmt.Errorf("Content-Encoding %q, want aes128gcm", r.Header.Get("Content-Encoding"))
	}
	// RFC 8292 §3: Authorization: vapid t=<JWT>, k=<public key>.
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "vapid t=")
	jwt, k, ok2 := strings.Cut(rest, ", k=")
	if !ok || !ok2 || k != p.vapid.PublicKey {
		return "", fmt.Errorf("Authorization %q, want vapid with the server's key", auth)
	}
	if err := verifyJWT(jwt, k, "http://"+r.Host); err != nil {
		return "", err
	}
	return decrypt(p.key, p.auth, body)
}

// verifyJWT checks an ES256 JWT's signature with the public key k and
// its audience and expiry (RFC 8292 §2).
func verifyJWT(token, k, aud string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("JWT is not three parts")
	}
	raw, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return err
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), raw)
	if x == nil {
		return errors.New("VAPID key is not a P-256 point")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("JWT signature: %v (%d bytes)", err, len(sig))
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(&ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("JWT signature does not verify with the VAPID key")
	}
	claimsJSON, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(claimsJSON, &claims); err != nil {
		return err
	}
	if claims.Aud != aud || claims.Exp < time.Now().Unix() || claims.Sub == "" {
		return fmt.Errorf("JWT claims %+v, want aud %s, a future exp and a sub", claims, aud)
	}
	return nil
}

// decrypt undoes RFC 8291's encryption of a push message (one aes128gcm
// record, RFC 8188) with the subscriber's private key and auth secret.
func decrypt(key *ecdh.PrivateKey, authSecret, body []byte) (string, error) {
	if len(body) < 21 {
		return "", errors.New("body shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen || rs < 18 {
		return "", fmt.Errorf("aes128gcm header: keyid %d bytes, rs %d", idlen, rs)
	}
	asPublic, ciphertext := body[21:21+idlen], body[21+idlen:]
	peer, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return "", err
	}
	shared, err := key.ECDH(peer)
	if err != nil {
		return "", err
	}
	mac := func(k []byte, parts ...[]byte) []byte {
		h := hmac.New(sha256.New, k)
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	// RFC 8291 §3.4.
	prkKey := mac(authSecret, shared)
	keyInfo := append(append([]byte("WebPush: info\x00"), key.PublicKey().Bytes()...), asPublic...)
	ikm := mac(prkKey, keyInfo, []byte{1})
	prk := mac(salt, ikm)
	cek := mac(prk, []byte("Content-Encoding: aes128gcm\x00\x01"))[:16]
	nonce := mac(prk, []byte("Content-Encoding: nonce\x00\x01"))[:12]
	block, err := aes.NewCipher(cek)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return "", fmt.Errorf("decrypt: %w", err)
	}
	// RFC 8188 §2: the last record ends in 0x02, then zero padding.
	plain = []byte(strings.TrimRight(string(plain), "\x00"))
	if len(plain) == 0 || plain[len(plain)-1] != 2 {
		return "", errors.New("no last-record delimiter")
	}
	return string(plain[:len(plain)-1]), nil
}

func newVAPID(t *testing.T) VAPID {
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	return VAPID{PublicKey: pub, PrivateKey: priv, Subscriber: "mailto:postmaster@localhost"}
}

// TestWebPush: a new push subscription is sent a PushVerification; until
// the client sets the code nothing else is sent; then one delivery is
// exactly one StateChange, encrypted for the subscriber and signed with
// the server's VAPID key. A 410 from the push service destroys the
// subscription.
func TestWebPush(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vapid := newVAPID(t)
	ps := newPushService(t, vapid)
	eng := e.engine(Options{VAPID: &vapid})
	alice := e.rcpt["alice@localhost"].User
	p256dh, auth := ps.keys()
	id, err := e.store.CreatePushSubscription(ctx, mailstore.PushSubscription{User: alice, DeviceClientID: "browser",
		URL: ps.srv.URL + "/push/1", P256DH: p256dh, Auth: auth, Code: "v-123", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var v PushVerification
	if err := json.Unmarshal([]byte(ps.next(t)), &v); err != nil || v.Type != "PushVerification" ||
		v.PushSubscriptionID != SubscriptionID(id) || v.VerificationCode != "v-123" {
		t.Fatalf("first push %+v, %v; want the PushVerification", v, err)
	}
	e.deliver("alice@localhost") // not verified: nothing
	sub, err := e.store.PushSubscription(ctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	sub.VerificationCode = v.VerificationCode
	if err := e.store.UpdatePushSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	e.deliver("alice@localhost")
	var sc StateChange
	if err := json.Unmarshal([]byte(ps.next(t)), &sc); err != nil || sc.Type != "StateChange" {
		t.Fatalf("push after verifying: %+v, %v", sc, err)
	}
	account := fmt.Sprintf("u%d", alice)
	if sc.Changed[account]["Email"] != "3" {
		t.Errorf("StateChange %+v, want alice's Email state 3 (two deliveries)", sc)
	}
	waitPending(t, eng, "webpush", 0)
	select {
	case extra := <-ps.got:
		t.Errorf("one push too many: %q", extra)
	default:
	}

	ps.mu.Lock()
	ps.status = http.StatusGone
	ps.mu.Unlock()
	e.deliver("alice@localhost")
	ps.next(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := e.store.PushSubscriptions(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription still stored after its push service answered 410")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.invalid) > 0 {
		t.Errorf("pushes that failed the push service's checks: %q", ps.invalid)
	}
}

func (p *pushService) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-p.got:
		return s
	case <-time.After(30 * time.Second):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("no valid push reached the push service (invalid: %q)", p.invalid)
		return ""
	}
}

// TestWebPushPendingSurvivesRestart: a StateChange queued for a verified
// subscription whose push service did not answer before the engine
// stopped is delivered by the next engine, after the store is reopened.
func TestWebPushPendingSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vapid := newVAPID(t)
	ps := newPushService(t, vapid)
	alice := e.rcpt["alice@localhost"].User
	p256dh, auth := ps.keys()
	id, err := e.store.CreatePushSubscription(ctx, mailstore.PushSubscription{User: alice, DeviceClientID: "browser",
		URL: ps.srv.URL + "/push/1", P256DH: p256dh, Auth: auth, Code: "c", VerificationCode: "c", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// The first engine reaches a push service that never answers.
	black, err := newBlackHole(t)
	if err != nil {
		t.Fatal(err)
	}
	eng := e.engine(Options{VAPID: &vapid, Client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, black)
		}}}})
	e.deliver("alice@localhost")
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := e.store.PendingPushes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 1 && left[0].Endpoint == webPushName(id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending pushes in the store: %+v, want the subscription's", left)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	e.store.Close()
	e.open()
	e.engine(Options{VAPID: &vapid})
	var sc StateChange
	if err := json.Unmarshal([]byte(ps.next(t)), &sc); err != nil || sc.Type != "StateChange" {
		t.Fatalf("push after restart: %+v, %v", sc, err)
	}
}

// newBlackHole listens on loopback and accepts connections that it never
// answers; it returns the address.
func newBlackHole(t *testing.T) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String(), nil
}
