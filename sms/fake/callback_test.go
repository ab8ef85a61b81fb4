package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// token is the secret part of the callback URL in these tests.
const token = "cb-token-5e1f0a9d7c3b"

// receiver is the bridge's callback endpoint: it records every POST.
type receiver struct {
	URL    string
	status atomic.Int32
	got    chan callback
}

type callback struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{got: make(chan callback, 100)}
	r.status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		if req.Method != http.MethodPost || req.URL.Path != "/api/v1/sms/callback/"+token {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		r.got <- callback{header: req.Header.Clone(), body: b, at: time.Now()}
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/api/v1/sms/callback/" + token
	return r
}

// next waits for the next callback, for at most 30 seconds.
func (r *receiver) next(t *testing.T) callback {
	t.Helper()
	select {
	case c := <-r.got:
		return c
	case <-time.After(30 * time.Second):
		t.Fatal("no callback arrived")
		return callback{}
	}
}

// none checks that no callback is waiting.
func (r *receiver) none(t *testing.T) {
	t.Helper()
	select {
	case c := <-r.got:
		t.Errorf("unexpected callback %s", c.body)
	default:
	}
}

type wireEvent struct {
	Number, Status, Message string
}

var timestampRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)

// decodeCallback checks the provider's shape, exactly: the three fields
// Timestamp (seven fractional digits, UTC), Type and Events, and in each
// event exactly the fields given in eventKeys.
func decodeCallback(t *testing.T, c callback, wantType string, eventKeys ...string) []wireEvent {
	t.Helper()
	if ct := c.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(c.body, &top); err != nil {
		t.Fatalf("callback %s: %v", c.body, err)
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"Events", "Timestamp", "Type"}) {
		t.Errorf("callback fields %v, want Events, Timestamp, Type", keys)
	}
	var ts, typ string
	var events []map[string]string
	if json.Unmarshal(top["Timestamp"], &ts) != nil || json.Unmarshal(top["Type"], &typ) != nil || json.Unmarshal(top["Events"], &events) != nil {
		t.Fatalf("callback %s is not of the provider's types", c.body)
	}
	if !timestampRe.MatchString(ts) {
		t.Errorf("Timestamp %q, want seven fractional digits in UTC", ts)
	}
	if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Errorf("Timestamp %q is not now: %v", ts, err)
	}
	if typ != wantType {
		t.Errorf("Type %q, want %q", typ, wantType)
	}
	out := make([]wireEvent, 0, len(events))
	for _, e := range events {
		ks := make([]string, 0, len(e))
		for k := range e {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		if !slices.Equal(ks, eventKeys) {
			t.Errorf("event fields %v, want %v", ks, eventKeys)
		}
		out = append(out, wireEvent{Number: e["Number"], Status: e["Status"], Message: e["Message"]})
	}
	return out
}

func TestDeliveryCallbacks(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	s := newTest(t, Options{Credits: Unlimited, CallbackURL: r.URL})
	s.FailDelivery("+4412345678", "Undeliverable")
	s.FailDelivery("12025550123", "Expired") // without "+": the same number
	s.FailDelivery("+33123456789", "Failed")
	s.FailDelivery("+33123456789", "") // undone

	status, _ := send(t, s, "disk full", "+27831234567", "+4412345678", "+27abc", "+12025550123", "+33123456789")
	if status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	got := decodeCallback(t, r.next(t), TypeStatus, "Number", "Status")
	want := []wireEvent{
		{Number: "27831234567", Status: "Delivered"},
		{Number: "4412345678", Status: "Undeliverable"},
		{Number: "12025550123", Status: "Expired"},
		{Number: "33123456789", Status: "Delivered"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v (the invalid number gets none)", got, want)
	}

	// ClearFaults undoes FailDelivery; a refused request sends nothing.
	s.ClearFaults()
	s.FailNext(1, Fault{Status: 500})
	if status, _ := send(t, s, "x", "+4412345678"); status != 500 {
		t.Fatalf("status %d, want the 500 asked for", status)
	}
	if status, _ := send(t, s, "x", "+4412345678"); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	got = decodeCallback(t, r.next(t), TypeStatus, "Number", "Status")
	if !slices.Equal(got, []wireEvent{{Number: "4412345678", Status: "Delivered"}}) {
		t.Errorf("after ClearFaults: %+v", got)
	}
	r.none(t)
}

// TestDeliveryCallbackBatches checks that one request's receipts arrive
// in POSTs of at most 500 events, all of them, in order.
func TestDeliveryCallbackBatches(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	s := newTest(t, Options{Credits: Unlimited, CallbackURL: r.URL})
	var numbers []any
	for i := range 1200 {
		numbers = append(numbers, fmt.Sprintf("+2783%07d", i))
	}
	if status, _ := send(t, s, "x", numbers...); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	var sizes []int
	var all []string
	for len(all) < len(numbers) {
		events := decodeCallback(t, r.next(t), TypeStatus, "Number", "Status")
		sizes = append(sizes, len(events))
		for _, e := range events {
			all = append(all, e.Number)
		}
	}
	if !slices.Equal(sizes, []int{500, 500, 200}) {
		t.Errorf("batches of %v, want 500, 500, 200", sizes)
	}
	for i, n := range all {
		if want := fmt.Sprintf("2783%07d", i); n != want {
			t.Fatalf("event %d is for %s, want %s", i, n, want)
		}
	}
}

func TestCallbackDelay(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	const delay = 150 * time.Millisecond
	s := newTest(t, Options{Credits: Unlimited, CallbackURL: r.URL, CallbackDelay: delay})
	start := time.Now()
	if status, _ := send(t, s, "x", "+27831234567"); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	c := r.next(t)
	if waited := c.at.Sub(start); waited < delay {
		t.Errorf("callback after %s, want at least %s", waited, delay)
	}
}

// TestCloseDropsPendingCallbacks checks that Close does not wait for
// callbacks still held back, and that they are not sent after it.
func TestCloseDropsPendingCallbacks(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	s := NewServer(Options{APIKey: key, Credits: Unlimited, CallbackURL: r.URL, CallbackDelay: time.Hour})
	if status, _ := send(t, s, "x", "+27831234567"); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close waits for a held callback")
	}
	// Close has waited for the callback goroutine: anything it sent is
	// in the channel now.
	r.none(t)
	if err := s.Reply(context.Background(), "+27831234567", "ACK 1"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Reply after Close: %v", err)
	}
}

