package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"pushmail/imapd"
	"pushmail/internal/authlimit"
	"pushmail/internal/membudget"
	"pushmail/internal/proxylisten"
	"pushmail/jmap"
	"pushmail/mailstore"
	"pushmail/notify"
	"pushmail/pop3d"
	"pushmail/smtpd"
	"pushmail/wakeup"
	"pushmail/webinbox"
)

// shutdownTimeout bounds how long in-flight work may take after SIGTERM.
const shutdownTimeout = 20 * time.Second

func runServe(args []string, _ io.Reader, _, stderr io.Writer) error {
	fs := newFlagSet("serve", "", stderr)
	configFile, applyFlags := configFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pushmail serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := loadConfig(*configFile, os.LookupEnv)
	if err != nil {
		return err
	}
	if err := applyFlags(&cfg); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger, err := newLogger(cfg.Log.Level, cfg.Log.Format, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serve(ctx, cfg, logger)
}

func parseLevel(level string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("log.level: want debug, info, warn or error, got %q", level)
	}
	return lv, nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	lv, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format: want text or json, got %q", format)
}

// spoolDir is the directory, in the data directory, where smtpd receives
// messages over limits.spool_threshold_bytes.
const spoolDir = "spool"

// resetSpool empties and creates the spool directory and returns its
// path. smtpd removes each spool file as soon as it creates it, so there
// is nothing to keep; the data directory's lock is held, so no other
// server uses it.
func resetSpool(data string) (string, error) {
	dir := filepath.Join(data, spoolDir)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("empty spool directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create spool directory: %w", err)
	}
	return dir, nil
}

