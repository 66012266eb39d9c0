package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"pushmail/imapd"
	"pushmail/internal/authlimit"
	"pushmail/mailstore"
	"pushmail/pop3d"
	"pushmail/smtpd"
	"pushmail/wakeup"
)

// Config is the whole configuration of "pushmail serve". It is read from
// defaults, then a TOML file (--config), then PUSHMAIL_* environment
// variables, then flags: each later source overrides the earlier ones.
// pushmail.sample.toml documents every key.
type Config struct {
	Data string `toml:"data"`
	// Store is where the mail is: "" for DATA/pushmail.db, sqlite:PATH or
	// a PATH for another SQLite file, or a postgres:// URL for a
	// PostgreSQL database that several servers may share
	// (storeLocation). The data directory keeps everything else.
	Store    string   `toml:"store"`
	Hostname string   `toml:"hostname"`
	Domains  []string `toml:"domains"`
	// Postmaster receives postmaster@ mail for domains without a
	// postmaster user or alias; empty: the first user (mailstore.Resolve).
	Postmaster string       `toml:"postmaster"`
	Listen     ListenConfig `toml:"listen"`
	TLS        TLSConfig    `toml:"tls"`
	Auth       AuthConfig   `toml:"auth"`
	Log        LogConfig    `toml:"log"`
	HTTP       HTTPConfig   `toml:"http"`
	Limits     LimitsConfig `toml:"limits"`
	// Webhooks are the operator's endpoints for StateChanges (package
	// wakeup), one [[webhook]] table each.
	Webhooks []WebhookConfig `toml:"webhook"`
	// PushRelay is the device-token relay; no URL: none.
	PushRelay PushRelayConfig `toml:"push_relay"`
}

// WebhookConfig is one [[webhook]] table: wakeup.Webhook.
type WebhookConfig struct {
	URL    string   `toml:"url"`
	Users  []string `toml:"users"` // addresses, or "*"
	Types  []string `toml:"types"` // Email, Mailbox; empty: both
	Secret string   `toml:"secret"`
}

// PushRelayConfig is the [push_relay] table: wakeup.Relay.
type PushRelayConfig struct {
	URL string `toml:"url"`
}

// ListenConfig holds the listener addresses; "" turns one off.
type ListenConfig struct {
	SMTP       string `toml:"smtp"`
	LMTP       string `toml:"lmtp"` // host:port or unix:/path
	Submission string `toml:"submission"`
	IMAP       string `toml:"imap"`
	IMAPS      string `toml:"imaps"`
	POP3       string `toml:"pop3"`
	POP3S      string `toml:"pop3s"`
	HTTP       string `toml:"http"`
	// ProxyProtocol names the listeners (smtp, lmtp, submission, imap,
	// imaps, pop3, pop3s; TCP only) that sit behind a proxy opening every connection
	// with a PROXY protocol v1 or v2 header, as HAProxy's send-proxy
	// does. On them, only peers in ProxyTrusted may connect, and each
	// must send the header (internal/proxylisten): limits, lockouts, the
	// loopback test for passwords and the logs then see the client.
	ProxyProtocol []string `toml:"proxy_protocol"`
	// ProxyTrusted are the proxies' addresses, as CIDR prefixes or IPs.
	ProxyTrusted []string `toml:"proxy_trusted"`
}

// proxyListeners are the listeners that may be marked for the PROXY
// protocol; the HTTP listener may not.
var proxyListeners = []string{"smtp", "lmtp", "submission", "imap", "imaps", "pop3", "pop3s"}

// proxyTrusted parses ProxyTrusted: a bare IP is a prefix of its full
// length.
func (l ListenConfig) proxyTrusted() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range l.ProxyTrusted {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP nor a CIDR prefix", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// proxied reports whether the listener name is marked for the PROXY
// protocol.
func (l ListenConfig) proxied(name string) bool {
	return slices.Contains(l.ProxyProtocol, name)
}

// TLSConfig names the certificate used by STARTTLS and implicit TLS:
// Cert/Key for every listener, unless SMTP or IMAP has its own.
type TLSConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// Dev makes a self-signed certificate for localhost in the data
	// directory when Cert and Key are not set: for local testing only.
	Dev bool `toml:"dev"`
	// SMTP overrides the certificate of the SMTP, LMTP and submission
	// listeners; IMAP that of the IMAP, IMAPS, POP3 and POP3S listeners
	// (the mail-access protocols, usually one host name).
	SMTP CertFiles `toml:"smtp"`
	IMAP CertFiles `toml:"imap"`
}

