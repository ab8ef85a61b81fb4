package touchbase

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smsbridge/smsbridge/sms"
)

const testKey = "tb-live-7f3c9a1e5d2b4c6a8e0f"

var errConnReset = syscall.ECONNRESET

// canned is a provider that answers every request with the same reply and
// remembers the requests it got.
type canned struct {
	status int
	header map[string]string
	body   string

	mu       sync.Mutex
	requests []capturedRequest
}

type capturedRequest struct {
	header http.Header
	body   []byte
}

func (c *canned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.requests = append(c.requests, capturedRequest{header: r.Header.Clone(), body: b})
	c.mu.Unlock()
	for k, v := range c.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(c.status)
	_, _ = io.WriteString(w, c.body)
}

func (c *canned) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.requests)
}

// newCanned starts a canned provider and a client for it.
func newCanned(t *testing.T, status int, header map[string]string, body string) (*canned, *Client) {
	t.Helper()
	p := &canned{status: status, header: header, body: body}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, newTestClient(t, srv.URL+"/sms/messages", nil)
}

func newTestClient(t *testing.T, u string, m *sms.AccountMetrics) *Client {
	t.Helper()
	c, err := New(Config{URL: u, APIKey: testKey, Timeout: 10 * time.Second}, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// want describes the expected outcome for one number.
type want struct {
	accepted bool
	id       string
	code     string
}

// classificationNow is the clock of TestClassification, for Retry-After
// dates.
var classificationNow = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// TestClassification maps every reply sms-api.md documents, and the
// variants its Robustness section warns of, to what Send makes of it.
func TestClassification(t *testing.T) {
	t.Parallel()
	doc202 := readTestdata(t, "documented-202.json")
	two := []string{"+2783123456", "+2783234567"}
	const noErr = sms.Kind(-1)
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		numbers []string

		kind       sms.Kind // noErr: Send succeeds
		status0    bool     // the error carries no status
		retryAfter time.Duration
		msg        string // substring of the error message
		results    []want
	}{
		// The replies table of sms-api.md, one row each.
		{name: "202 documented body", status: 202, body: doc202, numbers: two, kind: noErr,
			results: []want{{accepted: true, id: "af750c2dc53e4e4c88c39b3b48756d3a"}, {code: sms.CodeMissingInReply}}},
		{name: "202 per-number rejection", status: 202, numbers: two, kind: noErr,
			body: `{"messages":[{"apiMessageId":"a1","accepted":true,"to":"+2783123456","errorCode":null,"error":null,"errorDescription":null},
				{"apiMessageId":"","accepted":false,"to":"+2783234567","errorCode":"E101","error":"InvalidNumber","errorDescription":"bad"}],
				"errorCode":null,"error":null,"errorDescription":null}`,
			results: []want{{accepted: true, id: "a1"}, {code: "E101"}}},
		{name: "400 documented", status: 400, body: `{"status":400,"message":"The request was not properly formatted."}`,
			kind: sms.KindBadRequest, msg: "The request was not properly formatted."},
		{name: "401 documented", status: 401, body: `{"status":401,"message":"API key is invalid."}`,
			kind: sms.KindUnauthorized, msg: "API key is invalid."},
		{name: "403 documented", status: 403, body: `{"status":403,"message":"Your account has been suspended! ..."}`,
			kind: sms.KindSuspended, msg: "Your account has been suspended!"},
		{name: "405 no credits", status: 405, body: `{"status":405,"message":"You don't have enough credits on your account!"}`,
			kind: sms.KindNoCredits, msg: "enough credits"},
		{name: "405 balance update failed", status: 405, body: `{"status":405,"message":"Message sending failed for your credit balance couldn't be updated!"}`,
			kind: sms.KindNoCredits, msg: "couldn't be updated"},
		{name: "429 documented", status: 429, body: `{"status":429,"message":"Rate limit is exceeded.  Try again in 17 seconds."}`,
			kind: sms.KindRateLimited, retryAfter: 17 * time.Second, msg: "Try again in 17 seconds"},
		{name: "500 internal error", status: 500, body: `{"status":500,"message":"An internal error has occurred. ..."}`,
			kind: sms.KindTransient, msg: "An internal error has occurred."},
		{name: "500 balance update failed", status: 500, body: `{"status":500,"message":"Updating your credit balance has failed. Please contact us."}`,
			kind: sms.KindTransient, msg: "Updating your credit balance has failed."},

		// The 429 wait, per the Robustness notes.
		{name: "429 header larger than text", status: 429, header: map[string]string{"Retry-After": "30"},
			body: `{"status":429,"message":"Rate limit is exceeded.  Try again in 17 seconds."}`, kind: sms.KindRateLimited, retryAfter: 30 * time.Second},
		{name: "429 text larger than header", status: 429, header: map[string]string{"Retry-After": "5"},
			body: `{"status":429,"message":"Rate limit is exceeded.  Try again in 17 seconds."}`, kind: sms.KindRateLimited, retryAfter: 17 * time.Second},
		{name: "429 header only", status: 429, header: map[string]string{"Retry-After": "9"},
			body: `{"status":429,"message":"Rate limit is exceeded."}`, kind: sms.KindRateLimited, retryAfter: 9 * time.Second},
		// A 429 that names no wait leaves the pause to the caller's default.
		{name: "429 no wait named", status: 429, body: `{"status":429,"message":"Rate limit is exceeded."}`,
			kind: sms.KindRateLimited, retryAfter: 0},
		{name: "429 unparsable wait", status: 429, header: map[string]string{"Retry-After": "soon"},
			body: `{"status":429,"message":"Rate limit is exceeded.  Try again in a few seconds."}`, kind: sms.KindRateLimited, retryAfter: 0},
		{name: "429 zero wait", status: 429, body: `{"status":429,"message":"Rate limit is exceeded.  Try again in 0 seconds."}`,
			kind: sms.KindRateLimited, retryAfter: 0},
		{name: "429 empty body", status: 429, kind: sms.KindRateLimited, retryAfter: 0, msg: "Too Many Requests (empty body)"},
		{name: "429 fractional seconds rounded up", status: 429, body: `{"message":"Try again in 2.2 seconds."}`,
			kind: sms.KindRateLimited, retryAfter: 3 * time.Second},
		{name: "429 minutes", status: 429, body: `{"message":"Rate limit is exceeded. Try again in 2 minutes."}`,
			kind: sms.KindRateLimited, retryAfter: 2 * time.Minute},
		{name: "429 absurd wait capped", status: 429, body: `{"message":"Try again in 999999 seconds."}`,
			kind: sms.KindRateLimited, retryAfter: sms.MaxRetryAfter},
		{name: "429 absurd header capped", status: 429, header: map[string]string{"Retry-After": "999999"},
			body: `{"message":"Rate limit is exceeded."}`, kind: sms.KindRateLimited, retryAfter: sms.MaxRetryAfter},
		{name: "429 header as a date", status: 429, header: map[string]string{"Retry-After": "Wed, 01 Jan 2025 12:00:40 GMT"},
			body: `{"message":"Rate limit is exceeded.  Try again in 17 seconds."}`, kind: sms.KindRateLimited, retryAfter: 41 * time.Second},
		{name: "429 wait in another field", status: 429, body: `{"status":429,"message":"Rate limit is exceeded.","detail":"Try again in 12 seconds"}`,
			kind: sms.KindRateLimited, retryAfter: 12 * time.Second, msg: "Rate limit is exceeded."},
		{name: "429 plain text body", status: 429, body: "Too many requests. Try again in 8 seconds",
			kind: sms.KindRateLimited, retryAfter: 8 * time.Second},

		// Other statuses.
		{name: "200 with per-number results", status: 200, numbers: two[:1], kind: noErr,
			body: `{"messages":[{"apiMessageId":"x","accepted":true,"to":"+2783123456"}]}`, results: []want{{accepted: true, id: "x"}}},
		{name: "502 proxy html", status: 502, body: readTestdata(t, "proxy-502.html"), kind: sms.KindTransient, msg: "502 Bad Gateway"},
		{name: "503 retry-after", status: 503, header: map[string]string{"Retry-After": "120"}, body: "busy",
			kind: sms.KindTransient, retryAfter: 2 * time.Minute, msg: "busy"},
		{name: "504 empty body", status: 504, kind: sms.KindTransient, msg: "Gateway Timeout (empty body)"},
		{name: "503 retry-after as a date", status: 503, header: map[string]string{"Retry-After": "Wed, 01 Jan 2025 12:01:00 GMT"},
			kind: sms.KindTransient, retryAfter: 61 * time.Second},
		{name: "503 retry-after capped", status: 503, header: map[string]string{"Retry-After": "86401"},
			kind: sms.KindTransient, retryAfter: sms.MaxRetryAfter},
		{name: "503 retry-after date capped", status: 503, header: map[string]string{"Retry-After": "Fri, 03 Jan 2025 12:00:00 GMT"},
			kind: sms.KindTransient, retryAfter: sms.MaxRetryAfter},
		{name: "429 retry-after date capped", status: 429, header: map[string]string{"Retry-After": "Fri, 03 Jan 2025 12:00:00 GMT"},
			kind: sms.KindRateLimited, retryAfter: sms.MaxRetryAfter},
		{name: "500 unreadable retry-after", status: 500, header: map[string]string{"Retry-After": "later"},
			kind: sms.KindTransient, retryAfter: 0},
		{name: "408 from a proxy", status: 408, kind: sms.KindTransient},
		{name: "408 with retry-after", status: 408, header: map[string]string{"Retry-After": "5"}, kind: sms.KindTransient, retryAfter: 5 * time.Second},
		{name: "401 retry-after ignored", status: 401, header: map[string]string{"Retry-After": "5"}, kind: sms.KindUnauthorized, msg: "Unauthorized"},
		{name: "404 wrong url", status: 404, body: "<html><body><h1>Not Found</h1></body></html>", kind: sms.KindPermanent, msg: "Not Found"},
		{name: "301 redirect not followed", status: 301, header: map[string]string{"Location": "https://elsewhere.example/sms"},
			kind: sms.KindPermanent, msg: "redirect to https://elsewhere.example/sms"},
		{name: "418 unknown status", status: 418, body: `{"status":418,"error":"teapot"}`, kind: sms.KindPermanent, msg: "teapot"},

		// A 202 that does not say who got the message: retry, never drop.
		{name: "202 empty body", status: 202, kind: sms.KindTransient, msg: "empty reply"},
		{name: "202 not json", status: 202, body: "<html>OK</html>", kind: sms.KindTransient, msg: "not JSON"},
		{name: "202 empty messages", status: 202, body: `{"messages":[]}`, kind: sms.KindTransient, msg: "names none"},
		{name: "202 whole-request error", status: 202,
			body: `{"messages":[],"errorCode":"E500","error":"InternalError","errorDescription":"queue unavailable"}`,
			kind: sms.KindTransient, msg: "whole request failed: E500: InternalError: queue unavailable"},
		{name: "202 whole-request error beside entries", status: 202, numbers: two, kind: noErr,
			body:    `{"messages":[{"apiMessageId":"a","accepted":true,"to":"+2783123456"}],"errorCode":"E900","error":"Partial"}`,
			results: []want{{accepted: true, id: "a"}, {code: sms.CodeMissingInReply}}},
		{name: "202 messages not a list", status: 202, body: `{"messages":{"to":"+2783123456"}}`, kind: sms.KindTransient},
		{name: "202 names only other numbers", status: 202, numbers: two[:1],
			body: `{"messages":[{"apiMessageId":"z","accepted":true,"to":"+4412345678"}]}`, kind: sms.KindTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, c := newCanned(t, tc.status, tc.header, tc.body)
			c.now = func() time.Time { return classificationNow }
			numbers := tc.numbers
			if numbers == nil {
				numbers = two[:1]
			}
			res, err := c.Send(context.Background(), "disk full on db1", numbers)
			if tc.kind == noErr {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				checkResults(t, res, numbers, tc.results)
				return
			}
			var e *sms.Error
			if !errors.As(err, &e) {
				t.Fatalf("want *sms.Error, got %v", err)
			}
			if e.Kind != tc.kind {
				t.Errorf("kind %s, want %s (%v)", e.Kind, tc.kind, e)
			}
			if e.StatusCode != tc.status {
				t.Errorf("status %d, want %d", e.StatusCode, tc.status)
			}
			if e.RetryAfter != tc.retryAfter {
				t.Errorf("retry after %s, want %s", e.RetryAfter, tc.retryAfter)
			}
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Message, tc.msg)
			}
			if len(res.Numbers) != 0 {
				t.Errorf("result %+v with an error, want empty", res)
			}
			wantRetry := tc.kind != sms.KindBadRequest && tc.kind != sms.KindPermanent
			if e.Retryable() != wantRetry {
				t.Errorf("Retryable() = %v, want %v", e.Retryable(), wantRetry)
			}
			wantAccount := tc.kind == sms.KindUnauthorized || tc.kind == sms.KindSuspended || tc.kind == sms.KindNoCredits
			if e.AccountProblem() != wantAccount {
				t.Errorf("AccountProblem() = %v, want %v", e.AccountProblem(), wantAccount)
			}
		})
	}
}

