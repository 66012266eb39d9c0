package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// swaks sends one message to the server's SMTP port.
func swaks(t *testing.T, smtpAddr, to, subject string) {
	t.Helper()
	host, port, _ := strings.Cut(smtpAddr, ":")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "swaks", "--server", host, "--port", port, "--from", "app@example.org",
		"--to", to, "--header", "Subject: "+subject, "--body", "Your code is 123456.").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
}

// TestWait drives "pushmail wait" as a test script would: started
// before a swaks delivery, it blocks on the event source and prints
// the message when it arrives; started after one, --since finds it; with
// --raw it prints the stored message; with nothing to find it exits 1
// at its timeout.
func TestWait(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Skip("swaks not installed")
	}
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	api := "http://" + srv.addr("http")

	// Before: wait is running, and says so once it watches the stream.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	wait := exec.CommandContext(ctx, pushmailBinary(t), "wait", "--user", "alice@localhost", "--password-stdin",
		"--subject", "reset", "--to", "alice@", "--server", api, "--timeout", "50s")
	wait.Stdin = strings.NewReader("secret\n")
	var stdout bytes.Buffer
	wait.Stdout = &stdout
	stderr, err := wait.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || !strings.Contains(line, "waiting") {
		t.Fatalf("pushmail wait's first line %q, %v; want that it is waiting", line, err)
	}
	swaks(t, srv.addr("smtp"), "alice@localhost", "Other news") // does not match: wait keeps waiting
	swaks(t, srv.addr("smtp"), "alice@localhost", "Password reset")
	if err := wait.Wait(); err != nil {
		t.Fatalf("pushmail wait: %v\n%s", err, stdout.String())
	}
	var email map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &email); err != nil || email["subject"] != "Password reset" {
		t.Fatalf("pushmail wait printed %s (%v); want the reset message as JSON", stdout.String(), err)
	}
	if !strings.Contains(stdout.String(), "Your code is 123456.") {
		t.Errorf("the JSON lacks the text body: %s", stdout.String())
	}

	// After: the message is there already; --since accepts it.
	out := cli(t, "secret\n", "wait", "--user", "alice@localhost", "--password-stdin", "--subject", "reset",
		"--since", "5m", "--raw", "--server", api, "--timeout", "20s")
	if !strings.Contains(out, "Subject: Password reset") || !strings.Contains(out, "Received: ") {
		t.Errorf("pushmail wait --raw printed %q; want the stored message", out)
	}

	// Without --since, a message from before the wait does not count:
	// it times out, exit 1, and says why.
	cmd := exec.Command(pushmailBinary(t), "wait", "--user", "alice@localhost", "--password-stdin", "--subject", "reset",
		"--server", api, "--timeout", "1s")
	cmd.Stdin = strings.NewReader("secret\n")
	outb, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(outb), "timed out after 1s") {
		t.Errorf("pushmail wait with nothing to find: %v, %q; want exit 1 and a timeout message", err, outb)
	}

	// A wrong password is not a timeout.
	cmd = exec.Command(pushmailBinary(t), "wait", "--user", "alice@localhost", "--password-stdin", "--server", api, "--timeout", "10s")
	cmd.Stdin = strings.NewReader("wrong\n")
	outb, err = cmd.CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 75 || !strings.Contains(string(outb), "401") {
		t.Errorf("pushmail wait with a wrong password: %v, %q; want exit 75 and the 401", err, outb)
	}
}