// CertFiles is a PEM certificate chain and its key.
type CertFiles struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// AuthConfig holds authentication policy.
type AuthConfig struct {
	// AllowInsecure allows passwords over plaintext connections from
	// non-loopback addresses.
	AllowInsecure bool `toml:"allow_insecure"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// HTTPConfig configures the admin HTTP listener.
type HTTPConfig struct {
	// Token, if set, is required as "Authorization: Bearer TOKEN" for
	// /metrics; /healthz stays open for load balancers.
	Token string `toml:"token"`
}

// LimitsConfig holds the resource limits against abuse.
type LimitsConfig struct {
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// MaxInflightBytes bounds the memory held by messages in transit,
	// all SMTP, LMTP and submission sessions and IMAP APPENDs together
	// (smtpd.Options.Budget and imapd.Options.Budget, one budget).
	MaxInflightBytes int64 `toml:"max_inflight_bytes"`
	// SpoolThresholdBytes: a message larger than this is received into a
	// file in DATA/spool instead of memory.
	SpoolThresholdBytes int64 `toml:"spool_threshold_bytes"`
	// MaxStoreBytes caps the store on disk, the database file and its
	// write-ahead log (0: only the disk does); deliveries past it fail as
	// on a full disk (mailstore.Options.MaxDatabaseBytes). SQLite only
	// (serveStoreLimits).
	MaxStoreBytes int64 `toml:"max_store_bytes"`
	// MinFreeBytes is the free space kept on the SQLite store's file
	// system: deliveries, APPEND and COPY that would leave less are
	// refused, so that deletes, which SQLite must first write to its log,
	// still work (mailstore.Options.MinFreeBytes). /healthz reports
	// "degraded", and SMTP answers MAIL with 452 4.3.1, while a message
	// of max_message_bytes would not fit. SQLite only (serveStoreLimits).
	MinFreeBytes  int64         `toml:"min_free_bytes"`
	MaxRecipients int           `toml:"max_recipients"`
	MaxConnsPerIP int           `toml:"max_conns_per_ip"`
	SMTPTimeout   time.Duration `toml:"smtp_timeout"`
	// MaxConns bounds the connections of each SMTP, LMTP and submission
	// listener, of IMAP (imap and imaps together) and of POP3 (pop3 and
	// pop3s together).
	MaxConns          int `toml:"max_conns"`
	SMTPMaxLineLength int `toml:"smtp_max_line_length"`
	// SMTPMaxPreAuthConns bounds the unauthenticated connections of each
	// SMTP, LMTP and submission listener; 0 (the default), or more than
	// MaxConns, means MaxConns. A full listener evicts the quietest of
	// them for a newcomer.
	SMTPMaxPreAuthConns int `toml:"smtp_max_preauth_conns"`
	// SMTPMaxIdleCommands bounds the SMTP commands outside a transaction
	// since the last MAIL (NOOP, RSET, EHLO, ...): past it, 421 4.7.0.
	SMTPMaxIdleCommands int           `toml:"smtp_max_idle_commands"`
	IMAPCommandTimeout  time.Duration `toml:"imap_command_timeout"`
	IMAPIdleTimeout     time.Duration `toml:"imap_idle_timeout"`
	IMAPLoginTimeout    time.Duration `toml:"imap_login_timeout"`
	// POP3IdleTimeout is how long a logged-in POP3 client may be
	// silent; at least 10 minutes (RFC 1939 §3).
	POP3IdleTimeout time.Duration `toml:"pop3_idle_timeout"`
	// IMAPMaxPreAuthConns bounds the IMAP connections not logged in (imap
	// and imaps together); 0 (the default), or more than MaxConns, means
	// MaxConns. When full, the oldest of them is closed for a newcomer.
	IMAPMaxPreAuthConns int `toml:"imap_max_preauth_conns"`
	// IMAPHibernate lets plaintext IMAP sessions in IDLE sleep without a
	// goroutine or buffers until something happens (imapd.Options.Hibernate).
	IMAPHibernate bool `toml:"imap_hibernate"`
	// Failed logins, over SMTP AUTH, IMAP and POP3 together (authlimit).
	AuthMaxFailuresPerIP      int           `toml:"auth_max_failures_per_ip"`
	AuthMaxFailuresPerAccount int           `toml:"auth_max_failures_per_account"`
	AuthWindow                time.Duration `toml:"auth_window"`
	AuthDelay                 time.Duration `toml:"auth_delay"`
}

// DefaultMinFreeBytes is limits.min_free_bytes by default: in bytes, not
// a share of the disk, since what the reserve is for, the write-ahead log
// of a delete and a message or two in flight, does not grow with the
// disk. 256 MiB holds a checkpoint's worth of log (the WAL is cut back to
// 16 MiB), several 25 MiB messages being spooled, and leaves an operator
// time to act on /healthz.
const DefaultMinFreeBytes = 256 << 20

// defaultConfig returns the built-in defaults: the dev ports on loopback.
func defaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return Config{
		Data:     "./pushmail-data",
		Hostname: host,
		Domains:  []string{"localhost"},
		Listen: ListenConfig{
			SMTP:       "127.0.0.1:2525",
			LMTP:       "127.0.0.1:2424",
			Submission: "127.0.0.1:5587",
			IMAP:       "127.0.0.1:1143",
			IMAPS:      "127.0.0.1:1993",
			POP3:       "127.0.0.1:1110",
			POP3S:      "127.0.0.1:1995",
			HTTP:       "127.0.0.1:8025",
		},
		Log: LogConfig{Level: "info", Format: "text"},
		Limits: LimitsConfig{
			MaxMessageBytes:           25 << 20,
			MinFreeBytes:              DefaultMinFreeBytes,
			MaxInflightBytes:          smtpd.DefaultInflightBytes,
			SpoolThresholdBytes:       smtpd.DefaultSpoolThreshold,
			MaxRecipients:             100,
			MaxConnsPerIP:             20,
			SMTPTimeout:               5 * time.Minute,
			MaxConns:                  smtpd.DefaultMaxConns,
			SMTPMaxLineLength:         smtpd.DefaultMaxLineLength,
			SMTPMaxIdleCommands:       smtpd.DefaultMaxIdleCommands,
			IMAPCommandTimeout:        imapd.DefaultCommandTimeout,
			IMAPIdleTimeout:           imapd.DefaultIdleTimeout,
			IMAPLoginTimeout:          imapd.DefaultLoginTimeout,
			IMAPHibernate:             true,
			POP3IdleTimeout:           pop3d.DefaultIdleTimeout,
			AuthMaxFailuresPerIP:      authlimit.DefaultPerIP,
			AuthMaxFailuresPerAccount: authlimit.DefaultPerAccount,
			AuthWindow:                authlimit.DefaultWindow,
			AuthDelay:                 authlimit.DefaultDelay,
		},
	}
}

// setting ties one Config field to its flag and environment variable.
type setting struct {
	flag   string
	key    string // the TOML key, for messages
	usage  string
	secret bool                // masked by "config check"
	field  func(c *Config) any // a pointer to the field
}

var settings = []setting{
	{flag: "data", key: "data", usage: "data directory: TLS and VAPID keys, the spool, the lock, and the store unless --store names another", field: func(c *Config) any { return &c.Data }},
	{flag: "store", key: "store", usage: storeUsage, field: func(c *Config) any { return &c.Store }},
	{flag: "hostname", key: "hostname", usage: "host name used in greetings and Received fields", field: func(c *Config) any { return &c.Hostname }},
	{flag: "domain", key: "domains", usage: "a mail domain served here, repeatable (env: comma-separated); users' and aliases' domains are served too", field: func(c *Config) any { return &c.Domains }},
	{flag: "postmaster", key: "postmaster", usage: "user or alias that gets postmaster@ mail for domains without a postmaster user or alias (default: the first user created)", field: func(c *Config) any { return &c.Postmaster }},
	{flag: "smtp", key: "listen.smtp", usage: "inbound SMTP (MX) address; empty: off", field: func(c *Config) any { return &c.Listen.SMTP }},
	{flag: "lmtp", key: "listen.lmtp", usage: "LMTP address, or unix:/path; empty: off", field: func(c *Config) any { return &c.Listen.LMTP }},
	{flag: "submission", key: "listen.submission", usage: "submission address (AUTH required); empty: off", field: func(c *Config) any { return &c.Listen.Submission }},
	{flag: "imap", key: "listen.imap", usage: "IMAP address (STARTTLS when a certificate is set); empty: off", field: func(c *Config) any { return &c.Listen.IMAP }},
	{flag: "imaps", key: "listen.imaps", usage: "IMAP over implicit TLS address (needs a certificate); empty: off", field: func(c *Config) any { return &c.Listen.IMAPS }},
	{flag: "pop3", key: "listen.pop3", usage: "POP3 address (STLS when a certificate is set); empty: off", field: func(c *Config) any { return &c.Listen.POP3 }},
	{flag: "pop3s", key: "listen.pop3s", usage: "POP3 over implicit TLS address (needs a certificate); empty: off", field: func(c *Config) any { return &c.Listen.POP3S }},
	{flag: "http", key: "listen.http", usage: "HTTP address for /healthz and /metrics; empty: off", field: func(c *Config) any { return &c.Listen.HTTP }},
	{flag: "proxy-protocol", key: "listen.proxy_protocol", usage: "listeners behind a proxy that sends a PROXY protocol v1/v2 header (smtp, lmtp, submission, imap, imaps, pop3, pop3s), repeatable (env: comma-separated); on them only --proxy-trusted peers may connect, and each must send the header", field: func(c *Config) any { return &c.Listen.ProxyProtocol }},
	{flag: "proxy-trusted", key: "listen.proxy_trusted", usage: "the proxies' networks for --proxy-protocol, as CIDR prefixes or IPs, repeatable (env: comma-separated)", field: func(c *Config) any { return &c.Listen.ProxyTrusted }},
	{flag: "tls-cert", key: "tls.cert", usage: "PEM certificate file for STARTTLS and implicit TLS (reloaded on SIGHUP)", field: func(c *Config) any { return &c.TLS.Cert }},
	{flag: "tls-key", key: "tls.key", usage: "PEM private key file for --tls-cert", field: func(c *Config) any { return &c.TLS.Key }},
	{flag: "smtp-tls-cert", key: "tls.smtp.cert", usage: "certificate for SMTP, LMTP and submission only (default: --tls-cert)", field: func(c *Config) any { return &c.TLS.SMTP.Cert }},
	{flag: "smtp-tls-key", key: "tls.smtp.key", usage: "key for --smtp-tls-cert", field: func(c *Config) any { return &c.TLS.SMTP.Key }},
	{flag: "imap-tls-cert", key: "tls.imap.cert", usage: "certificate for IMAP, IMAPS, POP3 and POP3S only (default: --tls-cert)", field: func(c *Config) any { return &c.TLS.IMAP.Cert }},
	{flag: "imap-tls-key", key: "tls.imap.key", usage: "key for --imap-tls-cert", field: func(c *Config) any { return &c.TLS.IMAP.Key }},
	{flag: "dev-tls", key: "tls.dev", usage: "without --tls-cert, use a self-signed certificate for localhost kept in the data directory (testing only)", field: func(c *Config) any { return &c.TLS.Dev }},
	{flag: "allow-insecure-auth", key: "auth.allow_insecure", usage: "allow passwords without TLS from non-loopback addresses", field: func(c *Config) any { return &c.Auth.AllowInsecure }},
	{flag: "log-level", key: "log.level", usage: "log level: debug, info, warn, error", field: func(c *Config) any { return &c.Log.Level }},
	{flag: "log-format", key: "log.format", usage: "log format: text or json", field: func(c *Config) any { return &c.Log.Format }},
	{flag: "http-token", key: "http.token", usage: "bearer token required for /metrics (empty: open)", secret: true, field: func(c *Config) any { return &c.HTTP.Token }},
	{flag: "max-message-bytes", key: "limits.max_message_bytes", usage: "largest message accepted, in bytes", field: func(c *Config) any { return &c.Limits.MaxMessageBytes }},
	{flag: "max-inflight-bytes", key: "limits.max_inflight_bytes", usage: "memory for messages in transit, all SMTP, LMTP and submission sessions together, in bytes; when it is spent, new transactions get 451 4.3.1", field: func(c *Config) any { return &c.Limits.MaxInflightBytes }},
	{flag: "spool-threshold-bytes", key: "limits.spool_threshold_bytes", usage: "a message larger than this is received into a file in DATA/" + spoolDir + " instead of memory, in bytes", field: func(c *Config) any { return &c.Limits.SpoolThresholdBytes }},
	{flag: "max-store-bytes", key: "limits.max_store_bytes", usage: "cap on the SQLite store's database file and write-ahead log, in bytes (0: none; not applied to PostgreSQL); past it, deliveries get 451 4.3.0 and APPEND NO [OVERQUOTA], as on a full disk, and MAIL 452 4.3.1 while a message of max-message-bytes would not fit", field: func(c *Config) any { return &c.Limits.MaxStoreBytes }},
	{flag: "min-free-bytes", key: "limits.min_free_bytes", usage: "free space kept on the SQLite store's file system for deletes, in bytes (0: none; not applied to PostgreSQL); below it, deliveries get 451 4.3.0, APPEND and COPY NO [OVERQUOTA]; while a message of max-message-bytes would not fit, /healthz says degraded and MAIL gets 452 4.3.1", field: func(c *Config) any { return &c.Limits.MinFreeBytes }},
	{flag: "max-recipients", key: "limits.max_recipients", usage: "most recipients per SMTP transaction", field: func(c *Config) any { return &c.Limits.MaxRecipients }},
	{flag: "max-conns-per-ip", key: "limits.max_conns_per_ip", usage: "most simultaneous connections from one IPv4 address or IPv6 /64, per listener", field: func(c *Config) any { return &c.Limits.MaxConnsPerIP }},
	{flag: "smtp-timeout", key: "limits.smtp_timeout", usage: "SMTP command read/write timeout (e.g. 5m)", field: func(c *Config) any { return &c.Limits.SMTPTimeout }},
	{flag: "max-conns", key: "limits.max_conns", usage: "most simultaneous connections on each SMTP, LMTP and submission listener, and on IMAP (imap and imaps together) and POP3 (pop3 and pop3s together)", field: func(c *Config) any { return &c.Limits.MaxConns }},
	{flag: "smtp-max-preauth-conns", key: "limits.smtp_max_preauth_conns", usage: "most simultaneous unauthenticated connections on each SMTP, LMTP and submission listener (0: max-conns); when full, the quietest is closed (421 4.3.2) for a new one", field: func(c *Config) any { return &c.Limits.SMTPMaxPreAuthConns }},
	{flag: "smtp-max-idle-commands", key: "limits.smtp_max_idle_commands", usage: "most SMTP commands outside a transaction since the last MAIL (NOOP, RSET, VRFY, HELP, EHLO...); past it, 421 4.7.0 and the connection is closed", field: func(c *Config) any { return &c.Limits.SMTPMaxIdleCommands }},
	{flag: "smtp-max-line-length", key: "limits.smtp_max_line_length", usage: "longest SMTP command or DATA line, in bytes with CRLF (at least 1000)", field: func(c *Config) any { return &c.Limits.SMTPMaxLineLength }},
	{flag: "imap-command-timeout", key: "limits.imap_command_timeout", usage: "IMAP: time for a command line, and for the first command before login", field: func(c *Config) any { return &c.Limits.IMAPCommandTimeout }},
	{flag: "imap-idle-timeout", key: "limits.imap_idle_timeout", usage: "IMAP: how long a logged-in client may be silent, in IDLE or between commands (at least 30m, RFC 9051)", field: func(c *Config) any { return &c.Limits.IMAPIdleTimeout }},
	{flag: "imap-login-timeout", key: "limits.imap_login_timeout", usage: "IMAP: time from connecting to logging in", field: func(c *Config) any { return &c.Limits.IMAPLoginTimeout }},
	{flag: "imap-hibernate", key: "limits.imap_hibernate", usage: "IMAP: sessions in IDLE (plaintext or TLS) sleep without a goroutine or buffers until the client writes, their mailbox changes or they time out (Linux)", field: func(c *Config) any { return &c.Limits.IMAPHibernate }},
	{flag: "pop3-idle-timeout", key: "limits.pop3_idle_timeout", usage: "POP3: how long a logged-in client may be silent (at least 10m, RFC 1939)", field: func(c *Config) any { return &c.Limits.POP3IdleTimeout }},
	{flag: "imap-max-preauth-conns", key: "limits.imap_max_preauth_conns", usage: "IMAP: most simultaneous connections not logged in, imap and imaps together (0: max-conns); when they or max-conns are reached, the oldest is closed (* BYE [UNAVAILABLE]) for a new one", field: func(c *Config) any { return &c.Limits.IMAPMaxPreAuthConns }},
	{flag: "auth-max-failures-per-ip", key: "limits.auth_max_failures_per_ip", usage: "failed logins (SMTP AUTH, IMAP and POP3 together) from one IP before it is refused for auth-window", field: func(c *Config) any { return &c.Limits.AuthMaxFailuresPerIP }},
	{flag: "auth-max-failures-per-account", key: "limits.auth_max_failures_per_account", usage: "failed logins for one account before it is refused, for auth-window, from addresses it has not logged in from", field: func(c *Config) any { return &c.Limits.AuthMaxFailuresPerAccount }},
	{flag: "auth-window", key: "limits.auth_window", usage: "how long failed logins are remembered, and a refusal lasts, after the last failure", field: func(c *Config) any { return &c.Limits.AuthWindow }},
	{flag: "auth-delay", key: "limits.auth_delay", usage: "pause before answering a failed login; doubles per failure, up to 32 times", field: func(c *Config) any { return &c.Limits.AuthDelay }},
}

// envName is the environment variable of a setting: PUSHMAIL_ and the
// flag name in upper case with _ for -.
func (s setting) envName() string {
	return "PUSHMAIL_" + strings.ToUpper(strings.ReplaceAll(s.flag, "-", "_"))
}

// set parses v into the setting's field. Lists are comma-separated.
func (s setting) set(c *Config, v string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = v
	case *[]string:
		*p = nil
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*p = append(*p, item)
			}
		}
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", v)
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", v)
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want a duration such as 30s or 5m, got %q", v)
		}
		*p = d
	default:
		panic(fmt.Sprintf("setting %s: unhandled field type %T", s.flag, p))
	}
	return nil
}

// configFlags registers every setting on fs. Flag values are not applied
// at parse time but collected, so that they can override the file and the
// environment afterwards (see loadConfig).
func configFlags(fs *flag.FlagSet) (configFile *string, applyFlags func(c *Config) error) {
	def := defaultConfig()
	type given struct {
		s setting
		v string
	}
	var flagValues []given
	for _, s := range settings {
		usage := fmt.Sprintf("%s (env %s, key %s)", s.usage, s.envName(), s.key)
		if d := formatValue(s.field(&def)); d != "" && d != "false" {
			usage += fmt.Sprintf(" (default %q)", d)
		}
		record := func(v string) error {
			// Validate now, for a clear usage error.
			var scratch Config
			if err := s.set(&scratch, v); err != nil {
				return err
			}
			flagValues = append(flagValues, given{s, v})
			return nil
		}
		if _, ok := s.field(&def).(*bool); ok {
			fs.BoolFunc(s.flag, usage, record)
		} else {
			fs.Func(s.flag, usage, record)
		}
	}
	configFile = fs.String("config", os.Getenv("PUSHMAIL_CONFIG"), "TOML configuration file (env PUSHMAIL_CONFIG); see pushmail.sample.toml")
	applyFlags = func(c *Config) error {
		seenList := map[string]bool{}
		for _, g := range flagValues {
			if list, ok := g.s.field(c).(*[]string); ok {
				// A repeated list flag accumulates: --domain a --domain b.
				if !seenList[g.s.flag] {
					seenList[g.s.flag] = true
					*list = nil
				}
				var tmp Config
				if err := g.s.set(&tmp, g.v); err != nil {
					return fmt.Errorf("--%s: %w", g.s.flag, err)
				}
				*list = append(*list, *g.s.field(&tmp).(*[]string)...)
				continue
			}
			if err := g.s.set(c, g.v); err != nil {
				return fmt.Errorf("--%s: %w", g.s.flag, err)
			}
		}
		return nil
	}
	return configFile, applyFlags
}

// loadConfig builds the effective configuration: defaults, then file (if
// not ""), then environment. Flags are applied by the caller.
func loadConfig(file string, env func(string) (string, bool)) (Config, error) {
	c := defaultConfig()
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		if err := decodeConfig(data, &c); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", file, err)
		}
	}
	for _, s := range settings {
		if v, ok := env(s.envName()); ok {
			if err := s.set(&c, v); err != nil {
				return Config{}, fmt.Errorf("%s: %w", s.envName(), err)
			}
		}
	}
	return c, nil
}

// decodeConfig reads TOML into c. Unknown keys are errors: a misspelt key
// silently ignored is a limit silently not applied.
func decodeConfig(data []byte, c *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		return err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown key(s): %s", strings.Join(keys, ", "))
	}
	return nil
}

// validate checks values that a type alone does not.
func (c *Config) validate() error {
	var errs []error
	if c.Data == "" {
		errs = append(errs, errors.New("data: must not be empty"))
	} else if _, err := storeLocation(c.Data, c.Store); err != nil {
		errs = append(errs, err)
	}
	if len(c.Domains) == 0 {
		errs = append(errs, errors.New("domains: at least one domain"))
	}
	if c.Postmaster != "" {
		if _, err := mailstore.NormalizeAddress(c.Postmaster); err != nil {
			errs = append(errs, fmt.Errorf("postmaster: %w", err))
		}
	}
	for _, f := range []struct {
		name string
		CertFiles
	}{{"tls", CertFiles{c.TLS.Cert, c.TLS.Key}}, {"tls.smtp", c.TLS.SMTP}, {"tls.imap", c.TLS.IMAP}} {
		if (f.Cert == "") != (f.Key == "") {
			errs = append(errs, fmt.Errorf("%s: cert and key go together", f.name))
		}
	}
	errs = append(errs, c.Listen.validateProxy()...)
	errs = append(errs, c.validateWakeups()...)
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: want text or json, got %q", c.Log.Format))
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		errs = append(errs, err)
	}
	if c.Limits.MaxMessageBytes <= 0 {
		errs = append(errs, errors.New("limits.max_message_bytes: must be positive"))
	}
	if c.Limits.MaxInflightBytes <= 0 {
		errs = append(errs, errors.New("limits.max_inflight_bytes: must be positive"))
	}
	if c.Limits.SpoolThresholdBytes <= 0 {
		errs = append(errs, errors.New("limits.spool_threshold_bytes: must be positive"))
	}
	if c.Limits.MaxStoreBytes < 0 {
		errs = append(errs, errors.New("limits.max_store_bytes: must not be negative"))
	}
	if c.Limits.MinFreeBytes < 0 {
		errs = append(errs, errors.New("limits.min_free_bytes: must not be negative"))
	}
	if c.Limits.MaxRecipients <= 0 {
		errs = append(errs, errors.New("limits.max_recipients: must be positive"))
	}
	if c.Limits.MaxConnsPerIP < 0 {
		errs = append(errs, errors.New("limits.max_conns_per_ip: must not be negative"))
	}
	if c.Limits.SMTPTimeout <= 0 {
		errs = append(errs, errors.New("limits.smtp_timeout: must be positive"))
	}
	for _, l := range []struct {
		key string
		n   int
	}{
		{"limits.max_conns", c.Limits.MaxConns},
		{"limits.smtp_max_idle_commands", c.Limits.SMTPMaxIdleCommands},
		{"limits.auth_max_failures_per_ip", c.Limits.AuthMaxFailuresPerIP},
		{"limits.auth_max_failures_per_account", c.Limits.AuthMaxFailuresPerAccount},
	} {
		if l.n <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", l.key))
		}
	}
	if c.Limits.SMTPMaxPreAuthConns < 0 {
		errs = append(errs, errors.New("limits.smtp_max_preauth_conns: must not be negative"))
	}
	if c.Limits.IMAPMaxPreAuthConns < 0 {
		errs = append(errs, errors.New("limits.imap_max_preauth_conns: must not be negative"))
	}
	for _, l := range []struct {
		key string
		d   time.Duration
	}{
		{"limits.imap_command_timeout", c.Limits.IMAPCommandTimeout},
		{"limits.imap_login_timeout", c.Limits.IMAPLoginTimeout},
		{"limits.auth_window", c.Limits.AuthWindow},
		{"limits.auth_delay", c.Limits.AuthDelay},
	} {
		if l.d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", l.key))
		}
	}
	if c.Limits.SMTPMaxLineLength < 1000 {
		// RFC 5321 §4.5.3.1.6: a text line may be 1000 octets with CRLF.
		errs = append(errs, errors.New("limits.smtp_max_line_length: must be at least 1000 (RFC 5321)"))
	}
	if c.Limits.POP3IdleTimeout < pop3d.MinIdleTimeout {
		// RFC 1939 §3: an autologout timer "MUST be of at least 10
		// minutes' duration".
		errs = append(errs, errors.New("limits.pop3_idle_timeout: must be at least 10m (RFC 1939 §3)"))
	}
	if c.Limits.IMAPIdleTimeout < 30*time.Minute {
		// RFC 9051 §5.4: an inactivity autologout timer of at least 30
		// minutes; clients re-issue IDLE every 29 (RFC 2177 §3).
		errs = append(errs, errors.New("limits.imap_idle_timeout: must be at least 30m (RFC 9051 §5.4)"))
	}
	return errors.Join(errs...)
}

// validateProxy checks the PROXY protocol settings.
func (l ListenConfig) validateProxy() []error {
	var errs []error
	addrs := map[string]string{"smtp": l.SMTP, "lmtp": l.LMTP, "submission": l.Submission, "imap": l.IMAP, "imaps": l.IMAPS, "pop3": l.POP3, "pop3s": l.POP3S}
	for _, name := range l.ProxyProtocol {
		addr, ok := addrs[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("listen.proxy_protocol: unknown listener %q (want %s)", name, strings.Join(proxyListeners, ", ")))
		case strings.HasPrefix(addr, "unix:"):
			errs = append(errs, fmt.Errorf("listen.proxy_protocol: %s is a unix socket; the PROXY protocol is for TCP listeners", name))
		}
	}
	if _, err := l.proxyTrusted(); err != nil {
		errs = append(errs, fmt.Errorf("listen.proxy_trusted: %w", err))
	}
	if len(l.ProxyProtocol) > 0 && len(l.ProxyTrusted) == 0 {
		errs = append(errs, errors.New("listen.proxy_trusted: name the proxies' networks for listen.proxy_protocol"))
	}
	return errs
}

// masked returns a copy of c with secrets replaced, for printing.
func (c Config) masked() Config {
	c.Store = mailstore.RedactURL(c.Store)
	for _, s := range settings {
		if p, ok := s.field(&c).(*string); ok && s.secret && *p != "" {
			*p = "********"
		}
	}
	c.Domains = append([]string(nil), c.Domains...)
	c.Webhooks = slices.Clone(c.Webhooks)
	for i := range c.Webhooks {
		if c.Webhooks[i].Secret != "" {
			c.Webhooks[i].Secret = "********"
		}
	}
	return c
}

// writeTOML prints c as TOML.
func (c Config) writeTOML(w io.Writer) error {
	return toml.NewEncoder(w).Encode(c)
}

func formatValue(p any) string {
	v := reflect.ValueOf(p).Elem()
	switch x := v.Interface().(type) {
	case []string:
		return strings.Join(x, ",")
	default:
		return fmt.Sprint(x)
	}
}

// runConfig implements "pushmail config check FILE".
func runConfig(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: pushmail config check FILE\n\nValidates FILE and prints the effective configuration\n(defaults < FILE < PUSHMAIL_* environment), secrets masked.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return errHelp
		}
		return errUsage
	}
	fs := newFlagSet("config check", "FILE", stderr)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	c, err := loadConfig(fs.Arg(0), os.LookupEnv)
	if err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c.masked().writeTOML(stdout)
}

// validateWakeups checks the [[webhook]] and [push_relay] tables.
func (c *Config) validateWakeups() []error {
	var errs []error
	seen := map[string]bool{}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhook[%d]", i)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.url: want an http or https URL, got %q", key, w.URL))
		}
		if seen[w.URL] {
			errs = append(errs, fmt.Errorf("%s.url: %s is configured twice", key, w.URL))
		}
		seen[w.URL] = true
		if len(w.Users) == 0 {
			errs = append(errs, fmt.Errorf("%s.users: name the users watched, or \"*\" for all", key))
		}
		for j, u := range w.Users {
			if u == "*" {
				continue
			}
			n, err := mailstore.NormalizeAddress(u)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.users[%d]: %w", key, j, err))
				continue
			}
			c.Webhooks[i].Users[j] = n
		}
		for _, t := range w.Types {
			if t != "Email" && t != "Mailbox" {
				errs = append(errs, fmt.Errorf("%s.types: want Email or Mailbox, got %q", key, t))
			}
		}
	}
	if c.PushRelay.URL != "" {
		if u, err := url.Parse(c.PushRelay.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("push_relay.url: want an http or https URL, got %q", c.PushRelay.URL))
		}
	}
	return errs
}

// webhooks returns the [[webhook]] tables as the engine takes them.
func (c *Config) webhooks() []wakeup.Webhook {
	var out []wakeup.Webhook
	for _, w := range c.Webhooks {
		out = append(out, wakeup.Webhook{URL: w.URL, Users: w.Users, Types: w.Types, Secret: w.Secret})
	}
	return out
}

// relay returns the [push_relay] table as the engine takes it; nil when
// it has no URL.
func (c *Config) relay() *wakeup.Relay {
	if c.PushRelay.URL == "" {
		return nil
	}
	return &wakeup.Relay{URL: c.PushRelay.URL}
}