func checkResults(t *testing.T, res sms.Result, numbers []string, want []want) {
	t.Helper()
	if len(res.Numbers) != len(numbers) {
		t.Fatalf("%d results for %d numbers: %+v", len(res.Numbers), len(numbers), res)
	}
	for i, r := range res.Numbers {
		if r.Number != numbers[i] {
			t.Errorf("result %d is for %q, want %q", i, r.Number, numbers[i])
		}
		if i >= len(want) {
			continue
		}
		w := want[i]
		if r.Accepted != w.accepted || r.ErrorCode != w.code || (w.id != "" && r.MessageID != w.id) {
			t.Errorf("result %d = %+v, want accepted=%v id=%q code=%q", i, r, w.accepted, w.id, w.code)
		}
	}
}

// TestRequestShape checks what goes on the wire: the bearer header with one
// space, JSON content, and "to" as strings with "+" only, once each.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	p, c := newCanned(t, 202, nil, `{"messages":[{"apiMessageId":"1","accepted":true,"to":"+27831234567"},{"apiMessageId":"2","accepted":true,"to":"+4412345678"}]}`)
	res, err := c.Send(context.Background(), "a < b & c", []string{"0027 83 123-4567", "+44 (12) 345.678", "+27831234567"})
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, res, []string{"0027 83 123-4567", "+44 (12) 345.678", "+27831234567"},
		[]want{{accepted: true, id: "1"}, {accepted: true, id: "2"}, {accepted: true, id: "1"}})
	if p.count() != 1 {
		t.Fatalf("%d requests, want 1", p.count())
	}
	r := p.requests[0]
	if got := r.header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization %q", got)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body["text"] != "a < b & c" {
		t.Errorf("text %q", body["text"])
	}
	to, _ := body["to"].([]any)
	if len(to) != 2 || to[0] != "+27831234567" || to[1] != "+4412345678" {
		t.Errorf("to %#v, want the two numbers once each, as strings with +", body["to"])
	}
}