// serve runs the server until ctx is cancelled, then shuts down: the
// listeners stop, in-flight work finishes (or is cut off after
// shutdownTimeout), and the store closes last.
func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	// One server per data directory: the notifier is in-process.
	lock, err := lockDataDir(cfg.Data, "serve")
	if err != nil {
		return err
	}
	defer func() {
		if err := lock.Close(); err != nil {
			logger.Error("unlock data directory", "err", err)
		}
	}()
	location, err := storeLocation(cfg.Data, cfg.Store)
	if err != nil {
		return err
	}
	if storeLock, err := lockStoreDir(cfg.Data, location, "serve"); err != nil {
		return err
	} else if storeLock != nil {
		defer func() {
			if err := storeLock.Close(); err != nil {
				logger.Error("unlock the store's directory", "err", err)
			}
		}()
	}
	spool, err := resetSpool(cfg.Data)
	if err != nil {
		return err
	}
	smtpTLS, imapTLS, err := loadTLS(ctx, cfg, logger)
	if err != nil {
		return err
	}

	reg := newRegistry()
	hub := notify.New(0)
	registerHubMetrics(reg, hub)
	maxDatabaseBytes, minFreeBytes := serveStoreLimits(location, cfg.Limits, logger)
	store, err := mailstore.Open(ctx, location, mailstore.Options{
		Hub: hub, Logger: logger, Domains: cfg.Domains, Postmaster: cfg.Postmaster,
		MaxMessageSize:   cfg.Limits.MaxMessageBytes + 64<<10, // room for trace fields
		MaxDatabaseBytes: maxDatabaseBytes,
		MinFreeBytes:     minFreeBytes,
		OnCommit:         newStoreMetrics(reg).observe,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
	}()

	// One limiter for both protocols: guesses over SMTP AUTH and IMAP
	// count together.
	authLimiter := authlimit.New(authlimit.Config{
		PerIP:      cfg.Limits.AuthMaxFailuresPerIP,
		PerAccount: cfg.Limits.AuthMaxFailuresPerAccount,
		Window:     cfg.Limits.AuthWindow,
		Delay:      cfg.Limits.AuthDelay,
	})
	// One budget for message bytes in memory: SMTP, LMTP and submission
	// transfers and IMAP APPENDs draw on it together.
	inflight := membudget.New(cfg.Limits.MaxInflightBytes)
	smtpServer := smtpd.New(store, smtpd.Options{
		Hostname:          cfg.Hostname,
		TLSConfig:         smtpTLS,
		AllowInsecureAuth: cfg.Auth.AllowInsecure,
		Logger:            logger,
		MaxMessageBytes:   cfg.Limits.MaxMessageBytes,
		MaxRecipients:     cfg.Limits.MaxRecipients,
		ReadTimeout:       cfg.Limits.SMTPTimeout,
		WriteTimeout:      cfg.Limits.SMTPTimeout,
		MaxConnsPerIP:     cfg.Limits.MaxConnsPerIP,
		MaxConns:          cfg.Limits.MaxConns,
		MaxPreAuthConns:   cfg.Limits.SMTPMaxPreAuthConns,
		MaxIdleCommands:   cfg.Limits.SMTPMaxIdleCommands,
		MaxLineLength:     cfg.Limits.SMTPMaxLineLength,
		AuthLimiter:       authLimiter,
		Metrics:           smtpd.NewMetrics(reg),
		Budget:            inflight,
		SpoolDir:          spool,
		SpoolThreshold:    cfg.Limits.SpoolThresholdBytes,
	})
	appendLimit := uint32(min(cfg.Limits.MaxMessageBytes, 1<<32-1))
	imapServer := imapd.New(store, imapd.Options{
		TLSConfig:         imapTLS,
		AllowInsecureAuth: cfg.Auth.AllowInsecure,
		Logger:            logger,
		AppendLimit:       appendLimit,
		MaxConnsPerIP:     cfg.Limits.MaxConnsPerIP,
		MaxConns:          cfg.Limits.MaxConns,
		CommandTimeout:    cfg.Limits.IMAPCommandTimeout,
		IdleTimeout:       cfg.Limits.IMAPIdleTimeout,
		LoginTimeout:      cfg.Limits.IMAPLoginTimeout,
		MaxPreAuthConns:   cfg.Limits.IMAPMaxPreAuthConns,
		AuthLimiter:       authLimiter,
		Metrics:           imapd.NewMetrics(reg),
		Budget:            inflight,
		Hibernate:         cfg.Limits.IMAPHibernate,
	})
	// POP3 shares the IMAP certificate, the connection limits and the
	// failed-login limiter.
	pop3Server := pop3d.New(store, pop3d.Options{
		TLSConfig:         imapTLS,
		AllowInsecureAuth: cfg.Auth.AllowInsecure,
		Logger:            logger,
		MaxConnsPerIP:     cfg.Limits.MaxConnsPerIP,
		MaxConns:          cfg.Limits.MaxConns,
		IdleTimeout:       cfg.Limits.POP3IdleTimeout,
		AuthLimiter:       authLimiter,
		Metrics:           pop3d.NewMetrics(reg),
	})
	// The HTTP API (JMAP) shares the HTTP listener with /healthz and
	// /metrics, and the failed-login limiter with the other protocols.
	// The web inbox at / logs in with a session cookie that the API
	// accepts too; Web Push subscriptions are signed with the data
	// directory's VAPID key.
	webInbox := webinbox.New(webinbox.Options{Store: store, Logins: authLimiter, AllowInsecureAuth: cfg.Auth.AllowInsecure, Logger: logger})
	vapid, err := wakeupVAPID(cfg.Data, cfg.Hostname)
	if err != nil {
		return err
	}
	jmapServer := jmap.New(store, jmap.Options{
		Logger:            logger,
		AuthLimiter:       authLimiter,
		AllowInsecureAuth: cfg.Auth.AllowInsecure,
		Limits:            jmap.Limits{MaxSizeUpload: cfg.Limits.MaxMessageBytes},
		SessionAuth:       webInbox.Authenticate,
		VAPIDPublicKey:    vapid.PublicKey,
	})
	mux := adminHandler(store, reg, cfg.HTTP.Token)
	jmapServer.Register(mux)
	webInbox.Register(mux)
	// Wake-ups for clients that hold no connection: webhooks, the
	// device-token relay, Web Push. They leave from the engine's own
	// goroutines, never from a commit's.
	wakeups, err := wakeup.New(wakeup.Options{
		Store: store, Hub: hub, Webhooks: cfg.webhooks(), Relay: cfg.relay(), States: jmapServer.States, VAPID: vapid,
		Logger: logger, Metrics: wakeup.NewMetrics(reg),
	})
	if err != nil {
		return err
	}
	if err := wakeups.Start(ctx); err != nil {
		return err
	}
	defer func() {
		// After the listeners: nothing commits any more. What is still
		// pending is kept in the store for the next start.
		if err := wakeups.Close(); err != nil {
			logger.Error("stop the wake-up engine", "err", err)
		}
	}()
	httpServer := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}

	listen := cfg.Listen
	if listen.IMAPS != "" && imapTLS == nil {
		logger.Info("implicit-TLS IMAP is off: no certificate (set --tls-cert or --dev-tls)", "addr", listen.IMAPS)
		listen.IMAPS = ""
	}
	if listen.POP3S != "" && imapTLS == nil {
		logger.Info("implicit-TLS POP3 is off: no certificate (set --tls-cert or --dev-tls)", "addr", listen.POP3S)
		listen.POP3S = ""
	}
	services := []struct {
		name, addr string
		serve      func(net.Listener) error
	}{
		{"smtp", listen.SMTP, smtpServer.ServeSMTP},
		{"lmtp", listen.LMTP, smtpServer.ServeLMTP},
		{"submission", listen.Submission, smtpServer.ServeSubmission},
		{"imap", listen.IMAP, imapServer.Serve},
		{"imaps", listen.IMAPS, func(ln net.Listener) error { return imapServer.ServeTLS(ln, imapTLS) }},
		{"pop3", listen.POP3, pop3Server.Serve},
		{"pop3s", listen.POP3S, func(ln net.Listener) error { return pop3Server.ServeTLS(ln, imapTLS) }},
		{"http", listen.HTTP, func(ln net.Listener) error {
			if err := httpServer.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}},
	}
	// Open every listener before serving any, so a port in use fails the
	// start cleanly instead of leaving half a server running.
	var listeners []net.Listener
	for _, svc := range services {
		if svc.addr == "" {
			listeners = append(listeners, nil)
			continue
		}
		ln, err := listenAddr(svc.addr)
		if err != nil {
			for _, l := range listeners {
				if l != nil {
					l.Close()
				}
			}
			return fmt.Errorf("listen %s on %s: %w", svc.name, svc.addr, err)
		}
		listeners = append(listeners, ln)
	}
	proxyTrusted, err := cfg.Listen.proxyTrusted()
	if err != nil {
		return fmt.Errorf("listen.proxy_trusted: %w", err)
	}
	proxyRejected := newProxyMetrics(reg)
	errc := make(chan error, len(services))
	running := 0
	for i, svc := range services {
		ln := listeners[i]
		if ln == nil {
			continue
		}
		if cfg.Listen.proxied(svc.name) {
			// The header comes first, below everything: below the
			// servers' limits, which then count the client, and below
			// the TLS handshake of imaps (ServeTLS wraps what it gets).
			ln = proxylisten.New(ln, proxylisten.Options{
				Trusted:  proxyTrusted,
				Logger:   logger.With("proto", svc.name),
				Rejected: proxyRejected.rejected(svc.name),
			})
			logger.Info("listening", "proto", svc.name, "addr", ln.Addr().String(), "proxy_protocol", true)
		} else {
			logger.Info("listening", "proto", svc.name, "addr", ln.Addr().String())
		}
		running++
		go func() {
			if err := svc.serve(ln); err != nil {
				errc <- fmt.Errorf("%s: %w", svc.name, err)
				return
			}
			errc <- nil
		}()
	}
	logger.Info("pushmail started", "version", version, "data", cfg.Data, "store", mailstore.RedactURL(location), "domains", cfg.Domains)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-errc:
		running--
		if runErr != nil {
			logger.Error("listener failed", "err", runErr)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Event streams never end on their own: end them, so that the HTTP
	// server's Shutdown waits only for requests that do.
	jmapServer.Close()
	// All at once: every listener stops accepting now, and in-flight SMTP
	// transactions drain while IMAP says BYE and POP3 -ERR [SYS/TEMP]
	// (a POP3 QUIT under way finishes its store write first).
	var wg sync.WaitGroup
	for name, shutdown := range map[string]func(context.Context) error{
		"http": httpServer.Shutdown, "smtp": smtpServer.Shutdown, "imap": imapServer.Shutdown, "pop3": pop3Server.Shutdown,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := shutdown(sctx)
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				// Idle clients were told goodbye at once; only work in
				// progress (an SMTP transfer, an HTTP request) waits
				// for the deadline, and was cut off: it is retried.
				logger.Warn("shutdown "+name+": work still in progress was cut off", "timeout", shutdownTimeout)
			case err != nil:
				logger.Error("shutdown "+name, "err", err)
			}
		}()
	}
	wg.Wait()
	for ; running > 0; running-- {
		if err := <-errc; err != nil {
			logger.Error("listener ended with an error", "err", err)
		}
	}
	logger.Info("pushmail stopped")
	return runErr
}

