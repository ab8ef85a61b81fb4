package touchbase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/sms"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// These tests run the client against the fake, as the rest of the project
// will.

func newFake(t *testing.T, opts smsfake.Options) (*smsfake.Server, *Client) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	f := smsfake.NewServer(opts)
	t.Cleanup(f.Close)
	return f, newTestClient(t, f.URL, nil)
}

func TestFakeReplyStyles(t *testing.T) {
	t.Parallel()
	numbers := []string{"+27831234567", "+4412345678", "+1 202 555 0123", "+27831234567"}
	tests := []struct {
		name     string
		opts     smsfake.Options
		accepted []bool
	}{
		{"documented", smsfake.Options{}, []bool{true, true, true, true}},
		{"numbers as json", smsfake.Options{NumbersAsJSON: true}, []bool{true, true, true, true}},
		{"without plus", smsfake.Options{StripPlus: true}, []bool{true, true, true, true}},
		{"reversed", smsfake.Options{Reverse: true}, []bool{true, true, true, true}},
		{"last omitted", smsfake.Options{Omit: 1}, []bool{true, true, false, true}},
		{"reversed, last omitted", smsfake.Options{Reverse: true, Omit: 1}, []bool{false, true, true, false}},
		{"extra fields", smsfake.Options{ExtraFields: true, NumbersAsJSON: true, Reverse: true}, []bool{true, true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Credits = smsfake.Unlimited
			f, c := newFake(t, tc.opts)
			res, err := c.Send(context.Background(), "db1 down", numbers)
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]string{}
			for _, m := range f.Messages() {
				ids[m.Number] = m.ID
			}
			if len(ids) != 3 {
				t.Fatalf("fake recorded %d numbers, want 3 (the duplicate sent once)", len(ids))
			}
			for i, r := range res.Numbers {
				if r.Number != numbers[i] || r.Accepted != tc.accepted[i] {
					t.Errorf("result %d = %+v, want accepted=%v", i, r, tc.accepted[i])
				}
				norm, _ := sms.NormalizeNumber(numbers[i])
				if r.Accepted && r.MessageID != ids[norm] {
					t.Errorf("result %d has id %q, the fake gave %q", i, r.MessageID, ids[norm])
				}
				if !r.Accepted && r.ErrorCode != sms.CodeMissingInReply {
					t.Errorf("result %d code %q, want %s", i, r.ErrorCode, sms.CodeMissingInReply)
				}
			}
		})
	}
}

