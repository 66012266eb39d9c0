package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"

	"pushmail/notify"
)

// UserID identifies a user.
type UserID int64

// User is an account that can log in and receive mail.
type User struct {
	ID      UserID
	Address string // normalised by NormalizeAddress: local part folded, domain in A-labels
	Created time.Time
}

// DefaultMailboxes are created for every new user, with their RFC 6154
// special-use attributes.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

// NormalizeAddress checks that addr is a plain local@domain address and
// returns it in the one form it is stored and compared in: the local part
// folded by foldLocal, the domain in A-label form (see normalizeDomain).
// Local parts are matched case-insensitively, as users expect, though RFC
// 5321 §2.4 lets a server treat them as case sensitive. Quoted local
// parts, source routes, empty parts and the routing characters % and !
// (the "percent hack" and bang paths, RFC 5321 appendix C and §2.3.11: a
// way to make a server relay) are refused.
func NormalizeAddress(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", fmt.Errorf("%w: %q: want local@domain", ErrInvalidAddress, addr)
	}
	local := addr[:at]
	domain, err := normalizeDomain(addr[at+1:])
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidAddress, addr, err)
	}
	if len(local) > 64 || !utf8.ValidString(local) {
		return "", fmt.Errorf("%w: %q: bad local part", ErrInvalidAddress, addr)
	}
	for _, r := range local {
		// Dot-atom text (RFC 5322 §3.2.3) plus UTF-8 (RFC 6531).
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`"(),:;<>@[\]%!`, r) {
			return "", fmt.Errorf("%w: %q: character %q not allowed in a local part", ErrInvalidAddress, addr, r)
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", fmt.Errorf("%w: %q: misplaced dot in local part", ErrInvalidAddress, addr)
	}
	local, err = foldLocal(local)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidAddress, addr, err)
	}
	return local + "@" + domain, nil
}

// localPartClass is the PRECIS IdentifierClass (RFC 8264 §4.2): letters
// and digits of any script plus printable ASCII, without compatibility
// characters, symbols, spaces or controls.
var localPartClass = precis.UsernameCasePreserved.Allowed()

// foldLocal returns the form a local part is compared in.
//
// ASCII local parts are lower-cased, A-Z to a-z and nothing else, as
// always. A non-ASCII one (RFC 6531) must consist of characters of the
// PRECIS IdentifierClass as given, and is then mapped by the PRECIS
// UsernameCaseMapped profile (RFC 8265 §3.3: Unicode toLowerCase, NFC,
// the bidi rule). The class is checked before any mapping, which
// UsernameCaseMapped alone does not do: it lower-cases first, and the
// Kelvin sign K (U+212A) lower-cases to ASCII k, so "Kate" would reach
// kate's mailbox. strings.ToLower did the same. Checked first, the
// Kelvin sign, like every character with a compatibility or singleton
// decomposition (Ångström sign, fullwidth letters, ligatures), is refused
// rather than folded onto another spelling. What does fold, and why:
//   - case by Unicode's toLowerCase, not case folding: ẞ (U+1E9E) is ß,
//     but ß stays ß and is not "ss"; Σ is σ.
//   - İ (U+0130) is "i̇" (i and U+0307), its full lower case, and so not
//     ASCII i, which strings.ToLower made it; dotless ı stays ı. No
//     locale (Turkish) rules: the fold must be the same for everyone.
//   - NFC, so a decomposed "jörg" from one client is the precomposed one
//     from another.
//
// Stored addresses keep the form they were stored in. ASCII ones are
// unchanged by this fold; a non-ASCII one written before it can differ
// (İ stored as i, decomposed text, a character the class refuses), and
// is then no longer reachable under its stored spelling until an
// operator re-adds it. No migration rewrites them: such local parts were
// rare, and which of two colliding spellings keeps an account is the
// operator's choice.
func foldLocal(local string) (string, error) {
	ascii := true
	for i := 0; i < len(local); i++ {
		if local[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(local), nil
	}
	for _, r := range local {
		if !localPartClass.Contains(r) {
			return "", fmt.Errorf("character %U not allowed in a local part (PRECIS IdentifierClass, RFC 8264 §4.2)", r)
		}
	}
	f, err := precis.UsernameCaseMapped.String(local)
	if err != nil {
		return "", fmt.Errorf("local part: %w", err)
	}
	if len(f) > 64 {
		return "", errors.New("local part too long once folded")
	}
	return f, nil
}

// idnaProfile turns an internationalized domain name into A-labels: the
// UTS #46 mapping for lookup (case folding, NFC, full-width dots), then
// the IDNA2008 checks of RFC 5891 §5.4 (code points, hyphens, joiners)
// and the bidi rule of RFC 5893, non-transitional (ß and ς stay
// themselves, as IDNA2008 has them). STD3's ASCII rules are left to
// normalizeDomain's own check, which also admits '_'; the DNS lengths
// are checked on the A-labels.
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule(),
	idna.StrictDomainName(false), idna.VerifyDNSLength(true))