// TestReplyVariants covers the shapes of a 202 the Robustness notes warn
// of.
func TestReplyVariants(t *testing.T) {
	t.Parallel()
	numbers := []string{"+27831234567", "+4412345678", "+12025550123"}
	tests := []struct {
		name string
		body string
		want []want
	}{
		{"numbers as json numbers", `{"messages":[
			{"apiMessageId":"a","accepted":true,"to":27831234567},
			{"apiMessageId":"b","accepted":true,"to":4412345678},
			{"apiMessageId":"c","accepted":true,"to":1.2025550123e10}]}`,
			[]want{{true, "a", ""}, {true, "b", ""}, {true, "c", ""}}},
		{"numbers without plus, reordered", `{"messages":[
			{"apiMessageId":"c","accepted":true,"to":"12025550123"},
			{"apiMessageId":"","accepted":false,"to":"4412345678","errorCode":"E101","error":"InvalidNumber"},
			{"apiMessageId":"a","accepted":true,"to":"27831234567"}]}`,
			[]want{{true, "a", ""}, {false, "", "E101"}, {true, "c", ""}}},
		{"short list", `{"messages":[{"apiMessageId":"b","accepted":true,"to":"+4412345678"}]}`,
			[]want{{false, "", sms.CodeMissingInReply}, {true, "b", ""}, {false, "", sms.CodeMissingInReply}}},
		{"unknown fields and odd types", `{"requestId":7,"meta":{"x":[1,2]},"messages":[
			{"apiMessageId":"a","accepted":"true","to":"+27831234567","segments":2,"errorCode":null},
			"garbage",
			{"apiMessageId":"","accepted":0,"to":"+4412345678","errorCode":101,"error":"InvalidNumber"},
			{"apiMessageId":"c","to":"+12025550123"}]}`,
			[]want{{true, "a", ""}, {false, "", "101"}, {true, "c", ""}}},
		{"duplicate entries, accepted wins", `{"messages":[
			{"accepted":false,"to":"+27831234567","errorCode":"E101"},
			{"apiMessageId":"a","accepted":true,"to":"+27831234567"},
			{"accepted":false,"to":"+27831234567","errorCode":"E101"},
			{"apiMessageId":"b","accepted":true,"to":"+4412345678"},
			{"accepted":false,"to":"+12025550123","error":"Blocked"}]}`,
			[]want{{true, "a", ""}, {true, "b", ""}, {false, "", ""}}},
		{"capitalised keys", `{"Messages":[{"ApiMessageId":"a","Accepted":true,"To":"+27831234567"}]}`,
			[]want{{true, "a", ""}, {false, "", sms.CodeMissingInReply}, {false, "", sms.CodeMissingInReply}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, c := newCanned(t, 202, nil, tc.body)
			res, err := c.Send(context.Background(), "x", numbers)
			if err != nil {
				t.Fatal(err)
			}
			checkResults(t, res, numbers, tc.want)
		})
	}
}

