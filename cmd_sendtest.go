package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/smsbridge/smsbridge/internal/plural"
)

// sendTestFlags are the arguments of `smsbridge send-test`.
type sendTestFlags struct {
	receiver     string
	url          string
	username     string
	passwordFile string
	timeout      time.Duration
	wait         bool
	// poll is how often the outcome is asked for while waiting.
	poll time.Duration
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
	cmd.Flag("timeout", "How long to wait for the bridge and, with --wait, for the outcome of every number.").Default("30s").DurationVar(&sf.timeout)
	cmd.Flag("wait", "Wait until the provider accepted or refused the text for every number, and print each outcome; --no-wait stops once it is queued.").
		Default("true").BoolVar(&sf.wait)
	sf.poll = 250 * time.Millisecond
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
	DryRun     bool     `json:"dry_run"`
}

// testDelivery is one number of the test SMS, as GET /api/v1/deliveries
// lists it.
type testDelivery struct {
	ID                int64      `json:"id"`
	Number            string     `json:"number"`
	Status            string     `json:"status"`
	Attempts          int        `json:"attempts"`
	ProviderMessageID string     `json:"provider_message_id"`
	DryRun            bool       `json:"dry_run"`
	ErrorCode         string     `json:"error_code"`
	Error             string     `json:"error"`
	NextAttemptAt     *time.Time `json:"next_attempt_at"`
}

// runSendTest is `smsbridge send-test`. It exits 0 when the provider
// accepted the SMS for every number (with --no-wait: when the bridge
// queued it), 1 when the bridge refused it, could not be reached, or a
// number failed or was still pending at the timeout, and 2 for a usage
// error.
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
		fmt.Fprintf(stdout, "test SMS queued as notification %d for receiver %s: %s (%s)\n",
			reply.ID, reply.Receiver, plural.Count(reply.Recipients, "number", "numbers"), strings.Join(reply.Numbers, ", "))
		if reply.DryRun {
			fmt.Fprintln(stdout, "the bridge runs a dry run (--sms.dry-run): its in-process fake takes the text; no phone gets it")
		}
		if !sf.wait {
			fmt.Fprintf(stdout, "follow it at %s/?status=pending or %s/api/v1/deliveries?notification=%d\n",
				strings.TrimRight(base.Redacted(), "/"), strings.TrimRight(base.Redacted(), "/"), reply.ID)
			return 0
		}
		return waitSendTest(ctx, sf, base, password, reply, stdout, stderr)
	case resp.StatusCode == http.StatusUnauthorized:
		fmt.Fprintln(stderr, "smsbridge send-test: the bridge wants credentials (401): pass --web.username and --web.password-file")
	case jsonErr == nil && reply.Error != "":
		fmt.Fprintf(stderr, "smsbridge send-test: the bridge answered %d: %s\n", resp.StatusCode, reply.Error)
	default:
		fmt.Fprintf(stderr, "smsbridge send-test: the bridge answered %s, not a test result: is %s a smsbridge?\n", resp.Status, base.Redacted())
	}
	return 1
}

