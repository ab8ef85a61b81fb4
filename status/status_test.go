package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/receiver"
)

var testNow = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

// fakeStore is an outbox with canned rows that records what it was asked.
type fakeStore struct {
	mu       sync.Mutex
	records  []outbox.Record
	stats    outbox.Stats
	statsErr error
	listErr  error
	filters  []outbox.Filter
	nfilters []outbox.NotificationFilter
	retried  []int64
	counts   outbox.Counts
	since    []time.Time
	// outcomes are the outcomes of notifications without deliveries, by
	// id; they are listed too.
	outcomes map[int64]string
}

func (s *fakeStore) Counts(_ context.Context, since time.Time) (outbox.Counts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.since = append(s.since, since)
	if s.statsErr != nil {
		return outbox.Counts{}, s.statsErr
	}
	return s.counts, nil
}

// Notifications groups the canned rows by notification, newest first, as
// the outbox does.
func (s *fakeStore) Notifications(_ context.Context, f outbox.NotificationFilter) ([]outbox.NotificationRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nfilters = append(s.nfilters, f)
	if s.listErr != nil {
		return nil, s.listErr
	}
	byID := map[int64]*outbox.NotificationRecord{}
	for id, o := range s.outcomes {
		byID[id] = &outbox.NotificationRecord{ID: id, Outcome: o, Source: "alertmanager", Status: "firing", ReceivedAt: testNow.Add(-time.Minute), AlertName: "Unrouted"}
	}
	for _, r := range s.records {
		n, ok := byID[r.NotificationID]
		if !ok {
			n = &outbox.NotificationRecord{ID: r.NotificationID, ReceivedAt: r.ReceivedAt, Source: r.Source, GroupKey: r.GroupKey,
				Status: r.Status, AlertName: r.AlertName, Outcome: outbox.OutcomeAccepted}
			byID[r.NotificationID] = n
		}
		n.Deliveries = append(n.Deliveries, r)
	}
	var out []outbox.NotificationRecord
	for _, n := range byID {
		keep := f.State == ""
		for _, r := range n.Deliveries {
			keep = keep || r.State == f.State
		}
		if keep {
			out = append(out, *n)
		}
	}
	slices.SortFunc(out, func(a, b outbox.NotificationRecord) int { return int(b.ID - a.ID) })
	return out, nil
}

func (s *fakeStore) Stats(context.Context) (outbox.Stats, error) { return s.stats, s.statsErr }

func (s *fakeStore) Deliveries(_ context.Context, f outbox.Filter) ([]outbox.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, f)
	if s.listErr != nil {
		return nil, s.listErr
	}
	var out []outbox.Record
	for _, r := range s.records {
		if (f.State == "" || r.State == f.State) && (f.Since.IsZero() || !r.UpdatedAt.Before(f.Since)) &&
			(f.NotificationID == 0 || r.NotificationID == f.NotificationID) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *fakeStore) Retry(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.records {
		if r.ID != id {
			continue
		}
		if r.State != outbox.StateFailed {
			return fmt.Errorf("retry delivery %d: %w", id, outbox.ErrNotFailed)
		}
		s.records[i].State = outbox.StatePending
		s.retried = append(s.retried, id)
		return nil
	}
	if id == 99 {
		return errors.New("disk on fire")
	}
	return fmt.Errorf("retry delivery %d: %w", id, ErrUnknownDelivery)
}

func (s *fakeStore) lastFilter() outbox.Filter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filters[len(s.filters)-1]
}

type fakeBridge struct {
	provider Provider
	reload   Reload
	dryRun   bool
	tested   []map[string]string
}

func (b *fakeBridge) Info() Info {
	return Info{
		DryRun:     b.dryRun,
		ConfigFile: "/etc/smsbridge/smsbridge.yml", ConfigHash: "0123456789abcdef0123", LoadedAt: testNow.Add(-time.Hour),
		LastReload: b.reload,
		Tree:       "default-route  receiver: ops\n└── {team=\"db\"}  receiver: db\n",
		Receivers:  []Receiver{{Name: "ops", Numbers: []string{"+27831110001"}, SendResolved: true}, {Name: "db", Numbers: []string{"+27831110002", "+27831110003"}}},
		Sources:    []string{"alertmanager", "github"},
	}
}