func TestReply(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	s := New(Options{CallbackURL: r.URL}) // replies need no listener
	defer s.Close()
	ctx := context.Background()
	for _, tc := range []struct{ number, text, wantNumber string }{
		{"+27831234567", "ACK 12", "27831234567"},
		{"27831234567", "", "27831234567"},
		{"+4412345678", "stop ✋\n", "4412345678"},
		{"SENDER", "alphanumeric", "SENDER"}, // passed on as given, for the bridge to refuse
	} {
		if err := s.Reply(ctx, tc.number, tc.text); err != nil {
			t.Fatalf("Reply(%q): %v", tc.number, err)
		}
		got := decodeCallback(t, r.next(t), TypeReply, "Message", "Number")
		if want := []wireEvent{{Number: tc.wantNumber, Message: tc.text}}; !slices.Equal(got, want) {
			t.Errorf("Reply(%q, %q) sent %+v, want %+v", tc.number, tc.text, got, want)
		}
	}

	r.status.Store(http.StatusNotFound)
	err := s.Reply(ctx, "+27831234567", "ACK 12")
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("answered 404: %v", err)
	}
	r.next(t)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Reply(canceled, "+27831234567", "x"); err == nil {
		t.Error("Reply with a canceled context succeeded")
	}

	if err := New(Options{}).Reply(ctx, "+27831234567", "x"); err == nil || !strings.Contains(err.Error(), "no callback url") {
		t.Errorf("without CallbackURL: %v", err)
	}

	// Pointed at the receiver later, for a bridge that listens after the
	// fake was made; and away again.
	r.status.Store(http.StatusOK)
	late := New(Options{})
	defer late.Close()
	late.SetCallbackURL(r.URL)
	if err := late.Reply(ctx, "+27831234567", "ACK 3"); err != nil {
		t.Fatalf("after SetCallbackURL: %v", err)
	}
	if got := decodeCallback(t, r.next(t), TypeReply, "Message", "Number"); len(got) != 1 || got[0].Message != "ACK 3" {
		t.Errorf("sent %+v", got)
	}
	late.SetCallbackURL("")
	if err := late.Reply(ctx, "+27831234567", "x"); err == nil {
		t.Error("Reply after SetCallbackURL(\"\") succeeded")
	}
}

// syncBuffer is a bytes.Buffer safe for the fake's goroutines and the
// test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCallbackFailuresKeepTheSecret makes callbacks fail in each way and
// checks the logs and errors for the callback URL's token.
func TestCallbackFailuresKeepTheSecret(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	r := newReceiver(t)
	r.status.Store(http.StatusInternalServerError)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/api/v1/sms/callback/" + token
	l.Close()

	var errs []string
	for i, u := range []string{
		r.URL,                           // answers 500
		refused,                         // nothing listens
		"http://127.0.0.1:bad/" + token, // does not parse
		"ftp://127.0.0.1/" + token,      // not HTTP
	} {
		s := newTest(t, Options{Credits: Unlimited, CallbackURL: u, Logger: logger})
		if status, _ := send(t, s, "x", "+27831234567"); status != http.StatusAccepted {
			t.Fatalf("status %d", status)
		}
		err := s.Reply(context.Background(), "+27831234567", "ACK 1")
		if err == nil {
			t.Errorf("Reply to %s succeeded", u)
			continue
		}
		errs = append(errs, err.Error())
		// The receipt goes on its own goroutine, and Close would cancel it
		// before its attempt: wait for its line first.
		for deadline := time.Now().Add(5 * time.Second); strings.Count(logs.String(), "fake sms api callback failed") < 2*(i+1); {
			if time.Now().After(deadline) {
				t.Fatalf("no failed receipt logged for %s:\n%s", u, logs.String())
			}
			time.Sleep(time.Millisecond)
		}
		s.Close()
	}
	if !strings.Contains(strings.Join(errs, "\n"), "callback answered 500") {
		t.Errorf("errors %q do not report the 500", errs)
	}
	out := logs.String()
	if n := strings.Count(out, "fake sms api callback failed"); n != 8 {
		t.Errorf("%d failed callbacks logged, want 8 (a receipt and a reply each time):\n%s", n, out)
	}
	for name, text := range map[string]string{"errors": strings.Join(errs, "\n"), "logs": out} {
		if strings.Contains(text, token) {
			t.Errorf("%s contain the callback token:\n%s", name, text)
		}
	}
	for range 2 { // the receiver did get the receipt and the reply
		r.next(t)
	}
}
