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
	retried  []int64
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
		if (f.State == "" || r.State == f.State) && (f.Since.IsZero() || !r.UpdatedAt.Before(f.Since)) {
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
	tested   []map[string]string
}

func (b *fakeBridge) Info() Info {
	return Info{
		ConfigFile: "/etc/smsbridge/smsbridge.yml", ConfigHash: "0123456789abcdef0123", LoadedAt: testNow.Add(-time.Hour),
		LastReload: b.reload,
		Tree:       "default-route  receiver: ops\n└── {team=\"db\"}  receiver: db\n",
		Receivers:  []Receiver{{Name: "ops", Numbers: []string{"+27831110001"}, SendResolved: true}, {Name: "db", Numbers: []string{"+27831110002", "+27831110003"}}},
		Sources:    []string{"alertmanager", "github"},
	}
}

func (b *fakeBridge) Provider() Provider { return b.provider }

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
		{ID: 1, NotificationID: 1, ReceivedAt: at, UpdatedAt: at, Source: "alertmanager", Status: "firing", Receiver: "ops",
			Number: "+27831110001", Text: "[FIRING:1] HighLatency", Segments: 1, State: outbox.StateAccepted, Attempts: 1, APIMessageID: "af750c2dc53e4e4c"},
		{ID: 2, NotificationID: 2, ReceivedAt: at, UpdatedAt: at.Add(time.Minute), Source: "github", Status: "firing", Receiver: "db",
			Number: "+27831110002", Text: "<script>alert(1)</script>", Segments: 2, State: outbox.StateFailed, Attempts: 1,
			ErrorCode: "E101", Error: "InvalidNumber"},
		{ID: 3, NotificationID: 3, ReceivedAt: at, UpdatedAt: at.Add(2 * time.Minute), Source: "alertmanager", Status: "firing", Receiver: "db",
			Number: "+27831110003", Text: "[FIRING:1] DiskFull", Segments: 1, State: outbox.StatePending},
	}
}