// normalizeDomain returns the one form a domain is stored and compared
// in: lower case, without a trailing dot, internationalized labels as
// A-labels. RFC 5890 §2.3.2.1: a U-label ("bücher") and its A-label
// ("xn--bcher-kva") are the same label, and RFC 6531 §3.2 lets a client
// with SMTPUTF8 use either while one without can use only the A-label.
// The A-label is the canonical form because it has a single spelling:
// the U-labels a user may type (upper case, decomposed, full-width) all
// map to it, it is ASCII so SQLite compares it byte for byte, and it is
// what the DNS holds. Pure-ASCII names without an "xn--" label skip
// IDNA, whose hyphen rules would refuse names accepted before.
func normalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || !utf8.ValidString(d) {
		return "", errors.New("bad domain")
	}
	if needsIDNA(d) {
		a, err := idnaProfile.ToASCII(d)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalidIDN, err)
		}
		d = a
	}
	d = strings.ToLower(d)
	if len(d) > 253 {
		return "", errors.New("bad domain")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return "", errors.New("bad domain label")
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z') {
				return "", fmt.Errorf("character %q not allowed in a domain", r)
			}
		}
	}
	return d, nil
}

// needsIDNA reports whether d has a non-ASCII character or an A-label
// (whose punycode must decode to a valid U-label, RFC 5891 §5.4).
func needsIDNA(d string) bool {
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			return true
		}
	}
	for label := range strings.SplitSeq(d, ".") {
		if len(label) >= 4 && strings.EqualFold(label[:4], "xn--") {
			return true
		}
	}
	return false
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// AddUser creates a user with the given password and the DefaultMailboxes.
func (s *Store) AddUser(ctx context.Context, address, password string) (User, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return User{}, err
	}
	if password == "" {
		return User{}, errors.New("add user: empty password")
	}
	// Hash outside the writer: bcrypt is slow on purpose.
	hash, err := s.hashPassword(password)
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", addr, err)
	}
	u := User{Address: addr, Created: time.Now().Truncate(time.Second)}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var exists int
		if err := tx.QueryRow("SELECT (SELECT COUNT(*) FROM users WHERE address = ?) + (SELECT COUNT(*) FROM aliases WHERE address = ?)",
			addr, addr).Scan(&exists); err != nil {
			return nil, err
		}
		if exists > 0 {
			return nil, ErrUserExists
		}
		var id int64
		err := tx.QueryRow("INSERT INTO users(id, address, domain, password, created) VALUES ("+nextIDSQL("users")+", ?, ?, ?, ?) RETURNING id",
			addr, domainOf(addr), hash, u.Created.Unix()).Scan(&id)
		if err != nil {
			return nil, err
		}
		u.ID = UserID(id)
		for _, mb := range DefaultMailboxes {
			if _, err := createMailboxTx(tx, u.ID, mb.Name, mb.SpecialUse, true); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", addr, err)
	}
	return u, nil
}

func (s *Store) hashPassword(password string) (string, error) {
	cost := s.opts.PasswordCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(hash), nil
}

// SetPassword replaces a user's password.
func (s *Store) SetPassword(ctx context.Context, address, password string) error {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	if password == "" {
		return errors.New("set password: empty password")
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return fmt.Errorf("set password for %s: %w", addr, err)
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		res, err := tx.Exec("UPDATE users SET password = ? WHERE address = ?", hash, addr)
		if err != nil {
			return nil, err
		}
		return nil, mustAffect(res, ErrNoSuchUser)
	})
	if err != nil {
		return fmt.Errorf("set password for %s: %w", addr, err)
	}
	return nil
}

// DeleteUser removes a user with all their mailboxes, messages and aliases.
func (s *Store) DeleteUser(ctx context.Context, address string) error {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var id int64
		if err := tx.QueryRow("SELECT id FROM users WHERE address = ?", addr).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, ErrNoSuchUser
			}
			return nil, err
		}
		var events []notify.Event
		rows, err := tx.Query("SELECT id FROM mailboxes WHERE user_id = ?", id)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var mb int64
			if err := rows.Scan(&mb); err != nil {
				rows.Close()
				return nil, err
			}
			events = append(events, notify.Event{Mailbox: mb, User: id, Kind: notify.MailboxChanged})
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		// Cascades to aliases, mailboxes, messages; the messages trigger
		// removes bodies no longer referenced.
		if _, err := tx.Exec("DELETE FROM users WHERE id = ?", id); err != nil {
			return nil, err
		}
		return events, nil
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", addr, err)
	}
	return nil
}