func TestInvalidNumbersNeverSent(t *testing.T) {
	t.Parallel()
	p, c := newCanned(t, 202, nil, `{"messages":[{"apiMessageId":"a","accepted":true,"to":"+27831234567"}]}`)
	numbers := []string{"0831234567", "+27831234567", "+27 abc", ""}
	res, err := c.Send(context.Background(), "x", numbers)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, res, numbers, []want{{false, "", sms.CodeInvalidNumber}, {true, "a", ""}, {false, "", sms.CodeInvalidNumber}, {false, "", sms.CodeInvalidNumber}})
	if !strings.Contains(res.Numbers[0].Description, "country code") {
		t.Errorf("description %q does not say why", res.Numbers[0].Description)
	}
	var body struct{ To []string }
	if err := json.Unmarshal(p.requests[0].body, &body); err != nil || len(body.To) != 1 {
		t.Errorf("sent %s, want only the valid number", p.requests[0].body)
	}

	// All invalid: no request at all, and no error.
	res, err = c.Send(context.Background(), "x", []string{"12345", "+0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, res, []string{"12345", "+0123456789"}, []want{{false, "", sms.CodeInvalidNumber}, {false, "", sms.CodeInvalidNumber}})
	if p.count() != 1 {
		t.Errorf("%d requests, want 1", p.count())
	}
}

func TestEmptyTextNotSent(t *testing.T) {
	t.Parallel()
	p, c := newCanned(t, 202, nil, "")
	_, err := c.Send(context.Background(), "  ", []string{"+27831234567"})
	var e *sms.Error
	if !errors.As(err, &e) || e.Kind != sms.KindBadRequest {
		t.Fatalf("want bad request, got %v", err)
	}
	if p.count() != 0 {
		t.Errorf("%d requests, want 0", p.count())
	}
}

// TestNoPauseKept checks that the client keeps no pause after a 429: the
// next Send goes to the provider at once, and the caller, which owns the
// pace, learns the announced wait each time.
func TestNoPauseKept(t *testing.T) {
	t.Parallel()
	p, c := newCanned(t, 429, nil, `{"status":429,"message":"Rate limit is exceeded.  Try again in 17 seconds."}`)
	for i := range 2 {
		_, err := c.Send(context.Background(), "x", []string{"+27831234567"})
		var e *sms.Error
		if !errors.As(err, &e) || e.Kind != sms.KindRateLimited || e.RetryAfter != 17*time.Second || e.StatusCode != 429 {
			t.Fatalf("send %d: got %v, want a 429 announcing 17s", i, err)
		}
	}
	if p.count() != 2 {
		t.Fatalf("%d requests, want 2: the client must not hold back itself", p.count())
	}
	p.setReply(202, `{"messages":[{"apiMessageId":"a","accepted":true,"to":"+27831234567"}]}`)
	if _, err := c.Send(context.Background(), "x", []string{"+27831234567"}); err != nil {
		t.Fatalf("once the provider accepts: %v", err)
	}
}

func (c *canned) setReply(status int, body string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status, c.body = status, body
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		c, err := New(Config{URL: srv.URL, APIKey: testKey, Timeout: 100 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Send(context.Background(), "x", []string{"+27831234567"})
		wantTransient(t, err, "timed out")
	})
	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		_, c := newCanned(t, 202, nil, "")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Send(ctx, "x", []string{"+27831234567"})
		wantTransient(t, err, "canceled")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(err, context.Canceled) is false for %v", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := newTestClient(t, "http://"+addr+"/sms/messages", nil)
		_, err = c.Send(context.Background(), "x", []string{"+27831234567"})
		wantTransient(t, err, "connection refused")
	})
	t.Run("closed before reply", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic(http.ErrAbortHandler)
		}))
		t.Cleanup(srv.Close)
		c := newTestClient(t, srv.URL, nil)
		_, err := c.Send(context.Background(), "x", []string{"+27831234567"})
		wantTransient(t, err, "")
	})
	t.Run("202 cut short", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"messages":[`)
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}))
		t.Cleanup(srv.Close)
		c := newTestClient(t, srv.URL, nil)
		_, err := c.Send(context.Background(), "x", []string{"+27831234567"})
		e := wantTransient(t, err, "reading the reply")
		if e != nil && e.StatusCode != http.StatusAccepted {
			t.Errorf("status %d, want 202", e.StatusCode)
		}
	})
	t.Run("dns", func(t *testing.T) {
		t.Parallel()
		c := newTestClient(t, "http://example.invalid/", nil)
		err := c.transportError(&url.Error{Op: "Post", URL: "http://example.invalid/", Err: &net.DNSError{Err: "no such host", Name: "example.invalid", IsNotFound: true}})
		wantTransient(t, err, "dns lookup failed")
		if strings.Contains(err.Error(), "http://") {
			t.Errorf("error %q repeats the URL", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		c := newTestClient(t, "http://127.0.0.1/", nil)
		err := c.transportError(&url.Error{Op: "Post", URL: "http://127.0.0.1/", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errConnReset)}})
		wantTransient(t, err, "connection reset")
	})
}

func wantTransient(t *testing.T, err error, msg string) *sms.Error {
	t.Helper()
	var e *sms.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *sms.Error, got %v", err)
	}
	if e.Kind != sms.KindTransient || !e.Retryable() {
		t.Errorf("kind %s, want transient", e.Kind)
	}
	if !strings.Contains(e.Message, msg) {
		t.Errorf("message %q does not contain %q", e.Message, msg)
	}
	return e
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{APIKey: "k", Timeout: time.Second}, "scheme must be http or https"},
		{"bad url", Config{URL: "http://a b/\x7f", APIKey: "k", Timeout: time.Second}, "sms url does not parse"},
		{"key as the port", Config{URL: "https://host:" + testKey + "/sms/messages", APIKey: testKey, Timeout: time.Second}, "sms url does not parse"},
		{"ftp", Config{URL: "ftp://host/sms/messages", APIKey: "k", Timeout: time.Second}, "scheme"},
		{"key as the scheme", Config{URL: testKey + "://host/sms/messages", APIKey: testKey, Timeout: time.Second}, "scheme"},
		{"no host", Config{URL: "https:///sms/messages", APIKey: "k", Timeout: time.Second}, "no host"},
		{"credentials in url", Config{URL: "https://user:" + testKey + "@host/sms/messages", APIKey: "k", Timeout: time.Second}, "credentials"},
		{"key in the query", Config{URL: "https://host/sms/messages?key=" + testKey, APIKey: testKey, Timeout: time.Second}, "must not contain the api key"},
		{"key in the path", Config{URL: "https://host/" + testKey + "/sms/messages", APIKey: testKey, Timeout: time.Second}, "must not contain the api key"},
		{"key escaped in the query", Config{URL: "https://host/sms/messages?key=a%2Bb%3D%3D12345", APIKey: "a+b==12345", Timeout: time.Second}, "must not contain the api key"},
		{"no key", Config{URL: "https://host/sms/messages", Timeout: time.Second}, "api key is empty"},
		{"key with newline", Config{URL: "https://host/sms/messages", APIKey: testKey + "\n", Timeout: time.Second}, "whitespace"},
		{"key with a space", Config{URL: "https://host/sms/messages", APIKey: "tb live", Timeout: time.Second}, "whitespace"},
		{"key with a no-break space", Config{URL: "https://host/sms/messages", APIKey: "tb\u00a0live", Timeout: time.Second}, "whitespace"},
		{"no timeout", Config{URL: "https://host/sms/messages", APIKey: "k"}, "timeout must be positive"},
		{"negative timeout", Config{URL: "https://host/sms/messages", APIKey: "k", Timeout: -time.Second}, "timeout must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the key", err)
			}
			// The field the error concerns, for the configuration's line.
			want := FieldURL
			switch {
			case strings.Contains(tc.want, "api key is empty"), strings.Contains(tc.want, "whitespace"):
				want = FieldAPIKey
			case strings.Contains(tc.want, "timeout"):
				want = FieldTimeout
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != want {
				t.Errorf("error %#v, want a *ConfigError for field %s", err, want)
			}
		})
	}
	// A short key may occur in the URL by chance; it is no reason to refuse.
	c, err := New(Config{URL: "https://api.touchbasepro.com/sms/messages", APIKey: "sms", Timeout: 7 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.http.Timeout != 7*time.Second {
		t.Errorf("timeout %s, want the 7s given", c.http.Timeout)
	}
	if tr, ok := c.http.Transport.(*http.Transport); !ok || tr.MaxIdleConnsPerHost < 8 || tr.DisableKeepAlives {
		t.Errorf("transport %#v does not keep connections alive for the workers", c.http.Transport)
	}
}

// TestKeepAlive checks that consecutive requests reuse one connection.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"messages":[{"apiMessageId":"a","accepted":true,"to":"+27831234567"}]}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, nil)
	for range 5 {
		if _, err := c.Send(context.Background(), "x", []string{"+27831234567"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1", n)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := sms.NewMetrics(reg)

	p := &canned{status: 202, body: `{"messages":[
		{"apiMessageId":"a","accepted":true,"to":"+27831234567"},
		{"accepted":false,"to":"+4412345678","errorCode":"E101"},
		{"accepted":false,"to":"+12025550123","errorCode":"E777"}]}`}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, m.Account(sms.AccountFallback))
	if _, err := c.Send(context.Background(), "x", []string{"+27831234567", "+4412345678", "+12025550123", "+33123456789", "nope"}); err != nil {
		t.Fatal(err)
	}
	p.setReply(429, `{"message":"Rate limit is exceeded.  Try again in 17 seconds."}`)
	_, _ = c.Send(context.Background(), "x", []string{"+27831234567"})
	// A 429 that names no wait counts, and adds no pause seconds.
	p.setReply(429, `{"message":"Rate limit is exceeded."}`)
	_, _ = c.Send(context.Background(), "x", []string{"+27831234567"})

	fb := map[string]string{"account": sms.AccountFallback}
	with := func(k, v string) map[string]string { return map[string]string{"account": sms.AccountFallback, k: v} }
	checks := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"2xx", "smsbridge_sms_api_requests_total", with("class", "2xx"), 1},
		{"4xx", "smsbridge_sms_api_requests_total", with("class", "4xx"), 2},
		{"5xx", "smsbridge_sms_api_requests_total", with("class", "5xx"), 0},
		{"accepted", "smsbridge_sms_numbers_accepted_total", fb, 1},
		{"E101", "smsbridge_sms_numbers_rejected_total", with("code", "E101"), 1},
		{"unknown code", "smsbridge_sms_numbers_rejected_total", with("code", sms.CodeOther), 1},
		{"missing", "smsbridge_sms_numbers_rejected_total", with("code", sms.CodeMissingInReply), 1},
		{"invalid", "smsbridge_sms_numbers_rejected_total", with("code", sms.CodeInvalidNumber), 1},
		{"rate limited", "smsbridge_sms_rate_limited_total", fb, 2},
		{"pause seconds", "smsbridge_sms_rate_limit_pause_seconds_total", fb, 17},
		{"duration", "smsbridge_sms_api_request_duration_seconds", fb, 3},
		{"primary untouched", "smsbridge_sms_api_requests_total", map[string]string{"account": sms.AccountPrimary, "class": "2xx"}, 0},
	}
	for _, ck := range checks {
		if got := metricValue(t, reg, ck.metric, ck.labels); got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, got, ck.want)
		}
	}
	if n := seriesCount(t, reg, "smsbridge_sms_numbers_rejected_total"); n != 8 {
		t.Errorf("%d rejected series after an unknown code, want 8 (bounded: 4 codes, 2 accounts)", n)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"12":                            12 * time.Second,
		"86400":                         sms.MaxRetryAfter,
		"Wed, 01 Jan 2025 12:00:30 GMT": 31 * time.Second,
		"Wed, 01 Jan 2025 11:00:00 GMT": 0,
		"Thu, 02 Jan 2025 12:00:00 GMT": sms.MaxRetryAfter,
		"tomorrow":                      0,
	}
	for in, want := range tests {
		if got := retryAfterHeader(in, now); got != want {
			t.Errorf("retryAfterHeader(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	c := &Client{apiKey: testKey}
	long := strings.Repeat("é", 300)
	tests := []struct{ in, want string }{
		{"  a\n\tb\x00c  ", "a b c"},
		{"key " + testKey + " echoed", "key <secret> echoed"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	}
	for _, tc := range tests {
		if got := c.clean(tc.in, maxMessage); got != tc.want {
			t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := c.clean(long, maxMessage)
	if len(got) > maxMessage || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "éé") {
		t.Errorf("clean(long) = %q (%d bytes)", got, len(got))
	}
	if !strings.HasSuffix(strings.TrimSuffix(got, "..."), "é") {
		t.Errorf("cut inside a rune: %q", got)
	}
	// The key is removed before the text is cut, so no prefix of it is left.
	atCut := strings.Repeat("x", maxMessage-10) + testKey
	if got := c.clean(atCut, maxMessage); strings.Contains(got, testKey[:6]) {
		t.Errorf("a part of the key survived the cut: %q", got)
	}
}

func TestFlexDecoding(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`"+27"`: "+27", `27831234567`: "27831234567", `2.7831234567e10`: "27831234567",
		`null`: "", `true`: "", `{"a":1}`: "", `[1]`: "", `-1`: "-1",
	} {
		var f flexString
		if err := json.Unmarshal([]byte(in), &f); err != nil || string(f) != want {
			t.Errorf("flexString(%s) = %q, %v; want %q", in, f, err, want)
		}
	}
	for in, want := range map[string]flexBool{
		`true`: {true, true}, `"false"`: {true, false}, `1`: {true, true}, `0`: {true, false},
		`null`: {}, `"yes"`: {},
	} {
		var f flexBool
		if err := json.Unmarshal([]byte(in), &f); err != nil || f != want {
			t.Errorf("flexBool(%s) = %+v, %v; want %+v", in, f, err, want)
		}
	}
}

// metricValue is the value of the counter, or the sample count of the
// histogram, named name with exactly the given labels.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	for _, m := range family(t, g, name).GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// seriesCount is the number of series of the metric named name.
func seriesCount(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	return len(family(t, g, name).GetMetric())
}

func family(t *testing.T, g prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}