// waitSendTest polls the bridge for the test SMS's deliveries until none
// is pending or sending, or ctx ends, then prints each number's outcome.
func waitSendTest(ctx context.Context, sf *sendTestFlags, base *url.URL, password string, reply sendTestReply, stdout, stderr io.Writer) int {
	endpoint := fmt.Sprintf("%s/api/v1/deliveries?notification=%d&limit=1000", strings.TrimRight(base.String(), "/"), reply.ID)
	var ds []testDelivery
	var lastErr error
	tick := time.NewTicker(sf.poll)
	defer tick.Stop()
poll:
	for {
		got, err := fetchDeliveries(ctx, endpoint, sf.username, password)
		switch {
		case err == nil:
			ds, lastErr = got, nil
		case ctx.Err() == nil:
			lastErr = err
		}
		if len(ds) > 0 && settled(ds) {
			break poll
		}
		select {
		case <-ctx.Done():
			break poll
		case <-tick.C:
		}
	}
	slices.SortFunc(ds, func(a, b testDelivery) int { return cmp.Compare(a.ID, b.ID) })
	if len(ds) == 0 {
		fmt.Fprintf(stderr, "smsbridge send-test: could not read the outcome of notification %d: %v\n", reply.ID, lastErr)
		return 1
	}
	accepted, failed, pending := 0, 0, 0
	for _, d := range ds {
		switch d.Status {
		case "accepted":
			accepted++
			what := "provider id " + d.ProviderMessageID
			if d.DryRun {
				what = "by the dry run's fake: not sent"
			}
			fmt.Fprintf(stdout, "  %s  accepted (%s)\n", d.Number, what)
		case "failed":
			failed++
			reason := d.Error
			if d.ErrorCode != "" {
				reason = d.ErrorCode + ": " + reason
			}
			fmt.Fprintf(stdout, "  %s  failed: %s\n", d.Number, reason)
		default:
			pending++
			line := fmt.Sprintf("  %s  still %s, not tried yet", d.Number, d.Status)
			if d.Attempts > 0 {
				line = fmt.Sprintf("  %s  still %s after %s", d.Number, d.Status, plural.Count(d.Attempts, "attempt", "attempts"))
			}
			if d.NextAttemptAt != nil {
				line += ", next attempt due " + d.NextAttemptAt.UTC().Format("15:04:05Z")
			}
			if d.Error != "" {
				line += "; last error: " + d.Error
			}
			fmt.Fprintln(stdout, line)
		}
	}
	switch {
	case failed == 0 && pending == 0:
		fmt.Fprintf(stdout, "the provider accepted the test SMS for %s\n", plural.Count(accepted, "number", "numbers"))
		return 0
	case pending > 0:
		if why := providerProblem(sf, base, password); why != "" {
			fmt.Fprintln(stdout, why)
		}
		fmt.Fprintf(stdout, "%s not settled within %s; follow them at %s/?status=pending\n",
			plural.Count(pending, "number", "numbers"), sf.timeout, strings.TrimRight(base.Redacted(), "/"))
	default:
		fmt.Fprintf(stdout, "the test SMS failed for %s of %d\n", plural.Count(failed, "number", "numbers"), len(ds))
	}
	return 1
}

// settled reports whether no delivery is waiting or on the wire.
func settled(ds []testDelivery) bool {
	for _, d := range ds {
		if d.Status != "accepted" && d.Status != "failed" {
			return false
		}
	}
	return true
}

// fetchDeliveries reads the deliveries at endpoint.
func fetchDeliveries(ctx context.Context, endpoint, username, password string) ([]testDelivery, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	if username != "" {
		req.SetBasicAuth(username, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the bridge answered %s", resp.Status)
	}
	var out struct {
		Deliveries []testDelivery `json:"deliveries"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("the bridge's answer is not a list of deliveries: %w", err)
	}
	return out.Deliveries, nil
}

// providerProblem asks the bridge why numbers may be stuck: the provider
// account that carries the traffic is held or paused. It returns "" when
// it is not, or when the bridge does not say.
func providerProblem(sf *sendTestFlags, base *url.URL, password string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base.String(), "/")+"/api/v1/status", nil)
	if err != nil {
		return ""
	}
	if sf.username != "" {
		req.SetBasicAuth(sf.username, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var st struct {
		Provider struct {
			State      string     `json:"state"`
			Until      *time.Time `json:"until"`
			Reason     string     `json:"reason"`
			StatusCode int        `json:"status_code"`
			Message    string     `json:"message"`
		} `json:"provider"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil {
		return ""
	}
	p := st.Provider
	switch p.State {
	case "held":
		why := fmt.Sprintf("the provider account is held (%s, HTTP %d)", p.Reason, p.StatusCode)
		if p.Message != "" {
			why += ": " + p.Message
		}
		return why
	case "paused":
		if p.Until != nil {
			return "the provider paused sending (429) until " + p.Until.UTC().Format("15:04:05Z")
		}
		return "the provider paused sending (429)"
	}
	return ""
}