func (b *fakeBridge) Provider() Provider {
	p := b.provider
	if p.Accounts == nil {
		// One account, as the summary says.
		a := Account{Name: "primary", Mode: p.State, Active: true, PausedUntil: p.Until, Requests: 40, Errors: 3,
			LastError: "502 Bad Gateway", LastErrorAt: testNow.Add(-2 * time.Minute)}
		if p.State == ProviderHeld {
			a.HeldSince, a.HeldReason, a.HeldStatus, a.HeldMessage = p.Since, p.Reason, p.StatusCode, p.Message
			a.NextProbe = testNow.Add(45 * time.Second)
		}
		p.Accounts = []Account{a}
	}
	return p
}

func (b *fakeBridge) RoutesTest(labels map[string]string) (RouteTest, error) {
	b.tested = append(b.tested, labels)
	if labels["team"] == "db" {
		return RouteTest{Messages: 1, Recipients: 2, Plans: []Plan{{
			Receiver: "db", Routes: []Route{{Path: "route.routes[0]", Key: `{}/{team="db"}`}}, Alerts: 1,
			Numbers: []string{"+27831110002", "+27831110003"}, Text: "[FIRING] DiskFull <db>", Segments: 1,
		}}}, nil
	}
	return RouteTest{Plans: []Plan{{Receiver: "ops", Routes: []Route{{Path: "route", Key: "{}"}}, Skipped: "the receiver has no numbers"}}}, nil
}

func (b *fakeBridge) SendTest(_ context.Context, name string) (TestResult, error) {
	switch name {
	case "ops":
		return TestResult{ID: 7, Receiver: "ops", Text: "smsbridge test", Numbers: []string{"+27831110001"}}, nil
	case "empty":
		return TestResult{}, fmt.Errorf("send test: %w", ErrNoNumbers)
	case "broken":
		return TestResult{}, errors.New("store closed")
	}
	return TestResult{}, fmt.Errorf("send test to %s: %w", name, ErrUnknownReceiver)
}

func sampleRecords() []outbox.Record {
	at := testNow.Add(-10 * time.Minute)
	return []outbox.Record{
		{ID: 1, NotificationID: 1, ReceivedAt: at, UpdatedAt: at, Source: "alertmanager", Status: "firing", AlertName: "HighLatency", Receiver: "ops",
			Number: "+27831110001", Text: "[FIRING:1] HighLatency", Segments: 1, State: outbox.StateAccepted, Attempts: 1, Account: "primary",
			APIMessageID: "af750c2dc53e4e4c"},
		{ID: 2, NotificationID: 2, ReceivedAt: at, UpdatedAt: at.Add(time.Minute), Source: "github", Status: "firing", AlertName: "GitHubWorkflowFailed", Receiver: "db",
			Number: "+27831110002", Text: "<script>alert(1)</script>", Segments: 2, State: outbox.StateFailed, Attempts: 1,
			ErrorCode: "E101", Error: "InvalidNumber"},
		{ID: 3, NotificationID: 3, ReceivedAt: at, UpdatedAt: at.Add(2 * time.Minute), Source: "alertmanager", Status: "firing", AlertName: "DiskFull", Receiver: "db",
			Number: "+27831110003", Text: "[FIRING:1] DiskFull", Segments: 1, State: outbox.StatePending, Attempts: 2,
			Error: "502 Bad Gateway", NextAttemptAt: testNow.Add(12 * time.Second)},
		{ID: 4, NotificationID: 1, ReceivedAt: at, UpdatedAt: at, Source: "alertmanager", Status: "firing", AlertName: "HighLatency", Receiver: "ops",
			Number: "+27831110004", Text: "[FIRING:1] HighLatency", Segments: 1, State: outbox.StateAccepted, Attempts: 1, Account: "primary",
			APIMessageID: DryRunIDPrefix + "0f3c"},
	}
}

