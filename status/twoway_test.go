package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// fakeTwoWay has canned opt-outs and acknowledgements.
type fakeTwoWay struct {
	outs []outbox.OptOut
	acks []outbox.Ack
	err  error
}

func (f *fakeTwoWay) OptOuts(context.Context) ([]outbox.OptOut, error) { return f.outs, f.err }

func (f *fakeTwoWay) Acks(context.Context, time.Time, int) ([]outbox.Ack, error) {
	return f.acks, f.err
}

func (f *fakeTwoWay) NameOf(n string) string {
	if n == "+27831110002" {
		return "bob"
	}
	return ""
}

// twoWayRecords are the sample rows with receipts, a code and a failover.
func twoWayRecords() []outbox.Record {
	rs := sampleRecords()
	rs[0].Receipt, rs[0].ReceiptWord, rs[0].ReceiptAt, rs[0].ReplyCode = outbox.ReceiptDelivered, "Delivered", testNow.Add(-9*time.Minute), "12"
	rs[3].Receipt, rs[3].ReceiptWord, rs[3].ReceiptAt, rs[3].FailedOverTo = outbox.ReceiptFailed, "Undeliverable", testNow.Add(-9*time.Minute), 6
	at := testNow.Add(-8 * time.Minute)
	return append(rs, outbox.Record{ID: 7, NotificationID: 6, ReceivedAt: at, UpdatedAt: at, Source: "alertmanager", Status: "firing",
		AlertName: "HighLatency", Receiver: "backup", Number: "+27831110009", Text: "[FIRING:1] HighLatency", Segments: 1,
		State: outbox.StatePending, FailoverOf: 4})
}

func TestTwoWayOnThePage(t *testing.T) {
	t.Parallel()
	tw := &fakeTwoWay{
		outs: []outbox.OptOut{{Number: "+27831110002", At: testNow.Add(-time.Hour)}},
		acks: []outbox.Ack{
			{NotificationID: 1, Number: "+27831110001", Person: "alice", Code: 12, At: testNow.Add(-5 * time.Minute), Until: testNow.Add(55 * time.Minute),
				Silence: outbox.SilenceCreated, SilenceID: "3f2a-silence"},
			{NotificationID: 3, Number: "+27831110003", Code: 4, At: testNow.Add(-2 * time.Minute), Until: testNow.Add(58 * time.Minute),
				Silence: outbox.SilencePending, Attempts: 2, Error: "connection refused", NextAttempt: testNow.Add(10 * time.Second)},
		},
	}
	srv, st := newTestServer(t, &fakeBridge{}, func(o *Options) { o.TwoWay = tw })
	st.records = twoWayRecords()
	code, page := do(t, "GET", srv.URL+"/", "")
	if code != 200 {
		t.Fatalf("page %d", code)
	}
	for _, want := range []string{
		`id="optout-banner"`, "1 number gets no SMS, pages included:", "<code>bob (&#43;2783****002)</code> replied STOP",
		`data-receipt="delivered">delivered</i>`, `<i class="receipt r-failed" data-receipt="failed">failed</i>`,
		"delivered to the handset 2026-11-26 02:51:00Z", "reply code 12",
		`not delivered to the handset: Undeliverable, 2026-11-26 02:51:00Z; sent to the receiver's on_undelivered as <a href="/#notification-6">#6</a>`,
		`failover of <a href="/#delivery-4">delivery #4</a>`,
		"acked by <b>alice (&#43;2783****001)</b> (ACK 12)", "silence <code>3f2a-silence</code>",
		"acked by <b>&#43;2783****003</b> (ACK 4)", "silence pending", "2 attempts, last: connection refused; next in 10s",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, full := range []string{"27831110001", "27831110002", "27831110009"} {
		if strings.Contains(page, full) {
			t.Errorf("the page shows %s in full", full)
		}
	}

	code, body := do(t, "GET", srv.URL+"/api/v1/status", "")
	if code != 200 || !strings.Contains(body, `"opted_out":[{"number":"+2783****002","at":"2026-11-26T02:00:00Z"}]`) {
		t.Errorf("status %d %s", code, body)
	}
	code, body = do(t, "GET", srv.URL+"/api/v1/deliveries", "")
	for _, want := range []string{`"receipt":"delivered","receipt_word":"Delivered","receipt_at":"2026-11-26T02:51:00Z","reply_code":"12"`,
		`"failover_of":4`, `"failed_over_to":6`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("deliveries lack %s", want)
		}
	}

	// Without opt-outs, no banner; the store failing says so.
	tw.outs = nil
	if _, page := do(t, "GET", srv.URL+"/", ""); strings.Contains(page, "optout-banner") {
		t.Error("a banner without opt-outs")
	}
	tw.err = errors.New("disk on fire")
	if code, page := do(t, "GET", srv.URL+"/", ""); code != 200 || !strings.Contains(page, "the opt-outs could not be read") {
		t.Errorf("a failing store: %d", code)
	}
}

// optOutStore refuses to retry a delivery to an opted-out number.
type optOutStore struct{ *fakeStore }

func (optOutStore) Retry(context.Context, int64) error { return outbox.ErrOptedOut }

func TestRetryOptedOut(t *testing.T) {
	t.Parallel()
	srv, _ := newTestServer(t, &fakeBridge{}, func(o *Options) { o.Store = optOutStore{o.Store.(*fakeStore)}; o.AdminAPI = true })
	code, body := do(t, "POST", srv.URL+"/api/v1/deliveries/2/retry", "")
	if code != 409 || !strings.Contains(body, "replied STOP") {
		t.Errorf("retry to an opted-out number: %d %s", code, body)
	}
}

// TestOptOutBannerBounded: the banner lists at most maxOptOutsShown
// numbers and counts the rest, so many opt-outs do not make the page huge.
func TestOptOutBannerBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, shown int
		head     string
		more     string // "" for none
	}{
		{1, 1, "1 number gets no SMS", ""},
		{10, 10, "10 numbers get no SMS", ""},
		{11, 10, "11 numbers get no SMS", ", and 1 more"},
		{1000, 10, "1000 numbers get no SMS", ", and 990 more"},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			t.Parallel()
			tw := &fakeTwoWay{}
			for i := range tc.n {
				tw.outs = append(tw.outs, outbox.OptOut{Number: fmt.Sprintf("+2784%07d", i), At: testNow.Add(-time.Hour)})
			}
			srv, _ := newTestServer(t, &fakeBridge{}, func(o *Options) { o.TwoWay = tw })
			code, page := do(t, "GET", srv.URL+"/", "")
			if code != 200 {
				t.Fatalf("page %d", code)
			}
			if !strings.Contains(page, tc.head) {
				t.Errorf("banner lacks %q", tc.head)
			}
			if n := strings.Count(page, "replied STOP"); n != tc.shown {
				t.Errorf("banner lists %d numbers, want %d", n, tc.shown)
			}
			if has := strings.Contains(page, " more (<code>/api/v1/status</code> lists them)"); has != (tc.more != "") || (tc.more != "" && !strings.Contains(page, tc.more)) {
				t.Errorf("banner's rest: want %q", tc.more)
			}
			if tc.n == 1000 && len(page) > 40<<10 {
				t.Errorf("page of %d bytes with 1000 opt-outs", len(page))
			}
		})
	}
}
