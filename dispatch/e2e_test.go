package dispatch

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// These tests run the real sms.Client against the sms/fake fake, so the
// dispatcher meets the provider's failure modes as HTTP replies, through the
// client's own classification.

const testKey = "test-key-not-a-secret"

func newE2E(t *testing.T, opts smsfake.Options, cfg Config) (*harness, *smsfake.Server) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	srv := smsfake.NewServer(opts)
	t.Cleanup(srv.Close)
	client, err := sms.New(sms.Config{URL: srv.URL, APIKey: testKey, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return newHarness(t, cfg, client, nil), srv
}

func TestE2EDeliver(t *testing.T) {
	h, srv := newE2E(t, smsfake.Options{Credits: smsfake.Unlimited}, Config{})
	h.run()
	nums := []string{"+27831234567", "+27831234568", "+27831234569"}
	id, err := h.store.Enqueue(context.Background(), outbox.Notification{Source: "alertmanager", Status: "firing",
		Messages: []outbox.Message{
			{Receiver: "ops", Text: "[FIRING:1] DiskFull db1", Segments: 1, Numbers: nums[:2]},
			{Receiver: "db", Text: "[FIRING:1] DiskFull db1 (db)", Segments: 1, Numbers: nums[1:]},
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.WaitMessages(ctx, 4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "4 delivered", func() bool { return h.count(outbox.StateDelivered) == 4 })

	ids := map[string]string{}
	for _, m := range srv.Messages() {
		ids[m.Text+"|"+m.Number] = m.ID
	}
	for _, r := range h.records(outbox.Filter{NotificationID: id}) {
		if want := ids[r.Text+"|"+r.Number]; want == "" || r.APIMessageID != want {
			t.Errorf("record %s %s: api id %q, fake recorded %q", r.Text, r.Number, r.APIMessageID, want)
		}
	}
	if len(srv.Messages()) != 4 || srv.Requests() != 2 {
		t.Errorf("fake saw %d messages in %d requests, want 4 in 2", len(srv.Messages()), srv.Requests())
	}
}

func TestE2EFailureModes(t *testing.T) {
	good := []string{"+27831234567", "+27831234568"}
	for _, tc := range []struct {
		name  string
		opts  smsfake.Options
		cfg   Config
		fault *smsfake.Fault
		times int
		// fix, if set, is called once the test has seen the failure.
		fix       func(*smsfake.Server)
		wantHeld  string
		delivered int
		failed    map[string]int // error code -> rows
		requests  int            // exact count, 0 to skip
	}{
		{
			name:      "429 pause respected",
			fault:     &smsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1},
			times:     1,
			delivered: 2,
			requests:  2,
		},
		{
			name:      "5xx retried with backoff",
			cfg:       Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
			fault:     &smsfake.Fault{Status: http.StatusInternalServerError},
			times:     2,
			delivered: 2,
			requests:  3,
		},
		{
			name:      "connection dropped, retried",
			cfg:       Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
			fault:     &smsfake.Fault{Drop: true},
			times:     1,
			delivered: 2,
			requests:  2,
		},
		{
			name:      "401 holds, then recovers",
			cfg:       Config{HoldRetry: 20 * time.Millisecond},
			fault:     &smsfake.Fault{Status: http.StatusUnauthorized},
			times:     3,
			wantHeld:  "unauthorized",
			delivered: 2,
			requests:  4,
		},
		{
			name:      "403 holds, then recovers",
			cfg:       Config{HoldRetry: 20 * time.Millisecond},
			fault:     &smsfake.Fault{Status: http.StatusForbidden},
			times:     2,
			wantHeld:  "suspended",
			delivered: 2,
			requests:  3,
		},
		{
			name:      "405 out of credits holds until topped up",
			opts:      smsfake.Options{Credits: 0},
			cfg:       Config{HoldRetry: 20 * time.Millisecond},
			fix:       func(s *smsfake.Server) { s.SetCredits(smsfake.Unlimited) },
			wantHeld:  "no_credits",
			delivered: 2,
		},
		{
			name:     "400 fails the rows",
			fault:    &smsfake.Fault{Status: http.StatusBadRequest},
			times:    1,
			failed:   map[string]int{ReasonBadRequest: 2},
			requests: 1,
		},
		{
			name:      "number missing from the reply is rejected",
			opts:      smsfake.Options{Credits: smsfake.Unlimited, Omit: 1},
			delivered: 1,
			failed:    map[string]int{sms.CodeMissingInReply: 1},
			requests:  1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Credits == 0 && tc.fix == nil {
				tc.opts.Credits = smsfake.Unlimited
			}
			h, srv := newE2E(t, tc.opts, tc.cfg)
			if tc.fault != nil {
				srv.FailNext(tc.times, *tc.fault)
			}
			h.enqueue("ops", "[FIRING:1] DiskFull db1", good...)
			h.run()
			if tc.wantHeld != "" {
				waitFor(t, "held", func() bool { return h.d.State().HeldKind == tc.wantHeld })
				if v := value(t, h.m.held); v != 1 {
					t.Errorf("held gauge %v", v)
				}
			}
			if tc.fix != nil {
				tc.fix(srv)
			}
			waitFor(t, "settled", func() bool {
				return h.count(outbox.StateDelivered)+h.count(outbox.StateFailed) == len(good)
			})
			if n := h.count(outbox.StateDelivered); n != tc.delivered {
				t.Errorf("%d delivered, want %d", n, tc.delivered)
			}
			got := map[string]int{}
			for _, r := range h.records(outbox.Filter{State: outbox.StateFailed}) {
				got[r.ErrorCode]++
			}
			for code, n := range tc.failed {
				if got[code] != n {
					t.Errorf("failed with %s: %d, want %d (all: %v)", code, got[code], n, got)
				}
			}
			if e := srv.EarlyRequests(); e != 0 {
				t.Errorf("%d requests arrived inside a 429 pause", e)
			}
			if tc.requests != 0 && srv.Requests() != tc.requests {
				t.Errorf("%d requests, want %d", srv.Requests(), tc.requests)
			}
			if s := h.d.State(); s.Mode == ModeHeld {
				t.Errorf("still held: %+v", s)
			}
		})
	}
}

// TestE2ERateLimitUnderLoad sends many texts through a provider that
// enforces a rate limit, with a client-side limit above it: the 429s that
// follow must pause everything, and every message still arrives.
func TestE2ERateLimitUnderLoad(t *testing.T) {
	h, srv := newE2E(t, smsfake.Options{Credits: smsfake.Unlimited, RateLimit: 5, RateLimitPause: 1},
		Config{RateLimit: 50, BatchSize: 10})
	const texts = 12
	for i := range texts {
		h.enqueue("ops", "alert "+strings.Repeat("x", i), "+27831234567")
	}
	h.run()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WaitMessages(ctx, texts); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all delivered", func() bool { return h.count(outbox.StateDelivered) == texts })
	if e := srv.EarlyRequests(); e != 0 {
		t.Errorf("%d requests arrived inside a 429 pause", e)
	}
	if srv.Requests() <= texts {
		t.Errorf("%d requests for %d texts: the provider's limit never tripped, the test proves nothing", srv.Requests(), texts)
	}
}

// TestE2EInvalidNumber: a number the client refuses is never sent and fails
// for good; the valid one in the same batch is delivered.
func TestE2EInvalidNumber(t *testing.T) {
	h, srv := newE2E(t, smsfake.Options{Credits: smsfake.Unlimited}, Config{})
	h.enqueue("ops", "x", "+27831234567", "+12")
	h.run()
	waitFor(t, "settled", func() bool { return h.count(outbox.StateDelivered) == 1 && h.count(outbox.StateFailed) == 1 })
	rs := h.records(outbox.Filter{State: outbox.StateFailed})
	if rs[0].ErrorCode != sms.CodeInvalidNumber {
		t.Errorf("failed record %+v", rs[0])
	}
	for _, m := range srv.Messages() {
		if m.Number == "+12" {
			t.Error("invalid number reached the provider")
		}
	}
	if !slices.ContainsFunc(srv.Messages(), func(m smsfake.Message) bool { return m.Number == "+27831234567" }) {
		t.Error("valid number not sent")
	}
}