// Users lists all users, ordered by address.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, "SELECT id, address, created FROM users ORDER BY address")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		var u User
		var created int64
		if err := rows.Scan(&u.ID, &u.Address, &created); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.Created = time.Unix(created, 0)
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// Authenticate checks a user's password. Unknown users and wrong passwords
// both give ErrAuthFailed (and take the same bcrypt time), so a client
// cannot tell which addresses exist. A password verified against the
// user's current hash in the last few minutes is accepted without
// bcrypt (authcache.go): the HTTP API sends it with every request.
func (s *Store) Authenticate(ctx context.Context, address, password string) (User, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return User{}, ErrAuthFailed
	}
	var u User
	var hash string
	var created int64
	err = s.queryRow(ctx, "SELECT id, address, password, created FROM users WHERE address = ?", addr).
		Scan(&u.ID, &u.Address, &hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		// Spend the same time as a real check.
		_ = bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(password)) // result irrelevant: user unknown
		return User{}, ErrAuthFailed
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate %s: %w", addr, err)
	}
	now := time.Now()
	if !s.logins.verified(hash, password, now) {
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
			return User{}, ErrAuthFailed
		}
		s.logins.remember(hash, password, now)
	}
	u.Created = time.Unix(created, 0)
	return u, nil
}

// dummyHash returns a bcrypt hash, at the store's cost, that unknown users'
// passwords are compared against.
func (s *Store) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		h, err := s.hashPassword("pushmail-unknown-user")
		if err != nil {
			h = "$2a$10$invalid" // compare then fails fast; never matches
		}
		s.dummy = []byte(h)
	})
	return s.dummy
}

// AddAlias makes mail to alias go to the user target.
func (s *Store) AddAlias(ctx context.Context, alias, target string) error {
	a, err := NormalizeAddress(alias)
	if err != nil {
		return err
	}
	t, err := NormalizeAddress(target)
	if err != nil {
		return err
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var n int
		if err := tx.QueryRow("SELECT (SELECT COUNT(*) FROM users WHERE address = ?) + (SELECT COUNT(*) FROM aliases WHERE address = ?)",
			a, a).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, ErrUserExists
		}
		res, err := tx.Exec("INSERT INTO aliases(address, domain, user_id) SELECT ?, ?, id FROM users WHERE address = ?",
			a, domainOf(a), t)
		if err != nil {
			return nil, err
		}
		return nil, mustAffect(res, ErrNoSuchUser)
	})
	if err != nil {
		return fmt.Errorf("add alias %s -> %s: %w", a, t, err)
	}
	return nil
}

// DeleteAlias removes an alias.
func (s *Store) DeleteAlias(ctx context.Context, alias string) error {
	a, err := NormalizeAddress(alias)
	if err != nil {
		return err
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		res, err := tx.Exec("DELETE FROM aliases WHERE address = ?", a)
		if err != nil {
			return nil, err
		}
		return nil, mustAffect(res, ErrNoSuchUser)
	})
	if err != nil {
		return fmt.Errorf("delete alias %s: %w", a, err)
	}
	return nil
}

// IsLocalDomain reports whether mail for domain is delivered here: it is a
// configured domain, or the domain of a user or alias.
func (s *Store) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return false, nil
	}
	if s.domains[d] {
		return true, nil
	}
	var n int
	err = s.queryRow(ctx, "SELECT EXISTS(SELECT 1 FROM users WHERE domain = ?) OR EXISTS(SELECT 1 FROM aliases WHERE domain = ?)", d, d).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check domain %s: %w", d, err)
	}
	return n > 0, nil
}

// Recipient is a resolved local recipient: where a delivery goes.
type Recipient struct {
	User    UserID
	Address string    // the user's own address
	Mailbox MailboxID // the user's INBOX
	// Quota is the user's limits and usage as Resolve read them, in the
	// same query: advice for refusing a recipient early (Quota.Admits);
	// Deliver checks again within its write.
	Quota Quota
	// Header is prepended to this recipient's copy only (for example a
	// Delivered-To trace field); it must end in CRLF. Deliver fills nothing
	// in: the caller sets it.
	Header []byte
}

