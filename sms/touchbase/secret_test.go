package touchbase

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/smsbridge/smsbridge/sms"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// echoProvider replies with the status named in the path (/N/sms/messages)
// and repeats the request's Authorization header everywhere it can: in the
// message, in per-number fields, in HTML, in Location and Retry-After. A
// careless client would carry the key from there into its errors.
func echoProvider(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	auth := r.Header.Get("Authorization")
	key := strings.TrimPrefix(auth, "Bearer ")
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	status, _ := strconv.Atoi(parts[0])
	style := ""
	if len(parts) > 1 {
		style = parts[1]
	}
	w.Header().Set("Location", "https://elsewhere.example/?key="+key)
	w.Header().Set("Retry-After", key)
	w.Header().Set("X-Echo", auth)
	w.WriteHeader(status)
	switch style {
	case "html":
		fmt.Fprintf(w, "<html><head><title>Denied for %s</title></head><body>%s</body></html>", auth, key)
	case "text":
		fmt.Fprintf(w, "error: key %s rejected; Try again in 3 seconds", key)
	case "entries":
		fmt.Fprintf(w, `{"messages":[{"apiMessageId":%q,"accepted":false,"to":"+27831234567","errorCode":%q,"error":%q,"errorDescription":"bad key %s"}],
			"errorCode":%q,"error":"for %s","errorDescription":%q}`, key, key, auth, key, key, key, auth)
	case "toplevel":
		fmt.Fprintf(w, `{"messages":[],"errorCode":%q,"error":"for %s","errorDescription":%q}`, key, key, auth)
	default:
		fmt.Fprintf(w, `{"status":%d,"message":"API key %s is invalid. Try again in 2 seconds.","errorCode":%q}`, status, key, auth)
	}
}

