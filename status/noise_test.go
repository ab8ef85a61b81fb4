package status

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/receiver"
)

type fakeNoise struct {
	n   Noise
	err error
}

func (f fakeNoise) Noise(context.Context) (Noise, error) { return f.n, f.err }

func newNoiseServer(t *testing.T, src NoiseSource, records []outbox.Record, prefix string) *httptest.Server {
	t.Helper()
	st := &fakeStore{records: records}
	h, err := New(Options{Store: st, Bridge: &fakeBridge{provider: Provider{State: ProviderOK}}, Started: testNow,
		Now: func() time.Time { return testNow }, Logger: slog.New(slog.DiscardHandler), Noise: src, PathPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = receiver.ErrorHandler(slog.New(slog.DiscardHandler))
	h.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func TestNoiseSection(t *testing.T) {
	t.Parallel()
	full := Noise{
		DedupWindow: 5 * time.Minute, Throttle: []string{"5 per 15m", "11 per 1h"}, Window: time.Hour,
		Numbers: []NumberNoise{
			{Number: "+27830000001", Sent: 11, Held: []string{"FIRING DiskFull db1", "RESOLVED NodeDown n3"}, NextRelease: testNow.Add(7 * time.Minute)},
			{Number: "+27830000002", Sent: 2, DigestWaiting: true, Held: []string{"FIRING X"}, NextRelease: testNow},
			{Number: "+27830000003", Sent: 1},
		},
		Budget: &BudgetNoise{Day: "2026-11-26", TimeZone: "Europe/Berlin", Limit: 500, Used: 500, Critical: []string{`severity="critical"`}},
	}
	records := []outbox.Record{
		{ID: 7, NotificationID: 3, Source: "alertmanager", Receiver: "ops", Number: "+27830000001", Text: "FIRING:1 DiskFull",
			State: outbox.StateBundled, BundledInto: 9, UpdatedAt: testNow},
		{ID: 8, NotificationID: 4, Source: "alertmanager", Receiver: "ops", Number: "+27830000001", Text: "FIRING:1 Held",
			State: outbox.StateHeld, NextAttemptAt: testNow.Add(7 * time.Minute), UpdatedAt: testNow},
		{ID: 9, NotificationID: 5, Source: "digest", Receiver: "ops", Number: "+27830000001", Text: "2 held: ...",
			State: outbox.StatePending, UpdatedAt: testNow},
		{ID: 10, NotificationID: 6, Source: "alertmanager", Receiver: "ops", Number: "+27830000004", Text: "RESOLVED:1 X",
			State: outbox.StateCancelled, ErrorCode: outbox.CodeResolvedBeforeSent, Error: "resolved before sent: the group resolved", UpdatedAt: testNow},
	}
	for _, tc := range []struct {
		name    string
		src     NoiseSource
		prefix  string
		want    []string
		notWant []string
	}{
		{"throttle and budget", fakeNoise{n: full}, "", []string{
			`id="noise"`, "At most 5 per 15m, 11 per 1h to one number", "Sent (1h)",
			"&#43;2783****001", "2 held</span> FIRING DiskFull db1; RESOLVED NodeDown n3", "2026-11-26 03:07:00Z (in 7m 0s)",
			"digest queued", "500 of 500 segments", "(100%, 0 left)", "Spent: only critical messages go", "budget-spent",
			"Europe/Berlin", "severity=&#34;critical&#34;",
			`bundled into digest <a href="/#delivery-9">#9</a>`, "held for the number until 2026-11-26 03:07:00Z",
			"resolved before sent: the group resolved", "digest of messages the throttle held",
		}, []string{"27830000001", "27830000002", "last: <span class=\"warn\">resolved before sent"}},
		{"under a route prefix", fakeNoise{n: full}, "/sms", []string{
			`bundled into digest <a href="/sms/#delivery-9">#9</a>`,
		}, []string{`href="/#`, `href="#`}},
		{"off", fakeNoise{n: Noise{DedupWindow: time.Minute, Numbers: []NumberNoise{{Number: "+27830000001", Sent: 4}}}}, "", []string{
			"Off: no <code>throttle.per_number</code>", "Off: no <code>budget.daily_segments</code>", "within 1m are not sent",
		}, []string{"budget-spent", "Still held"}},
		{"off, something still held", fakeNoise{n: Noise{DedupWindow: time.Minute, Numbers: []NumberNoise{{Number: "+27830000001", Sent: 4},
			{Number: "+27830000002", Held: []string{"FIRING A"}}}}}, "", []string{
			"Still held from an earlier configuration, for 1 number; they go out as digests.",
		}, nil},
		{"unreadable", fakeNoise{err: errors.New("database is locked")}, "", []string{
			"the throttle and budget could not be read; see the bridge&#39;s log",
		}, []string{"database is locked"}},
		{"no source", nil, "", nil, []string{`id="noise"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newNoiseServer(t, tc.src, records, tc.prefix)
			code, body := do(t, "GET", srv.URL+"/", "")
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %s", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page shows %s", w)
				}
			}
		})
	}
}

func TestNoiseAPI(t *testing.T) {
	t.Parallel()
	src := fakeNoise{n: Noise{DedupWindow: 5 * time.Minute, Throttle: []string{"3 per 10s"}, Window: 10 * time.Second,
		Numbers: []NumberNoise{{Number: "+27830000001", Sent: 3, Held: []string{"FIRING A"}, NextRelease: testNow.Add(time.Second)}},
		Budget:  &BudgetNoise{Day: "2026-11-26", TimeZone: "UTC", Limit: 10, Used: 4}}}
	records := []outbox.Record{{ID: 7, NotificationID: 3, Number: "+27830000001", State: outbox.StateBundled, BundledInto: 9, UpdatedAt: testNow},
		{ID: 8, NotificationID: 3, Number: "+27830000001", State: outbox.StateHeld, NextAttemptAt: testNow.Add(time.Minute), UpdatedAt: testNow}}
	srv := newNoiseServer(t, src, records, "")
	_, body := do(t, "GET", srv.URL+"/api/v1/status", "")
	for _, w := range []string{
		`"noise":{"dedup_window_seconds":300,"throttle":["3 per 10s"],"window_seconds":10,` +
			`"numbers":[{"number":"+2783****001","sent":3,"held":["FIRING A"],"next_release":"2026-11-26T03:00:01Z","digest_waiting":false}],` +
			`"budget":{"day":"2026-11-26","time_zone":"UTC","daily_segments":10,"used":4,"remaining":6,"critical":null}}`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("status lacks %s\n%s", w, body)
		}
	}
	_, body = do(t, "GET", srv.URL+"/api/v1/deliveries", "")
	for _, w := range []string{`"status":"bundled"`, `"bundled_into":9`, `"status":"held"`, `"next_attempt_at":"2026-11-26T03:01:00Z"`} {
		if !strings.Contains(body, w) {
			t.Errorf("deliveries lack %s\n%s", w, body)
		}
	}
	if strings.Contains(body, "+27830000001") {
		t.Error("a full number in the API")
	}
}
