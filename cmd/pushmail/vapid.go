package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	webpush "github.com/SherClockHolmes/webpush-go"

	"pushmail/wakeup"
)

// vapidFile holds the server's VAPID key pair (RFC 8292) in the data
// directory, made on first use: Web Push subscriptions are bound to the
// public key, so it must outlive restarts and upgrades.
const vapidFile = "vapid.json"

// vapidKeys is vapidFile's content.
type vapidKeys struct {
	PublicKey  string `json:"publicKey"`
	PrivateKey string `json:"privateKey"`
}

// loadVAPID reads the data directory's VAPID key pair, making it first
// if there is none. The file is written whole under another name and
// renamed, readable by the owner only.
func loadVAPID(data string) (vapidKeys, error) {
	path := filepath.Join(data, vapidFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var k vapidKeys
		if err := json.Unmarshal(b, &k); err != nil || k.PublicKey == "" || k.PrivateKey == "" {
			return vapidKeys{}, fmt.Errorf("%s: not a VAPID key pair (remove it to make a new one; existing push subscriptions then stop working): %v", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return vapidKeys{}, err
	}
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		return vapidKeys{}, fmt.Errorf("make a VAPID key pair: %w", err)
	}
	k := vapidKeys{PublicKey: pub, PrivateKey: priv}
	b, err = json.MarshalIndent(k, "", "  ")
	if err != nil {
		return vapidKeys{}, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return vapidKeys{}, err
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return vapidKeys{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return vapidKeys{}, err
	}
	return k, nil
}

// wakeupVAPID is the engine's VAPID configuration for the data directory:
// the key pair, and the postmaster as the push services' contact.
func wakeupVAPID(data, hostname string) (*wakeup.VAPID, error) {
	k, err := loadVAPID(data)
	if err != nil {
		return nil, err
	}
	return &wakeup.VAPID{PublicKey: k.PublicKey, PrivateKey: k.PrivateKey, Subscriber: "mailto:postmaster@" + hostname}, nil
}

// runVAPID implements "pushmail vapid show": it prints the public key a
// web app passes to PushManager.subscribe as applicationServerKey.
func runVAPID(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: pushmail vapid show [--data DIR]\n\nPrints the server's VAPID public key (RFC 8292), making the key pair in the\ndata directory if there is none: web apps pass it to PushManager.subscribe.")
	}
	sub, err := subcommand(args, usage)
	if err != nil {
		return err
	}
	if sub != "show" {
		fmt.Fprintf(stderr, "pushmail vapid: unknown sub-command %q\n", sub)
		usage()
		return errUsage
	}
	fs := newFlagSet("vapid show", "", stderr)
	data := fs.String("data", envDefault("PUSHMAIL_DATA", "./pushmail-data"), "data directory (env PUSHMAIL_DATA)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	k, err := loadVAPID(*data)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.PublicKey)
	return nil
}