// TestAPIKeyNeverLeaks sends through every failure path and searches the
// errors, the results, the log lines a caller would write, and the
// gathered metrics for the API key.
func TestAPIKeyNeverLeaks(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	m := sms.NewMetrics(reg).Account(sms.AccountPrimary)

	fake := smsfake.NewServer(smsfake.Options{APIKey: testKey, Credits: smsfake.Unlimited, Logger: logger})
	t.Cleanup(fake.Close)
	echo := httptest.NewServer(http.HandlerFunc(echoProvider))
	t.Cleanup(echo.Close)

	var outputs []string
	kinds := map[sms.Kind]bool{}
	record := func(what string, res sms.Result, err error) {
		logger.Error("send", "case", what, "err", err, "result", res)
		for _, r := range res.Numbers {
			outputs = append(outputs, fmt.Sprintf("%+v", r))
		}
		if err == nil {
			return
		}
		var e *sms.Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %T is not *Error", what, err)
			return
		}
		kinds[e.Kind] = true
		outputs = append(outputs, err.Error(), fmt.Sprintf("%v", err), e.Message)
		for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
			outputs = append(outputs, u.Error())
		}
	}
	newClient := func(u string, timeout time.Duration) *Client {
		c, err := New(Config{URL: u, APIKey: testKey, Timeout: timeout}, m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	numbers := []string{"+27831234567", "not a number", "+4412345678"}
	ctx := context.Background()

	// Every status, in every body style, from a provider that echoes the key.
	for _, status := range []int{200, 202, 301, 400, 401, 403, 404, 405, 408, 418, 429, 500, 502, 503} {
		for _, style := range []string{"json", "html", "text", "entries", "toplevel"} {
			c := newClient(fmt.Sprintf("%s/%d/%s/sms/messages", echo.URL, status, style), 10*time.Second)
			res, err := c.Send(ctx, "x", numbers)
			record(fmt.Sprintf("echo %d %s", status, style), res, err)
			if status == 429 {
				// The client keeps no pause: the second request goes out too.
				res, err = c.Send(ctx, "x", numbers)
				record("again", res, err)
			}
		}
	}

	// The fake, told to fail in each way it can; the 429 last, as its pause
	// would turn any later request into another 429.
	res, err := newClient(fake.URL, 10*time.Second).Send(ctx, "hello", numbers)
	record("success", res, err)
	fake.FailNext(1, smsfake.Fault{Hang: true})
	res, err = newClient(fake.URL, 100*time.Millisecond).Send(ctx, "x", numbers)
	record("hang", res, err)
	faults := []smsfake.Fault{
		{Status: 400}, {Status: 401}, {Status: 403}, {Status: 405}, {Status: 500}, {Status: 202, Body: "not json"},
		{Drop: true}, {Status: 429, RetryAfter: 1, RetryAfterHeader: 2},
	}
	for _, f := range faults {
		fake.FailNext(1, f)
		c := newClient(fake.URL, 10*time.Second)
		res, err := c.Send(ctx, "x", numbers)
		record(fmt.Sprintf("fault %+v", f), res, err)
	}
	fake.ClearFaults()
	fake.SetCredits(0)
	res, err = newClient(fake.URL, 10*time.Second).Send(ctx, "hello", numbers)
	record("no credits or early", res, err)

	// Transport failures, with the key in the URL where a careless
	// operator might put it. New refuses such a URL (below); it is set
	// behind its back here, to show that the errors would not repeat it.
	keyInURL := func(u string) *Client {
		c := newClient(u, 10*time.Second)
		c.url = u + "?key=" + testKey
		return c
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	res, err = keyInURL("http://"+addr+"/sms/messages").Send(ctx, "x", numbers)
	record("refused", res, err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	res, err = keyInURL(fake.URL).Send(cctx, "x", numbers)
	record("canceled", res, err)
	fake.FailNext(1, smsfake.Fault{Hang: true})
	c := keyInURL(fake.URL)
	c.http.Timeout = 100 * time.Millisecond
	res, err = c.Send(ctx, "x", numbers)
	record("timeout", res, err)
	res, err = newClient(fake.URL, 10*time.Second).Send(ctx, "", numbers)
	record("empty text", res, err)

	// Configuration errors.
	for _, cfg := range []Config{
		{URL: "https://user:" + testKey + "@api.example/sms/messages", APIKey: testKey, Timeout: time.Second},
		{URL: "https://api.example/sms/messages", APIKey: testKey + " ", Timeout: time.Second},
		{URL: "https://api.example/sms/messages", APIKey: testKey + "\n", Timeout: time.Second},
		{URL: "ht!tp://" + testKey, APIKey: testKey, Timeout: time.Second},
		{URL: "https://api.example:" + testKey + "/sms/messages", APIKey: testKey, Timeout: time.Second},
		{URL: "https://api.example/%" + testKey, APIKey: testKey, Timeout: time.Second},
		{URL: testKey + "://api.example/sms/messages", APIKey: testKey, Timeout: time.Second},
		{URL: "https://api.example/sms/messages?key=" + testKey, APIKey: testKey, Timeout: time.Second},
		{URL: "https://api.example/sms/messages", APIKey: testKey},
	} {
		_, err := New(cfg, m)
		if err == nil {
			t.Errorf("New accepted %+v", cfg)
			continue
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			outputs = append(outputs, e.Error(), fmt.Sprintf("%+v", e))
		}
	}

	// Callbacks that are not the provider's format, holding the key.
	for _, body := range []string{
		testKey, `"` + testKey + `"`, `{"Type":"` + testKey, `{"Events":"` + testKey + `"}`,
		`{"Events":{"` + testKey + `":1}}`, `{"Events":[` + testKey + `]}`, `[` + testKey + `]`,
	} {
		_, err := c.ParseCallback(nil, []byte(body))
		if err == nil {
			t.Errorf("ParseCallback accepted %q", body)
			continue
		}
		logger.Error("callback", "err", err)
		for e := err; e != nil; e = errors.Unwrap(e) {
			outputs = append(outputs, e.Error())
		}
	}

	for _, k := range []sms.Kind{sms.KindTransient, sms.KindRateLimited, sms.KindUnauthorized, sms.KindSuspended, sms.KindNoCredits, sms.KindBadRequest, sms.KindPermanent} {
		if !kinds[k] {
			t.Errorf("no path produced kind %s; the search below would prove less than it claims", k)
		}
	}

	var metrics bytes.Buffer
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	enc := expfmt.NewEncoder(&metrics, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(metrics.String(), "smsbridge_sms_api_requests_total") {
		t.Fatal("metrics were not gathered")
	}
	if !strings.Contains(logs.String(), "fake sms api accepted message") {
		t.Error("the logs lack the fake's lines this test means to search")
	}
	if !strings.Contains(logs.String(), "<secret>") {
		t.Error("no echoed key was redacted: the echo paths were not exercised")
	}

	secretPart := testKey[len("tb-live-"):]
	for name, text := range map[string]string{
		"errors and results": strings.Join(outputs, "\n"),
		"logs":               logs.String(),
		"metrics":            metrics.String(),
	} {
		if strings.Contains(text, secretPart) {
			i := strings.Index(text, secretPart)
			t.Errorf("%s contain the API key: ...%s...", name, text[max(0, i-80):min(len(text), i+40)])
		}
	}
}

// TestRedactForms: the key is removed from provider text in every form a
// provider or a proxy may echo it in, not only verbatim.
func TestRedactForms(t *testing.T) {
	const key = "tb-live-k3y+with/odd=chars&<x>"
	b := []byte(key)
	for _, tc := range []struct{ name, form string }{
		{"verbatim", key},
		{"query-escaped", url.QueryEscape(key)},
		{"path-escaped", url.PathEscape(key)},
		{"html-escaped", html.EscapeString(key)},
		{"base64", base64.StdEncoding.EncodeToString(b)},
		{"base64url", base64.URLEncoding.EncodeToString(b)},
		{"base64, unpadded", base64.RawStdEncoding.EncodeToString(b)},
		{"base64url, unpadded", base64.RawURLEncoding.EncodeToString(b)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := redact("E1: bad key "+tc.form+" (Authorization: Bearer "+tc.form+")", key)
			if strings.Contains(got, tc.form) || strings.Count(got, "<secret>") != 2 {
				t.Errorf("redact left %q", got)
			}
		})
	}
	if got := redact("nothing here", ""); got != "nothing here" {
		t.Errorf("an empty key changed the text: %q", got)
	}
}
