package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// sendTestFlags are the arguments of `smsbridge send-test`.
type sendTestFlags struct {
	receiver     string
	url          string
	username     string
	passwordFile string
	timeout      time.Duration
}

// addSendTestCommand adds `send-test` to app.
func addSendTestCommand(app *kingpin.Application) (*kingpin.CmdClause, *sendTestFlags) {
	sf := &sendTestFlags{}
	cmd := app.Command("send-test", "Send one test SMS to a receiver's numbers through the running bridge "+
		"(its outbox, dispatcher and SMS provider), to prove the paging path works.")
	cmd.Flag("receiver", "The receiver to page.").Required().StringVar(&sf.receiver)
	cmd.Flag("web.url", "The running bridge's URL.").Default("http://127.0.0.1:9754").StringVar(&sf.url)
	cmd.Flag("web.username", "Basic-auth user, when the bridge's --web.config.file asks for one.").StringVar(&sf.username)
	cmd.Flag("web.password-file", "File holding the basic-auth password.").PlaceHolder("FILE").StringVar(&sf.passwordFile)
	cmd.Flag("timeout", "How long to wait for the bridge.").Default("30s").DurationVar(&sf.timeout)
	return cmd, sf
}

// sendTestReply is the bridge's answer to POST /api/v1/test, or its error.
type sendTestReply struct {
	Status     string   `json:"status"`
	Error      string   `json:"error"`
	ID         int64    `json:"id"`
	Receiver   string   `json:"receiver"`
	Recipients int      `json:"recipients"`
	Numbers    []string `json:"numbers"`
}

// runSendTest is `smsbridge send-test`. It exits 0 when the bridge queued
// the SMS, 1 when it refused or could not be reached, 2 for a usage error.
func runSendTest(sf *sendTestFlags, stdout, stderr io.Writer) int {
	base, err := url.Parse(sf.url)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		fmt.Fprintf(stderr, "smsbridge send-test: --web.url %q is not an http or https URL\n", sf.url)
		return 2
	}
	if base.User != nil {
		fmt.Fprintln(stderr, "smsbridge send-test: put no credentials in --web.url; use --web.username and --web.password-file")
		return 2
	}
	if (sf.username == "") != (sf.passwordFile == "") {
		fmt.Fprintln(stderr, "smsbridge send-test: --web.username and --web.password-file go together")
		return 2
	}
	var password string
	if sf.passwordFile != "" {
		b, err := os.ReadFile(sf.passwordFile)
		if err != nil {
			fmt.Fprintf(stderr, "smsbridge send-test: read password: %v\n", err)
			return 2
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	body, err := json.Marshal(map[string]string{"receiver": sf.receiver})
	if err != nil {
		fmt.Fprintf(stderr, "smsbridge send-test: %v\n", err)
		return 1
	}
	endpoint := strings.TrimRight(base.String(), "/") + "/api/v1/test"
	ctx, cancel := context.WithTimeout(context.Background(), sf.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(stderr, "smsbridge send-test: %v\n", err)
		return 2
	}
	req.Header.Set("Content-Type", "application/json")
	if sf.username != "" {
		req.SetBasicAuth(sf.username, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "smsbridge send-test: no answer from the bridge at %s (is it running?): %v\n", base.Redacted(), errors.Unwrap(err))
		return 1
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		fmt.Fprintf(stderr, "smsbridge send-test: read the bridge's answer: %v\n", err)
		return 1
	}
	var reply sendTestReply
	jsonErr := json.Unmarshal(raw, &reply)
	switch {
	case resp.StatusCode == http.StatusAccepted && jsonErr == nil:
		fmt.Fprintf(stdout, "test SMS queued as notification %d for receiver %s: %d numbers (%s)\n",
			reply.ID, reply.Receiver, reply.Recipients, strings.Join(reply.Numbers, ", "))
		fmt.Fprintf(stdout, "follow it at %s/?status=pending or %s/api/v1/deliveries?since=5m\n",
			strings.TrimRight(base.Redacted(), "/"), strings.TrimRight(base.Redacted(), "/"))
		return 0
	case resp.StatusCode == http.StatusUnauthorized:
		fmt.Fprintln(stderr, "smsbridge send-test: the bridge wants credentials (401): pass --web.username and --web.password-file")
	case jsonErr == nil && reply.Error != "":
		fmt.Fprintf(stderr, "smsbridge send-test: the bridge answered %d: %s\n", resp.StatusCode, reply.Error)
	default:
		fmt.Fprintf(stderr, "smsbridge send-test: the bridge answered %s, not a test result: is %s a smsbridge?\n", resp.Status, base.Redacted())
	}
	return 1
}