func newTestServer(t *testing.T, b *fakeBridge) (*httptest.Server, *fakeStore) {
	t.Helper()
	st := &fakeStore{records: sampleRecords(), stats: outbox.Stats{Pending: 1, Oldest: testNow.Add(-8 * time.Minute)}}
	h, err := New(Options{Store: st, Bridge: b, Started: testNow.Add(-26 * time.Hour), Now: func() time.Time { return testNow },
		Logger: slog.New(slog.DiscardHandler)})
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
				`<span class="badge ok">ok</span> sending`,
				`class="big">1`, "8m 0s old",
				`id="delivery-1" class="row-accepted"`, `id="delivery-2" class="row-failed"`, `id="delivery-3" class="row-pending"`,
				"af750c2dc53e4e4c", "E101: InvalidNumber", "&#43;2783****001", "&#43;2783****002", // html/template escapes +
				`action="/deliveries/2/retry"`,
				"&lt;script&gt;alert(1)&lt;/script&gt;",
				"default-route  receiver: ops\n└── {team=&#34;db&#34;}  receiver: db",
				`action="/routes-test"`, "alertmanager, github",
			},
			notWant: []string{"<script>", `action="/deliveries/1/retry"`, `action="/deliveries/3/retry"`},
		},
		{
			name: "failed filter", provider: Provider{State: ProviderOK}, query: "?status=failed", code: 200,
			want:    []string{`id="delivery-2"`, `<a href="/?status=failed" class="active">failed</a>`},
			notWant: []string{`id="delivery-1"`, `id="delivery-3"`},
		},
		{
			name: "paused", provider: Provider{State: ProviderPaused, Until: testNow.Add(17 * time.Second), StatusCode: 429,
				Message: "Rate limit is exceeded.  Try again in 17 seconds."},
			code: 200,
			want: []string{`<span class="badge warn">paused</span> until 2026-11-26 03:00:17Z`, "17s", "Try again in 17 seconds."},
		},
		{
			name: "held", provider: Provider{State: ProviderHeld, Reason: "no_credits", StatusCode: 405, Since: testNow.Add(-3 * time.Minute),
				Message: "You don't have enough credits on your account!"},
			code: 200,
			want: []string{`<span class="badge bad">held</span> the account has no credits (HTTP 405)`, "3m 0s ago",
				"You don&#39;t have enough credits on your account!"},
		},
		{
			name: "failed reload", provider: Provider{State: ProviderOK}, reload: Reload{At: testNow, Err: "smsbridge.yml:12: unknown receiver \"nobody\""},
			code: 200,
			want: []string{`<span class="badge bad">failed</span>`, "smsbridge.yml:12: unknown receiver &#34;nobody&#34;", "previous configuration keeps serving"},
		},
		{
			name: "bad filter", provider: Provider{State: ProviderOK}, query: "?status=lost", code: 400,
			want:    []string{`id="deliveries-error"`, `status &#34;lost&#34; is not one of pending, held, sending, accepted, bundled, cancelled, failed`},
			notWant: []string{`id="delivery-1"`},
		},
		{
			name: "bad since", provider: Provider{State: ProviderOK}, query: "?since=yesterday", code: 400,
			want: []string{"neither an RFC 3339 time"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t, &fakeBridge{provider: tc.provider, reload: tc.reload})
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
		{query: "", code: 200, filter: outbox.Filter{Limit: 100}, ids: []int64{1, 2, 3}},
		{query: "?status=failed", code: 200, filter: outbox.Filter{State: outbox.StateFailed, Limit: 100}, ids: []int64{2}},
		{query: "?status=all&limit=5", code: 200, filter: outbox.Filter{Limit: 5}, ids: []int64{1, 2, 3}},
		{query: "?since=2026-11-26T02:50:30Z", code: 200, filter: outbox.Filter{Since: time.Date(2026, 11, 26, 2, 50, 30, 0, time.UTC), Limit: 100}, ids: []int64{2, 3}},
		{query: "?since=1h&status=pending", code: 200, filter: outbox.Filter{State: outbox.StatePending, Since: testNow.Add(-time.Hour), Limit: 100}, ids: []int64{3}},
		{query: "?since=2d", code: 200, filter: outbox.Filter{Since: testNow.Add(-48 * time.Hour), Limit: 100}, ids: []int64{1, 2, 3}},
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
		`"source":"github","group_key":"","alert_status":"firing","receiver":"db","number":"+2783****002","status":"failed",` +
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
			srv, st := newTestServer(t, &fakeBridge{})
			code, body := do(t, "POST", srv.URL+tc.path, "", tc.hdr...)
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
			`"uptime_seconds":93600`, `"file":"/etc/smsbridge/smsbridge.yml"`, `"hash":"0123456789abcdef0123"`,
			`"last_reload_result":"success"`, `"provider":{"state":"ok"}`,
			`"outbox":{"pending":1,"in_flight":0,"oldest_pending_age_seconds":480}`}},
		{"held", Provider{State: ProviderHeld, Reason: "unauthorized", StatusCode: 401, Since: testNow, Message: "API key is invalid."}, Reload{At: testNow, Err: "bad"}, nil, []string{
			`"provider":{"state":"held","since":"2026-11-26T03:00:00Z","reason":"unauthorized","status_code":401,"message":"API key is invalid."}`,
			`"last_reload_result":"failure","last_reload_error":"bad"`}},
		{"store down", Provider{State: ProviderPaused, Until: testNow.Add(time.Minute)}, Reload{}, errors.New("database is locked"), []string{
			`"provider":{"state":"paused","until":"2026-11-26T03:01:00Z"}`, `"outbox_error":"the outbox could not be read; see the bridge's log"`}},
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
	if !strings.Contains(body, "the outbox could not be read") || !strings.Contains(body, "the deliveries could not be read") {
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