func newTestServer(t *testing.T, b *fakeBridge, opts ...func(*Options)) (*httptest.Server, *fakeStore) {
	t.Helper()
	st := &fakeStore{records: sampleRecords(), stats: outbox.Stats{Pending: 1, Oldest: testNow.Add(-8 * time.Minute)},
		counts: outbox.Counts{Notifications: 14, Accepted: 31, Failed: 2}, outcomes: map[int64]string{5: outbox.OutcomeUnrouted}}
	o := Options{Store: st, Bridge: b, Started: testNow.Add(-26 * time.Hour), Now: func() time.Time { return testNow },
		Logger: slog.New(slog.DiscardHandler), AdminAPI: true}
	for _, f := range opts {
		f(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = receiver.ErrorHandler(slog.New(slog.DiscardHandler))
	h.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, st
}

func do(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestStatusPage(t *testing.T) {
	tests := []struct {
		name     string
		provider Provider
		reload   Reload
		dryRun   bool
		query    string
		code     int
		want     []string
		notWant  []string
	}{
		{
			name: "everything", provider: Provider{State: ProviderOK}, reload: Reload{At: testNow.Add(-time.Hour)},
			code: 200,
			want: []string{
				"up <span id=\"uptime\">1d 2h</span>", "/etc/smsbridge/smsbridge.yml", ">0123456789ab<", "success",
				// 24 h counts, the failed ones a link to them; the queue.
				`id="count-notifications">14<`, `id="count-accepted">31<`, `id="count-failed"><a href="/?status=failed">2</a>`,
				`id="count-pending">1<`, "8m 0s old",
				// The provider card: mode, error rate, last error, in flight.
				`id="account-primary" data-mode="ok"`, `<span class="badge mode-ok">ok</span> sending`, "carries traffic",
				"3 of 40 requests failed (7.5%)", "502 Bad Gateway", "0 requests",
				// Grouped by notification, newest first: alert name, source,
				// receivers, one chip per masked number.
				`<tbody id="notification-1" class="notification" data-notification="1">`,
				`<div class="alertname">HighLatency</div>`, "from <code>alertmanager</code>", "to ops",
				`<span class="chip st-accepted" id="delivery-1" data-status="accepted"><code>&#43;2783****001</code> <b>accepted</b></span>`,
				`<span class="chip st-accepted" id="delivery-4" data-status="accepted"><code>&#43;2783****004</code> <b>accepted</b> <i class="dry">dry run, not sent</i></span>`,
				"2 accepted", "provider id <code class=\"msgid\">af750c2dc53e4e4c</code>", "dry run, not sent: fake id",
				`id="delivery-2" data-status="failed"`, "E101: InvalidNumber", `action="/deliveries/2/retry"`,
				// The text in full, escaped, with its segments.
				`<div class="sms">&lt;script&gt;alert(1)&lt;/script&gt;</div><div class="hint">2 segments</div>`,
				`<div class="sms">[FIRING:1] DiskFull</div><div class="hint">1 segment</div>`,
				// The next attempt of a pending row, and its last error.
				`id="delivery-3" data-status="pending"`, "next attempt 2026-11-26 03:00:12Z <span class=\"hint\">(in 12s)</span>, after 2 attempts; last: <span class=\"warn\">502 Bad Gateway</span>",
				// A notification that reached nobody says so.
				`id="notification-5"`, "Nobody paged:",
				"default-route  receiver: ops\n└── {team=&#34;db&#34;}  receiver: db",
				`action="/routes-test"`, "alertmanager, github",
				// It reloads itself every 30 s, within the CSP: no script.
				`<meta http-equiv="refresh" content="30">`, `<a href="/?refresh=off" id="refresh-toggle">stop</a>`,
			},
			notWant: []string{"<script>", `action="/deliveries/1/retry"`, `action="/deliveries/3/retry"`, "dry-run-banner", "Next probe",
				"1 numbers", "1 segments", "1 alerts"},
		},
		{
			name: "failed filter", provider: Provider{State: ProviderOK}, query: "?status=failed", code: 200,
			want:    []string{`id="notification-2"`, `id="delivery-2"`, `<a href="/?status=failed" class="active">failed</a>`},
			notWant: []string{`id="delivery-1"`, `id="delivery-3"`, `id="notification-5"`},
		},
		{
			name: "refresh off is kept by the filters", provider: Provider{State: ProviderOK}, query: "?status=failed&refresh=off", code: 200,
			want: []string{`<a href="/?refresh=off&amp;status=failed" class="active">failed</a>`, `<a href="/?refresh=off">all</a>`,
				`<a href="/?status=failed" id="refresh-toggle">turn it on</a>`},
			notWant: []string{`http-equiv="refresh"`},
		},
		{
			name: "paused", provider: Provider{State: ProviderPaused, Until: testNow.Add(17 * time.Second), StatusCode: 429,
				Message: "Rate limit is exceeded.  Try again in 17 seconds."},
			code: 200,
			want: []string{`<span class="badge mode-paused">paused</span>`, "Nothing starts through it before 2026-11-26 03:00:17Z (<span>17s</span> left)",
				"waits for the provider&#39;s rate-limit pause to end at 2026-11-26 03:00:17Z"},
		},
		{
			name: "held", provider: Provider{State: ProviderHeld, Reason: "no_credits", StatusCode: 405, Since: testNow.Add(-3 * time.Minute),
				Message: "You don't have enough credits on your account!"},
			code: 200,
			want: []string{`data-mode="held"`, `<span class="badge mode-held">held</span> the provider refuses the account`,
				// A pending number says why it waits: the held account.
				`<span class="warn">waits: the account is held (the account has no credits); next probe 2026-11-26 03:00:45Z</span>, after 2 attempts`,
				"the account has no credits (HTTP 405), since 2026-11-26 02:57:00Z (3m 0s ago)",
				"You don&#39;t have enough credits on your account!",
				`<dd class="next-probe">2026-11-26 03:00:45Z (in 45s)</dd>`},
		},
		{
			name: "dry run", provider: Provider{State: ProviderOK}, dryRun: true, code: 200,
			want: []string{`<div class="banner dry-run-banner" id="dry-run-banner" role="status">`, "Dry run: nothing is sent.",
				"<title>[dry run] smsbridge status</title>", `<span class="badge dry">dry run</span>`, "ok</span> sending to the in-process fake"},
		},
		{
			name: "failed reload", provider: Provider{State: ProviderOK}, reload: Reload{At: testNow, Err: "smsbridge.yml:12: unknown receiver \"nobody\""},
			code: 200,
			want: []string{`<span class="badge bad">failed</span>`, "smsbridge.yml:12: unknown receiver &#34;nobody&#34;", "previous configuration keeps serving"},
		},
		{
			name: "bad filter", provider: Provider{State: ProviderOK}, query: "?status=lost", code: 400,
			want:    []string{`id="notifications-error"`, `status &#34;lost&#34; is not one of pending, held, sending, accepted, bundled, cancelled, failed`},
			notWant: []string{`id="delivery-1"`},
		},
		{
			name: "bad since", provider: Provider{State: ProviderOK}, query: "?since=yesterday", code: 400,
			want: []string{"neither an RFC 3339 time"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t, &fakeBridge{provider: tc.provider, reload: tc.reload, dryRun: tc.dryRun})
			code, body := do(t, "GET", srv.URL+"/"+tc.query, "")
			if code != tc.code {
				t.Errorf("status %d, want %d", code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
			if t.Failed() {
				t.Log(body)
			}
		})
	}
}

// TestStatusPageAsksForTheLast24Hours: the counts are of the 24 hours
// before now, and the page lists 25 notifications unless asked for more.
func TestStatusPageAsksForTheLast24Hours(t *testing.T) {
	srv, st := newTestServer(t, &fakeBridge{provider: Provider{State: ProviderOK}})
	do(t, "GET", srv.URL+"/", "")
	do(t, "GET", srv.URL+"/?limit=500&status=pending", "")
	if len(st.since) != 2 || !st.since[0].Equal(testNow.Add(-24*time.Hour)) {
		t.Errorf("counts asked since %v, want %v", st.since, testNow.Add(-24*time.Hour))
	}
	want := []outbox.NotificationFilter{{Limit: 25}, {State: outbox.StatePending, Limit: 200}}
	if !slices.Equal(st.nfilters, want) {
		t.Errorf("notification filters %+v, want %+v", st.nfilters, want)
	}
}

// TestStatusPageUnderPrefix: every link, form and asset of the pages
// starts with the external URL's path.
func TestStatusPageUnderPrefix(t *testing.T) {
	srv, _ := newTestServer(t, &fakeBridge{provider: Provider{State: ProviderOK}}, func(o *Options) { o.PathPrefix = "/sms/" })
	for _, page := range []string{"/", "/routes-test?labels=team%3Ddb"} {
		_, body := do(t, "GET", srv.URL+page, "")
		for _, w := range []string{`href="/sms/static/status.css"`, `href="/sms/"`, `href="/sms/routes-test"`, `href="/sms/metrics"`,
			`action="/sms/routes-test"`} {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %s", page, w)
			}
		}
		for _, m := range regexp.MustCompile(`(?:href|action|src)="(/[^"]*)"`).FindAllStringSubmatch(body, -1) {
			if !strings.HasPrefix(m[1], "/sms/") {
				t.Errorf("%s links to %s, outside the prefix", page, m[1])
			}
		}
	}
	_, body := do(t, "GET", srv.URL+"/", "")
	for _, w := range []string{`action="/sms/deliveries/2/retry"`, `href="/sms/?status=failed"`, `href="/sms/api/v1/deliveries"`} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %s", w)
		}
	}
	code, _ := do(t, "POST", srv.URL+"/deliveries/2/retry", "")
	if code != http.StatusSeeOther {
		t.Fatalf("retry answered %d", code)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/deliveries/2/retry", nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusConflict && loc != "/sms/?status=pending" {
		t.Errorf("redirect to %q, want /sms/?status=pending", loc)
	}
}

func TestStatusPageHeadersAndAssets(t *testing.T) {
	srv, _ := newTestServer(t, &fakeBridge{provider: Provider{State: ProviderOK}})
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=UTF-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	code, css := do(t, "GET", srv.URL+"/static/status.css", "")
	if code != 200 || !strings.Contains(css, ".badge") {
		t.Errorf("stylesheet: %d %.80q", code, css)
	}
}

func TestStatusDeliveriesAPI(t *testing.T) {
	tests := []struct {
		query   string
		code    int
		filter  outbox.Filter
		ids     []int64
		wantErr string
	}{
		{query: "", code: 200, filter: outbox.Filter{Limit: 100}, ids: []int64{1, 2, 3, 4}},
		{query: "?status=failed", code: 200, filter: outbox.Filter{State: outbox.StateFailed, Limit: 100}, ids: []int64{2}},
		{query: "?status=all&limit=5", code: 200, filter: outbox.Filter{Limit: 5}, ids: []int64{1, 2, 3, 4}},
		{query: "?notification=1", code: 200, filter: outbox.Filter{NotificationID: 1, Limit: 100}, ids: []int64{1, 4}},
		{query: "?since=2026-11-26T02:50:30Z", code: 200, filter: outbox.Filter{Since: time.Date(2026, 11, 26, 2, 50, 30, 0, time.UTC), Limit: 100}, ids: []int64{2, 3}},
		{query: "?since=1h&status=pending", code: 200, filter: outbox.Filter{State: outbox.StatePending, Since: testNow.Add(-time.Hour), Limit: 100}, ids: []int64{3}},
		{query: "?since=2d", code: 200, filter: outbox.Filter{Since: testNow.Add(-48 * time.Hour), Limit: 100}, ids: []int64{1, 2, 3, 4}},
		{query: "?notification=first", code: 400, wantErr: `notification "first" is not a positive whole number`},
		{query: "?notification=0", code: 400, wantErr: "not a positive whole number"},
		{query: "?status=FAILED", code: 400, wantErr: `status "FAILED" is not one of pending, held, sending, accepted, bundled, cancelled, failed`},
		{query: "?since=soon", code: 400, wantErr: `since "soon" is neither an RFC 3339 time`},
		{query: "?since=-1h", code: 400, wantErr: "neither an RFC 3339 time"},
		{query: "?limit=0", code: 400, wantErr: `limit "0" is not a whole number from 1 to 1000`},
		{query: "?limit=1001", code: 400, wantErr: "from 1 to 1000"},
		{query: "?limit=ten", code: 400, wantErr: "from 1 to 1000"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			srv, st := newTestServer(t, &fakeBridge{})
			code, body := do(t, "GET", srv.URL+"/api/v1/deliveries"+tc.query, "")
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if tc.wantErr != "" {
				var e struct{ Status, Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Status != "error" || !strings.Contains(e.Error, tc.wantErr) {
					t.Errorf("body %s, want an error containing %q", body, tc.wantErr)
				}
				return
			}
			if got := st.lastFilter(); got != tc.filter {
				t.Errorf("filter %+v, want %+v", got, tc.filter)
			}
			var res struct{ Deliveries []deliveryJSON }
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, d := range res.Deliveries {
				ids = append(ids, d.ID)
				if !strings.Contains(d.Number, "****") {
					t.Errorf("delivery %d number %q is not masked", d.ID, d.Number)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
				t.Errorf("ids %v, want %v", ids, tc.ids)
			}
		})
	}
}

func TestStatusDeliveriesAPIFields(t *testing.T) {
	srv, _ := newTestServer(t, &fakeBridge{})
	_, body := do(t, "GET", srv.URL+"/api/v1/deliveries?status=failed", "")
	want := `{"deliveries":[{"id":2,"notification_id":2,"received_at":"2026-11-26T02:50:00Z","updated_at":"2026-11-26T02:51:00Z",` +
		`"source":"github","group_key":"","alert_status":"firing","alert_name":"GitHubWorkflowFailed","receiver":"db","number":"+2783****002","status":"failed",` +
		`"attempts":1,"segments":2,"text":"\u003cscript\u003ealert(1)\u003c/script\u003e","error_code":"E101","error":"InvalidNumber"}]}`
	if strings.TrimSpace(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
}

func TestStatusRetry(t *testing.T) {
	tests := []struct {
		path    string
		hdr     []string
		code    int
		wantErr string
	}{
		{path: "/api/v1/deliveries/2/retry", code: 202},
		{path: "/api/v1/deliveries/1/retry", code: 409, wantErr: "delivery 1 has not failed"},
		{path: "/api/v1/deliveries/3/retry", code: 409, wantErr: "only a failed delivery can be retried"},
		{path: "/api/v1/deliveries/42/retry", code: 404, wantErr: "no delivery with id 42"},
		{path: "/api/v1/deliveries/abc/retry", code: 400, wantErr: `is not a positive whole number`},
		{path: "/api/v1/deliveries/-4/retry", code: 400, wantErr: "not a positive whole number"},
		{path: "/api/v1/deliveries/99/retry", code: 503, wantErr: "retry delivery failed; see the bridge's log"},
		{path: "/api/v1/deliveries/2/retry", hdr: []string{"Sec-Fetch-Site", "cross-site"}, code: 403, wantErr: "cross-origin request refused"},
		{path: "/deliveries/2/retry", code: 303},
		{path: "/deliveries/2/retry", hdr: []string{"Origin", "https://evil.example"}, code: 403},
	}
	for _, tc := range tests {
		t.Run(tc.path+fmt.Sprint(tc.hdr), func(t *testing.T) {
			logs := &lockedBuffer{}
			srv, st := newTestServer(t, &fakeBridge{}, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
			code, body := do(t, "POST", srv.URL+tc.path, "", tc.hdr...)
			// A retry is an operator's act: logged once, with where it came
			// from; a refused one is not.
			lines := strings.Count(logs.String(), `msg="failed delivery queued again on request" delivery=2`)
			via := map[int]string{202: "via=api", 303: `via="status page"`}[tc.code]
			if (via != "") != (lines == 1) || lines > 1 || !strings.Contains(logs.String(), via) {
				t.Errorf("log after %d:\n%s", tc.code, logs)
			}
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if tc.wantErr != "" && !strings.Contains(body, tc.wantErr) {
				t.Errorf("body %s, want %q", body, tc.wantErr)
			}
			if wantRetried := tc.code == 202 || tc.code == 303; wantRetried != (len(st.retried) == 1) {
				t.Errorf("retried %v", st.retried)
			}
			if tc.code == 202 && strings.TrimSpace(body) != `{"id":2,"status":"queued"}` {
				t.Errorf("body %s", body)
			}
		})
	}
}

func TestStatusRetryIsPostOnly(t *testing.T) {
	srv, st := newTestServer(t, &fakeBridge{})
	if code, _ := do(t, "GET", srv.URL+"/api/v1/deliveries/2/retry", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET retry answered %d", code)
	}
	if len(st.retried) != 0 {
		t.Error("a GET retried a delivery")
	}
}

func TestStatusSendTestAPI(t *testing.T) {
	tests := []struct {
		body string
		hdr  []string
		code int
		want string
	}{
		{`{"receiver":"ops"}`, nil, 202, `{"id":7,"numbers":["+2783****001"],"receiver":"ops","recipients":1,"status":"accepted","text":"smsbridge test"}`},
		{`{"receiver":"nobody"}`, nil, 404, `no receiver named \"nobody\" is configured`},
		{`{"receiver":"empty"}`, nil, 422, `receiver \"empty\" has no numbers`},
		{`{"receiver":"broken"}`, nil, 503, "queue test sms failed; see the bridge's log"},
		{`{"receiver":""}`, nil, 400, `\"receiver\" is missing`},
		{`{}`, nil, 400, `\"receiver\" is missing`},
		{`receiver=ops`, nil, 400, `body must be JSON like`},
		{``, nil, 400, `body must be JSON like`},
		{`{"receiver":"ops"}`, []string{"Sec-Fetch-Site", "same-site"}, 403, "cross-origin"},
		{`{"receiver":"ops"}`, []string{"Sec-Fetch-Site", "same-origin"}, 202, `"status":"accepted"`},
	}
	for _, tc := range tests {
		t.Run(tc.body+fmt.Sprint(tc.hdr), func(t *testing.T) {
			srv, _ := newTestServer(t, &fakeBridge{})
			code, body := do(t, "POST", srv.URL+"/api/v1/test", tc.body, append([]string{"Content-Type", "application/json"}, tc.hdr...)...)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("body %s, want %q", body, tc.want)
			}
		})
	}
}

func TestStatusAPI(t *testing.T) {
	tests := []struct {
		name     string
		provider Provider
		reload   Reload
		statsErr error
		want     []string
	}{
		{"ok", Provider{State: ProviderOK}, Reload{At: testNow}, nil, []string{
			`"uptime_seconds":93600`, `"dry_run":false`, `"file":"/etc/smsbridge/smsbridge.yml"`, `"hash":"0123456789abcdef0123"`,
			`"last_reload_result":"success"`, `"provider":{"state":"ok","in_flight":0,"accounts":[{"name":"primary","mode":"ok","active":true,` +
				`"last_error":"502 Bad Gateway","last_error_at":"2026-11-26T02:58:00Z","requests_15m":40,"errors_15m":3,"in_flight":0}]}`,
			`"outbox":{"pending":1,"in_flight":0,"oldest_pending_age_seconds":480}`,
			`"last_24h":{"notifications":14,"accepted":31,"failed":2}`}},
		{"held", Provider{State: ProviderHeld, Reason: "unauthorized", StatusCode: 401, Since: testNow, Message: "API key is invalid."}, Reload{At: testNow, Err: "bad"}, nil, []string{
			`"provider":{"state":"held","since":"2026-11-26T03:00:00Z","reason":"unauthorized","status_code":401,"message":"API key is invalid.","in_flight":0,`,
			`{"name":"primary","mode":"held","active":true,"held_since":"2026-11-26T03:00:00Z","held_reason":"unauthorized","held_status_code":401,` +
				`"held_message":"API key is invalid.","next_probe":"2026-11-26T03:00:45Z",`,
			`"last_reload_result":"failure","last_reload_error":"bad"`}},
		{"store down", Provider{State: ProviderPaused, Until: testNow.Add(time.Minute)}, Reload{}, errors.New("database is locked"), []string{
			`"provider":{"state":"paused","until":"2026-11-26T03:01:00Z","in_flight":0,`, `"paused_until":"2026-11-26T03:01:00Z"`,
			`"outbox_error":"the outbox could not be read; see the bridge's log"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, st := newTestServer(t, &fakeBridge{provider: tc.provider, reload: tc.reload})
			st.statsErr = tc.statsErr
			code, body := do(t, "GET", srv.URL+"/api/v1/status", "")
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %s\n%s", w, body)
				}
			}
			if strings.Contains(body, "database is locked") {
				t.Error("an internal error reached the caller")
			}
		})
	}
}

func TestStatusStoreErrorsOnPage(t *testing.T) {
	srv, st := newTestServer(t, &fakeBridge{provider: Provider{State: ProviderOK}})
	st.statsErr, st.listErr = errors.New("database is locked"), errors.New("database is locked")
	code, body := do(t, "GET", srv.URL+"/", "")
	if code != 200 {
		t.Errorf("status %d", code)
	}
	if !strings.Contains(body, "the outbox could not be read") || !strings.Contains(body, "the notifications could not be read") ||
		!strings.Contains(body, "the counts could not be read") {
		t.Error("the page does not say the outbox failed")
	}
	if strings.Contains(body, "database is locked") {
		t.Error("an internal error reached the page")
	}
}

func TestStatusRoutesTestPage(t *testing.T) {
	tests := []struct {
		labels  string
		code    int
		want    []string
		notWant []string
	}{
		{"", 200, []string{`id="labels"`, "default-route"}, []string{"routes-test-summary"}},
		{`team=db alertname="Disk Full"`, 200, []string{
			`value="team=db alertname=&#34;Disk Full&#34;"`,
			`{alertname=&#34;Disk Full&#34;, team=&#34;db&#34;}`, "would queue 1 message to 2 numbers",
			`data-receiver="db"`, "route.routes[0]", "&#43;2783****002, &#43;2783****003", "[FIRING] DiskFull &lt;db&gt;", "<dd>1</dd>"},
			[]string{"27831110002"}},
		{`{team="web"}`, 200, []string{"would queue 0 messages to 0 numbers", "nothing: the receiver has no numbers"}, nil},
		{`team`, 400, []string{`label &#34;team&#34; is not of the form name=value`}, nil},
		{`team="db`, 400, []string{"a quoted value is not closed"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.labels, func(t *testing.T) {
			b := &fakeBridge{}
			srv, _ := newTestServer(t, b)
			code, body := do(t, "GET", srv.URL+"/routes-test?labels="+urlQueryEscape(tc.labels), "")
			if code != tc.code {
				t.Errorf("status %d, want %d", code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
			if t.Failed() {
				t.Log(body)
			}
		})
	}
}

func urlQueryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", `"`, "%22", "{", "%7B", "}", "%7D", "=", "%3D", "&", "%26", "+", "%2B")
	return r.Replace(s)
}

// TestStatusNeverShowsFullNumbers renders every page and endpoint and
// looks for the full numbers the fakes hold.
func TestStatusNeverShowsFullNumbers(t *testing.T) {
	b := &fakeBridge{provider: Provider{State: ProviderOK}}
	srv, _ := newTestServer(t, b)
	full := []string{"+27831110001", "27831110001", "+27831110002", "27831110002", "+27831110003", "27831110003"}
	pages := []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/?status=failed", ""}, {"GET", "/routes-test?labels=team%3Ddb", ""},
		{"GET", "/api/v1/deliveries", ""}, {"GET", "/api/v1/status", ""}, {"POST", "/api/v1/test", `{"receiver":"ops"}`},
	}
	for _, p := range pages {
		_, body := do(t, p.method, srv.URL+p.path, p.body)
		for _, n := range full {
			if strings.Contains(body, n) {
				t.Errorf("%s %s shows %s", p.method, p.path, n)
			}
		}
	}
}

// TestStatusAPIDryRun: in a dry run the API says so, on the status, on
// each delivery the fake took and on a test send.
func TestStatusAPIDryRun(t *testing.T) {
	for _, dry := range []bool{false, true} {
		t.Run(fmt.Sprint(dry), func(t *testing.T) {
			srv, _ := newTestServer(t, &fakeBridge{provider: Provider{State: ProviderOK}, dryRun: dry})
			_, status := do(t, "GET", srv.URL+"/api/v1/status", "")
			_, deliveries := do(t, "GET", srv.URL+"/api/v1/deliveries?notification=1", "")
			_, test := do(t, "POST", srv.URL+"/api/v1/test", `{"receiver":"ops"}`, "Content-Type", "application/json")
			if got := strings.Contains(status, `"dry_run":true`); got != dry {
				t.Errorf("status says dry run %v, want %v: %s", got, dry, status)
			}
			if got := strings.Contains(test, `"dry_run":true`); got != dry {
				t.Errorf("test send says dry run %v, want %v: %s", got, dry, test)
			}
			// The row the fake took is marked whatever the mode now: it
			// was never sent.
			var res struct{ Deliveries []deliveryJSON }
			if err := json.Unmarshal([]byte(deliveries), &res); err != nil || len(res.Deliveries) != 2 {
				t.Fatalf("deliveries %s: %v", deliveries, err)
			}
			for _, d := range res.Deliveries {
				if d.DryRun != (d.ID == 4) {
					t.Errorf("delivery %d dry_run %v", d.ID, d.DryRun)
				}
			}
		})
	}
}

// lockedBuffer is a log destination that handlers and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