// Resolve finds the user that mail to address is delivered to: a user, an
// alias of one, or either with a "+tag" detail in the local part. It fails
// with ErrInvalidAddress, ErrNotLocal (the domain is not served here: a
// relay attempt) or ErrNoSuchUser.
//
// A found user or alias makes its domain local, so the domain is checked
// only when nothing is found: one query for an address that exists,
// whether or not its domain is in Options.Domains.
//
// Postmaster (RFC 5321 §4.5.1: every server MUST accept mail for
// "postmaster" at each of its domains, and "Postmaster" without a domain,
// case-insensitively) needs no configuration. Mail to postmaster@D, D a
// local domain, goes to
//
//  1. the user or alias postmaster@D, if there is one; else
//  2. Options.Postmaster, if it names a user or an alias; else
//  3. the first user created (the lowest user id),
//
// so it is refused only while no user exists. A bare "Postmaster" is
// postmaster@ the primary domain (the first of Options.Domains), or, with
// no domains configured, goes by rules 2 and 3.
func (s *Store) Resolve(ctx context.Context, address string) (Recipient, error) {
	if strings.EqualFold(address, "postmaster") {
		if s.primaryDomain == "" {
			return s.postmasterTarget(ctx)
		}
		address = "postmaster@" + s.primaryDomain
	}
	addr, err := NormalizeAddress(address)
	if err != nil {
		return Recipient{}, err
	}
	candidates := [2]string{addr}
	n := 1
	if plus := strings.IndexByte(addr, '+'); plus > 0 {
		candidates[1] = addr[:plus] + addr[strings.LastIndexByte(addr, '@'):]
		n = 2
	}
	for _, a := range candidates[:n] {
		r, err := s.lookup(ctx, a)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Recipient{}, fmt.Errorf("resolve %s: %w", addr, err)
		}
	}
	local, err := s.IsLocalDomain(ctx, domainOf(addr))
	if err != nil {
		return Recipient{}, err
	}
	if !local {
		return Recipient{}, fmt.Errorf("%w: %s", ErrNotLocal, domainOf(addr))
	}
	if base := candidates[n-1]; base[:strings.LastIndexByte(base, '@')] == "postmaster" {
		return s.postmasterTarget(ctx) // rules 2 and 3; rule 1 was the lookup above
	}
	return Recipient{}, fmt.Errorf("%w: %s", ErrNoSuchUser, addr)
}

// lookup resolves a normalised address that is a user's or an alias's;
// sql.ErrNoRows if it is neither.
func (s *Store) lookup(ctx context.Context, addr string) (Recipient, error) {
	var r Recipient
	err := s.queryRow(ctx, `
SELECT u.id, u.address, m.id, u.quota_storage, u.quota_messages, u.used_storage, u.used_messages
FROM users u JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX'
WHERE u.id = COALESCE((SELECT id FROM users WHERE address = ?), (SELECT user_id FROM aliases WHERE address = ?))`,
		addr, addr).Scan(&r.User, &r.Address, &r.Mailbox, &r.Quota.StorageLimit, &r.Quota.MessageLimit, &r.Quota.StorageUsed, &r.Quota.MessagesUsed)
	return r, err
}

// postmasterTarget is where postmaster mail goes when the domain has no
// postmaster user or alias: Options.Postmaster, or the first user (see
// Resolve). A configured postmaster that no longer exists is logged and
// skipped: postmaster mail is never refused while a user exists.
func (s *Store) postmasterTarget(ctx context.Context) (Recipient, error) {
	if s.postmaster != "" {
		r, err := s.lookup(ctx, s.postmaster)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Recipient{}, fmt.Errorf("resolve postmaster %s: %w", s.postmaster, err)
		}
		s.log.Warn("the configured postmaster is not a user or an alias; postmaster mail goes to the first user", "postmaster", s.postmaster)
	}
	var r Recipient
	err := s.queryRow(ctx, `
SELECT u.id, u.address, m.id, u.quota_storage, u.quota_messages, u.used_storage, u.used_messages
FROM users u JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX'
WHERE u.id = (SELECT min(id) FROM users)`).Scan(&r.User, &r.Address, &r.Mailbox, &r.Quota.StorageLimit, &r.Quota.MessageLimit, &r.Quota.StorageUsed, &r.Quota.MessagesUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Recipient{}, fmt.Errorf("%w: postmaster: no user exists", ErrNoSuchUser)
	}
	if err != nil {
		return Recipient{}, fmt.Errorf("resolve postmaster: %w", err)
	}
	return r, nil
}

// mustAffect turns "no row changed" into notFound.
func mustAffect(res sql.Result, notFound error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}