// loadTLS loads the certificates and returns the TLS configurations of
// the SMTP and IMAP listeners (nil: no TLS). A goroutine, ended by ctx,
// reloads every certificate from its files on SIGHUP.
func loadTLS(ctx context.Context, cfg Config, logger *slog.Logger) (smtpTLS, imapTLS *tls.Config, err error) {
	global := CertFiles{cfg.TLS.Cert, cfg.TLS.Key}
	if global.Cert == "" && cfg.TLS.Dev {
		if global.Cert, global.Key, err = devCertificate(cfg.Data); err != nil {
			return nil, nil, err
		}
		logger.Warn("using a self-signed development certificate", "cert", global.Cert)
	}
	loaded := map[CertFiles]*certificate{}
	load := func(files CertFiles) (*tls.Config, error) {
		if files.Cert == "" {
			files = global
		}
		if files.Cert == "" {
			return nil, nil
		}
		c, ok := loaded[files]
		if !ok {
			var err error
			if c, err = loadCertificate(files.Cert, files.Key); err != nil {
				return nil, err
			}
			loaded[files] = c
		}
		return c.tlsConfig(), nil
	}
	if smtpTLS, err = load(cfg.TLS.SMTP); err != nil {
		return nil, nil, err
	}
	if imapTLS, err = load(cfg.TLS.IMAP); err != nil {
		return nil, nil, err
	}
	if len(loaded) == 0 {
		return nil, nil, nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				for files, c := range loaded {
					if err := c.reload(); err != nil {
						logger.Error("TLS certificate reload failed; keeping the old one", "err", err)
					} else {
						logger.Info("TLS certificate reloaded", "cert", files.Cert)
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return smtpTLS, imapTLS, nil
}

// listenAddr opens a TCP listener, or a unix socket for "unix:/path".
func listenAddr(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A stale socket from a previous run would make Listen fail.
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if err := os.Remove(path); err != nil {
				return nil, err
			}
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, err
		}
		// Owner and group may connect: put the MTA's user (postfix) in
		// pushmail's group. Others may not hand us mail.
		if err := os.Chmod(path, 0o660); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// adminHandler serves the operator's HTTP endpoints: /healthz (open, for
// load balancers) and /metrics (behind token, if set).
//
// /healthz answers 503 "unhealthy: …" when the store does not answer,
// 200 "ok", or 200 "degraded: …" with the reason when the store is at its
// free-space reserve or size cap (mailstore.Store.SpaceCheck): deliveries
// are then refused with 451, but reading and deleting mail work, and
// deleting is how the condition ends. A 503 would make a load balancer
// or an orchestrator's probe take the server away or restart it, locking
// users out of the very deletes that free space; monitoring that should
// page on it matches the body's first word (blackbox_exporter
// fail_if_body_not_matches_regexp "^ok", check_http -r '^ok').
func adminHandler(store *mailstore.Store, reg *prometheus.Registry, token string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := store.SpaceCheck(ctx); err != nil {
			fmt.Fprintln(w, "degraded: deliveries refused:", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", metricsHandler(reg, token))
	return mux
}