func TestFakeAccountProblems(t *testing.T) {
	t.Parallel()
	f, c := newFake(t, smsfake.Options{Credits: 2})
	if _, err := c.Send(context.Background(), "one", []string{"+27831234567", "+4412345678"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Send(context.Background(), "two", []string{"+27831234567"})
	var e *sms.Error
	if !errors.As(err, &e) || e.Kind != sms.KindNoCredits || !e.AccountProblem() {
		t.Fatalf("with no credits left: %v, want no_credits", err)
	}
	f.SetCredits(smsfake.Unlimited)
	if _, err := c.Send(context.Background(), "two", []string{"+27831234567"}); err != nil {
		t.Fatalf("after topping up: %v", err)
	}

	wrong, err := New(Config{URL: f.URL, APIKey: "wrong-key", Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Send(context.Background(), "x", []string{"+27831234567"})
	if !errors.As(err, &e) || e.Kind != sms.KindUnauthorized || e.Message != "API key is invalid." {
		t.Fatalf("wrong key: %v, want unauthorized with the documented message", err)
	}
}

// TestFakeRateLimit runs the client against the fake's 429s. The client
// keeps no pause: a Send during the announced pause reaches the fake, which
// counts it as early and announces the rest of the pause, and the client
// reports that as the new wait. A 429 that names no wait comes back with
// RetryAfter 0, for the caller's default pause.
func TestFakeRateLimit(t *testing.T) {
	t.Parallel()
	f, c := newFake(t, smsfake.Options{Credits: smsfake.Unlimited})
	f.FailNext(1, smsfake.Fault{Status: 429, RetryAfter: 600})
	_, err := c.Send(context.Background(), "x", []string{"+27831234567"})
	var e *sms.Error
	if !errors.As(err, &e) || e.Kind != sms.KindRateLimited || e.RetryAfter != 600*time.Second {
		t.Fatalf("got %v, want rate limited for 600s", err)
	}
	_, err = c.Send(context.Background(), "x", []string{"+27831234567"})
	if !errors.As(err, &e) || e.Kind != sms.KindRateLimited || e.StatusCode != 429 || e.RetryAfter < 590*time.Second || e.RetryAfter > 600*time.Second {
		t.Fatalf("early request: %v, want a 429 announcing the rest of the pause", err)
	}
	if f.Requests() != 2 || f.EarlyRequests() != 1 {
		t.Errorf("fake saw %d requests, %d early; want 2, 1", f.Requests(), f.EarlyRequests())
	}

	g, c := newFake(t, smsfake.Options{Credits: smsfake.Unlimited})
	g.FailNext(1, smsfake.Fault{Status: 429})
	_, err = c.Send(context.Background(), "x", []string{"+27831234567"})
	if !errors.As(err, &e) || e.Kind != sms.KindRateLimited || e.RetryAfter != 0 {
		t.Fatalf("429 naming no wait: %v, want rate limited with RetryAfter 0", err)
	}
	if _, err := c.Send(context.Background(), "x", []string{"+27831234567"}); err != nil || g.EarlyRequests() != 0 {
		t.Errorf("after a 429 that announced no pause: %v, %d early", err, g.EarlyRequests())
	}
}

func TestFakeConcurrentSends(t *testing.T) {
	t.Parallel()
	f, c := newFake(t, smsfake.Options{Credits: smsfake.Unlimited, Latency: time.Millisecond})
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				res, err := c.Send(context.Background(), fmt.Sprintf("w%d m%d", w, i), []string{fmt.Sprintf("+2783%07d", w*100+i)})
				if err == nil && !res.Numbers[0].Accepted {
					err = fmt.Errorf("not accepted: %+v", res.Numbers[0])
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.WaitMessages(ctx, workers*each); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFakeCallbacksParse closes the loop: the fake's delivery and reply
// callbacks, written independently of this package, parse into the
// events the bridge acts on.
func TestFakeCallbacksParse(t *testing.T) {
	t.Parallel()
	got := make(chan []sms.Event, 10)
	var c *Client
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		events, err := c.ParseCallback(r.Header, body)
		if err != nil {
			t.Errorf("ParseCallback(%s): %v", body, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- events
	}))
	t.Cleanup(recv.Close)
	f, c := newFake(t, smsfake.Options{Credits: smsfake.Unlimited, CallbackURL: recv.URL + "/callback/token"})
	f.FailDelivery("+4412345678", "Undeliverable")
	if _, err := c.Send(context.Background(), "db1 down", []string{"+27831234567", "+44 1234 5678"}); err != nil {
		t.Fatal(err)
	}
	next := func() []sms.Event {
		t.Helper()
		select {
		case evs := <-got:
			return evs
		case <-time.After(30 * time.Second):
			t.Fatal("no callback arrived")
			return nil
		}
	}
	evs := next()
	if len(evs) != 2 {
		t.Fatalf("events %+v, want 2", evs)
	}
	for i, want := range []sms.Event{
		{Kind: sms.EventStatus, Type: "MessageStatusUpdate", Number: "+27831234567", Status: "Delivered"},
		{Kind: sms.EventStatus, Type: "MessageStatusUpdate", Number: "+4412345678", Status: "Undeliverable", Failed: true},
	} {
		e := evs[i]
		if time.Since(e.At) > time.Minute || time.Until(e.At) > time.Minute {
			t.Errorf("event %d at %s, want about now", i, e.At)
		}
		e.At = time.Time{}
		if e != want {
			t.Errorf("event %d = %+v, want %+v", i, e, want)
		}
	}

	if err := f.Reply(context.Background(), "+27831234567", "ACK 12"); err != nil {
		t.Fatal(err)
	}
	evs = next()
	if len(evs) != 1 || evs[0].Kind != sms.EventReply || evs[0].Number != "+27831234567" || evs[0].Text != "ACK 12" {
		t.Errorf("reply events %+v", evs)
	}
}
