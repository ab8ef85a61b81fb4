package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
)

// fakeSink records what it accepts and fails when told to.
type fakeSink struct {
	mu         sync.Mutex
	got        []*alert.Notification
	err        error
	recipients int
	// outcome is reported when exact is set; otherwise the sink reports
	// accepted, or unrouted without recipients, as a pipeline would.
	outcome string
	exact   bool
	// replayed reports the store's answer to a delivery id it had.
	replayed bool
}

func (s *fakeSink) Accept(_ context.Context, n *alert.Notification) (Accepted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return Accepted{}, s.err
	}
	s.got = append(s.got, n)
	outcome := s.outcome
	if !s.exact {
		outcome = OutcomeAccepted
		if s.recipients == 0 {
			outcome = OutcomeUnrouted
		}
	}
	var receivers []string
	if s.recipients > 0 {
		receivers = []string{"ops", "db"}
	}
	return Accepted{ID: int64(len(s.got)), Recipients: s.recipients, Outcome: outcome, Receivers: receivers, AlertName: n.AlertName(),
		Replayed: s.replayed}, nil
}

// testNow is the handler's clock in tests.
var testNow = time.Date(2026, 11, 26, 3, 5, 0, 0, time.UTC)

const testBodyLimit = 1 << 20

func amSource() *Source {
	return &Source{Name: alert.SourceAlertmanager, BodyLimit: testBodyLimit}
}

func amOnly() *Sources { return &Sources{Alertmanager: amSource()} }

type harness struct {
	e    *echo.Echo
	sink *fakeSink
	reg  *prometheus.Registry
	m    *Metrics
	logs *bytes.Buffer
	// intake is what the handler serves each request with; tests may
	// replace it before sending.
	intake func() Intake
}

func (h *harness) metricsVec() *prometheus.CounterVec { return h.m.received }

func newHarness(t testing.TB, st *Sources) *harness {
	t.Helper()
	if err := st.Validate(); err != nil {
		t.Fatalf("sources: %v", err)
	}
	h := &harness{e: echo.New(), sink: &fakeSink{recipients: 2}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	h.m = NewMetrics(h.reg)
	h.intake = func() Intake { return Intake{Sources: st, Sink: h.sink} }
	logger := slog.New(slog.NewTextHandler(h.logs, nil))
	rh := New(func() Intake { return h.intake() }, logger, h.m)
	rh.now = func() time.Time { return testNow }
	rh.Precreate(st)
	rh.Register(h.e)
	h.e.HTTPErrorHandler = ErrorHandler(logger)
	return h
}

func (h *harness) do(method, path, ctype string, body []byte, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	return rec
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAlertmanagerAnswers(t *testing.T) {
	t.Parallel()
	good := fixture(t, "am-firing.json")
	replace := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	tests := []struct {
		name      string
		ctype     string
		body      []byte
		sinkErr   error
		recip     int
		wantCode  int
		wantInErr string
		outcome   string
	}{
		{"accepted", "application/json", good, nil, 2, 202, "", "accepted"},
		{"charset ok", "application/json; charset=utf-8", good, nil, 2, 202, "", "accepted"},
		{"no content type", "", good, nil, 2, 202, "", "accepted"},
		{"unrouted", "application/json", good, nil, 0, 202, "", "unrouted"},
		{"malformed", "application/json", []byte(`{"version":"4",`), nil, 2, 400, "not valid JSON", "invalid"},
		{"empty body", "application/json", nil, nil, 2, 400, "empty", "invalid"},
		{"wrong version", "application/json", replace(`"version": "4"`, `"version": "3"`), nil, 2, 400, `version "3"`, "invalid"},
		{"no version", "application/json", replace(`"version": "4",`, ``), nil, 2, 400, `no "version"`, "invalid"},
		{"no alerts", "application/json", []byte(`{"version":"4","status":"firing","alerts":[]}`), nil, 2, 400, "no alerts", "invalid"},
		{"bad status", "application/json", replace(`"status": "firing",`, `"status": "burning",`), nil, 2, 400, "burning", "invalid"},
		{"wrong type", "application/json", replace(`"truncatedAlerts": 0`, `"truncatedAlerts": "x"`), nil, 2, 400, "truncatedAlerts", "invalid"},
		{"label not string", "application/json", replace(`"team": "db", "severity": "critical", "instance"`, `"team": 7, "severity": "critical", "instance"`), nil, 2, 400, "wrong type", "invalid"},
		{"not json type", "text/plain", good, nil, 2, 415, "not JSON", "unsupported_media_type"},
		{"form", "application/x-www-form-urlencoded", good, nil, 2, 415, "application/json", "unsupported_media_type"},
		{"store down", "application/json", good, errors.New("disk I/O error"), 2, 503, "retry", "store_error"},
		{"too large", "application/json", bytes.Repeat([]byte(" "), testBodyLimit+1), nil, 2, 413, "larger than the limit", "too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, amOnly())
			h.sink.err = tc.sinkErr
			h.sink.recipients = tc.recip
			rec := h.do(http.MethodPost, "/api/v1/alertmanager", tc.ctype, tc.body, nil)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tc.wantCode, rec.Body)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("answer is not JSON: %s", rec.Body)
			}
			if tc.wantCode == 202 {
				if body["status"] != "accepted" || body["recipients"] != float64(tc.recip) {
					t.Errorf("body = %v", body)
				}
				if len(h.sink.got) != 1 {
					t.Fatalf("sink got %d notifications", len(h.sink.got))
				}
			} else {
				if body["status"] != "error" || !strings.Contains(body["error"].(string), tc.wantInErr) {
					t.Errorf("body = %v, want error containing %q", body, tc.wantInErr)
				}
				if len(h.sink.got) != 0 {
					t.Errorf("a refused request reached the sink")
				}
			}
			got := counterValue(t, h.reg, "alertmanager", tc.outcome)
			if got != 1 {
				t.Errorf("outcome %q counted %v times, want 1", tc.outcome, got)
			}
		})
	}
}

// counterValue reads smsbridge_notifications_received_total{source,outcome}.
func counterValue(t *testing.T, reg *prometheus.Registry, source, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smsbridge_notifications_received_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var s, o string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					s = l.GetValue()
				case "outcome":
					o = l.GetValue()
				}
			}
			if s == source && o == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series for source=%s outcome=%s", source, outcome)
	return 0
}

func TestAlertmanagerDecodesPayload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, amOnly())
	rec := h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), nil)
	if rec.Code != 202 {
		t.Fatalf("code %d: %s", rec.Code, rec.Body)
	}
	n := h.sink.got[0]
	if n.Source != "alertmanager" || n.GroupKey == "" || n.Data.Status != "firing" ||
		n.Data.Alerts[0].Labels["instance"] != "db1:9100" || n.Data.CommonAnnotations["summary"] != "Disk almost full" ||
		n.Data.ExternalURL != "http://alertmanager.example:9093" || n.Data.Alerts[0].Fingerprint != "c1d2e3f4a5b6c7d8" ||
		n.Data.GroupLabels["alertname"] != "DiskFull" || !n.ReceivedAt.Equal(testNow) {
		t.Errorf("decoded %+v", n)
	}
}

func TestAlertmanagerAuth(t *testing.T) {
	t.Parallel()
	const token = "am-token-9f8e7d"
	v, err := (&auth.Config{Type: "bearer", Secret: secret.Secret(token)}).Build()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"right", "Bearer " + token, 202},
		{"wrong", "Bearer nope", 401},
		{"missing", "", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := amSource()
			src.Verifier = v
			h := newHarness(t, &Sources{Alertmanager: src})
			hdr := http.Header{}
			if tc.header != "" {
				hdr.Set("Authorization", tc.header)
			}
			rec := h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), hdr)
			if rec.Code != tc.want {
				t.Fatalf("code = %d, want %d", rec.Code, tc.want)
			}
			if strings.Contains(rec.Body.String()+h.logs.String(), token) {
				t.Error("token leaked into the answer or the log")
			}
		})
	}
}

func compileMapping(t testing.TB, c mapping.Config, source string) *mapping.Mapping {
	t.Helper()
	m, err := c.Compile(source)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWebhookAnswers(t *testing.T) {
	t.Parallel()
	plain := mapping.Config{Preset: "plain"}
	st := &Sources{
		Alertmanager: amSource(),
		Webhooks: map[string]*Source{
			"scripts": {Name: "scripts", Mapping: compileMapping(t, plain, "scripts"), BodyLimit: testBodyLimit},
			"limited": {Name: "limited", Mapping: compileMapping(t, plain, "limited"), BodyLimit: testBodyLimit, Limiter: rate.NewLimiter(rate.Limit(0.001), 1)},
			"quiet":   {Name: "quiet", Mapping: compileMapping(t, mapping.Config{Preset: "plain", When: `{{ ne (get "env" .) "test" }}`}, "quiet"), BodyLimit: testBodyLimit},
		},
	}
	tests := []struct {
		name     string
		path     string
		body     string
		want     int
		wantBody string
	}{
		{"plain", "/api/v1/webhooks/scripts", `{"text":"backup failed on db1","labels":{"host":"db1"}}`, 202, `"accepted"`},
		{"unknown source", "/api/v1/webhooks/nope", `{}`, 404, `no webhook source named \"nope\"`},
		{"malformed", "/api/v1/webhooks/scripts", `{"text":`, 400, "JSON"},
		{"does not fit the mapping", "/api/v1/webhooks/scripts", `{"labels":{"host":"db1"}}`, 422, `text: missing`},
		{"filtered by when", "/api/v1/webhooks/quiet", `{"text":"x","env":"test"}`, 202, `"status":"filtered"`},
		{"rate limited first passes", "/api/v1/webhooks/limited", `{"text":"x"}`, 202, `"accepted"`},
		{"rate limited second refused", "/api/v1/webhooks/limited", `{"text":"x"}`, 429, "too many requests"},
	}
	h := newHarness(t, st)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(http.MethodPost, tc.path, "application/json", []byte(tc.body), nil)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", rec.Code, rec.Body, tc.want, tc.wantBody)
			}
			if tc.want == 429 && rec.Header().Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}
	if len(h.sink.got) != 2 {
		t.Fatalf("sink got %d notifications, want 2 (the filtered one never reaches it)", len(h.sink.got))
	}
	n := h.sink.got[0]
	if n.Source != "scripts" || n.Data.Status != "firing" || len(n.Data.Alerts) != 1 || n.Data.CommonLabels["host"] != "db1" || !n.ReceivedAt.Equal(testNow) {
		t.Errorf("notification %+v", n)
	}
	for _, c := range []struct {
		source, outcome string
		want            float64
	}{
		{"scripts", OutcomeAccepted, 1}, {"scripts", OutcomeInvalid, 2}, {"quiet", OutcomeFiltered, 1},
		{"limited", OutcomeAccepted, 1}, {"limited", OutcomeRateLimited, 1}, {"unknown", OutcomeUnknownSource, 1},
	} {
		if got := counterValue(t, h.reg, c.source, c.outcome); got != c.want {
			t.Errorf("%s/%s counted %v, want %v", c.source, c.outcome, got, c.want)
		}
	}
}

func TestNotReady(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]Intake{
		"nothing loaded": {},
		"no sink":        {Sources: amOnly()},
		"no sources":     {Sink: &fakeSink{}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := echo.New()
			e.HTTPErrorHandler = ErrorHandler(slog.New(slog.DiscardHandler))
			New(func() Intake { return in }, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewRegistry())).Register(e)
			for _, p := range []string{"/api/v1/alertmanager", "/api/v1/webhooks/x"} {
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, p, strings.NewReader("{}")))
				if rec.Code != http.StatusServiceUnavailable {
					t.Errorf("%s: %d, want 503", p, rec.Code)
				}
			}
		})
	}
}

// TestOneGenerationPerRequest: a request reads the generation once and
// uses that generation's sources and sink throughout, even when another
// generation is published while it is served.
func TestOneGenerationPerRequest(t *testing.T) {
	t.Parallel()
	const token = "gen-a-token"
	v, err := (&auth.Config{Type: "bearer", Secret: secret.Secret(token)}).Build()
	if err != nil {
		t.Fatal(err)
	}
	srcA := amSource()
	srcA.Verifier = v
	genA := Intake{Sources: &Sources{Alertmanager: srcA}, Sink: &fakeSink{recipients: 1}}
	// Generation B is open and would accept the request without a token.
	genB := Intake{Sources: amOnly(), Sink: &fakeSink{recipients: 1}}
	var calls atomic.Int64
	current := func() Intake {
		if calls.Add(1) == 1 {
			return genA
		}
		return genB
	}
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler(slog.New(slog.DiscardHandler))
	rh := New(current, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewRegistry()))
	rh.Register(e)

	req := httptest.NewRequest(http.MethodPost, "/api/v1/alertmanager", bytes.NewReader(fixture(t, "am-firing.json")))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("code %d: %s", rec.Code, rec.Body)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("current called %d times for one request, want 1", got)
	}
	if a, b := len(genA.Sink.(*fakeSink).got), len(genB.Sink.(*fakeSink).got); a != 1 || b != 0 {
		t.Errorf("generation A's sink got %d, B's %d; want 1 and 0", a, b)
	}
	// The next request is served by generation B.
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/alertmanager", bytes.NewReader(fixture(t, "am-firing.json"))))
	if rec.Code != http.StatusAccepted || len(genB.Sink.(*fakeSink).got) != 1 {
		t.Errorf("second request: code %d, B's sink got %d", rec.Code, len(genB.Sink.(*fakeSink).got))
	}
}

// TestSinkOutcomes: the outcome label and the 202's status come from the
// sink; an outcome the intake does not know is counted as accepted and
// logged, never turned into a new series.
func TestSinkOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sinkOutcome string
		recipients  int
		counted     string
		status      string
	}{
		{OutcomeAccepted, 2, OutcomeAccepted, "accepted"},
		{OutcomeUnrouted, 0, OutcomeUnrouted, "accepted"},
		{OutcomeFiltered, 0, OutcomeFiltered, "filtered"},
		{OutcomeDuplicate, 0, OutcomeDuplicate, "duplicate"},
		{OutcomeStale, 0, OutcomeStale, "stale"},
		{OutcomeMuted, 0, OutcomeMuted, "muted"},
		{"bogus", 2, OutcomeAccepted, "accepted"},
		{"", 2, OutcomeAccepted, "accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.sinkOutcome, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, amOnly())
			h.sink.recipients = tc.recipients
			h.sink.outcome, h.sink.exact = tc.sinkOutcome, true
			rec := h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), nil)
			var body accepted
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 202 {
				t.Fatalf("answer %d %s", rec.Code, rec.Body)
			}
			if body.Status != tc.status || body.Recipients != tc.recipients || body.ID != 1 {
				t.Errorf("body %+v, want status %q", body, tc.status)
			}
			if got := counterValue(t, h.reg, "alertmanager", tc.counted); got != 1 {
				t.Errorf("%s counted %v times, want 1", tc.counted, got)
			}
			known := slices.Contains(SinkOutcomes(), tc.sinkOutcome)
			if logged := strings.Contains(h.logs.String(), "outcome the intake does not know"); logged == known {
				t.Errorf("unknown outcome logged: %v; logs:\n%s", logged, h.logs)
			}
			if !known && seriesExists(t, h.reg, tc.sinkOutcome) {
				t.Errorf("a series for outcome %q was created", tc.sinkOutcome)
			}
		})
	}
}

func seriesExists(t *testing.T, reg *prometheus.Registry, outcome string) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return true
				}
			}
		}
	}
	return false
}

func TestPrecreate(t *testing.T) {
	t.Parallel()
	v, err := (&auth.Config{Type: "bearer", Secret: "t0ken"}).Build()
	if err != nil {
		t.Fatal(err)
	}
	st := &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{
		"ci": {Name: "ci", Mapping: compileMapping(t, mapping.Config{Preset: "plain"}, "ci"), BodyLimit: testBodyLimit, Verifier: v},
	}}
	st.Webhooks["limited"] = &Source{Name: "limited", Mapping: compileMapping(t, mapping.Config{Preset: "plain"}, "limited"),
		BodyLimit: testBodyLimit, Limiter: rate.NewLimiter(1, 1)}
	h := newHarness(t, st)
	// Only the combinations that can ever count: unauthorized for the
	// source with a verifier, rate_limited for the one with a limit,
	// unknown_source for the unknown source alone.
	possible := map[string][]string{
		"alertmanager": {"accepted", "unrouted", "filtered", "duplicate", "stale", "muted", "invalid", "too_large", "unsupported_media_type", "store_error"},
		"ci":           {"accepted", "unrouted", "filtered", "duplicate", "stale", "muted", "invalid", "unauthorized", "too_large", "unsupported_media_type", "store_error"},
		"limited":      {"accepted", "unrouted", "filtered", "duplicate", "stale", "muted", "invalid", "rate_limited", "too_large", "unsupported_media_type", "store_error"},
		"unknown":      {"unknown_source"},
	}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
		if mf.GetName() != "smsbridge_notifications_received_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var src, o string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					src = l.GetValue()
				case "outcome":
					o = l.GetValue()
				}
			}
			if v := m.GetCounter().GetValue(); v != 0 {
				t.Errorf("%s/%s = %v before any request", src, o, v)
			}
			got[src] = append(got[src], o)
		}
	}
	for src, want := range possible {
		slices.Sort(want)
		slices.Sort(got[src])
		if !slices.Equal(got[src], want) {
			t.Errorf("outcomes of source %s: %v, want %v", src, got[src], want)
		}
	}
	if len(got) != len(possible) {
		t.Errorf("series for sources %v", got)
	}
	// Auth failures are created for the source with a verifier only.
	if series["smsbridge_webhook_auth_failures_total"] != len(auth.Reasons) {
		t.Errorf("auth failure series %d, want %d", series["smsbridge_webhook_auth_failures_total"], len(auth.Reasons))
	}
	// One latency histogram per source, the unknown one included.
	if series["smsbridge_intake_duration_seconds"] != 4 {
		t.Errorf("intake duration series %d, want 4", series["smsbridge_intake_duration_seconds"])
	}
}

// TestLogKeys: the intake names its source with "intake_source" (promslog
// renames a "source" key, which it keeps for the caller) and errors with
// "err", and adds no component of its own.
func TestLogKeys(t *testing.T) {
	t.Parallel()
	v, err := (&auth.Config{Type: "bearer", Secret: "t0ken"}).Build()
	if err != nil {
		t.Fatal(err)
	}
	src := amSource()
	src.Verifier = v
	h := newHarness(t, &Sources{Alertmanager: src})
	h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), nil)
	h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), http.Header{"X-Forwarded-For": {"203.0.113.9"}})
	h.sink.err = errors.New("disk I/O error")
	h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), http.Header{"Authorization": {"Bearer t0ken"}})
	logs := h.logs.String()
	for _, want := range []string{
		`msg="request refused" intake_source=alertmanager outcome=unauthorized status=401 reason="wrong or missing credentials" remote_addr=192.0.2.1:1234 auth_failure=missing`,
		// What a proxy (or anyone) claims is logged beside the peer, not
		// instead of it.
		`remote_addr=192.0.2.1:1234 forwarded_for=203.0.113.9 auth_failure=missing`,
		"intake_source=alertmanager err=\"disk I/O error\"",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "component=") || strings.Contains(logs, "intake=") {
		t.Errorf("logs carry component or intake:\n%s", logs)
	}
}

func TestSourcesValidate(t *testing.T) {
	t.Parallel()
	m := compileMapping(t, mapping.Config{Preset: "plain"}, "ci")
	tests := []struct {
		name string
		s    *Sources
		want string // "" for valid
	}{
		{"alertmanager only", amOnly(), ""},
		{"with a webhook", &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{"ci": {Name: "ci", Mapping: m, BodyLimit: 1}}}, ""},
		{"no alertmanager", &Sources{}, "no alertmanager source"},
		{"alertmanager misnamed", &Sources{Alertmanager: &Source{Name: "am", BodyLimit: 1}}, `named "am"`},
		{"no body limit", &Sources{Alertmanager: &Source{Name: "alertmanager"}}, "body limit 0 is not positive"},
		{"alertmanager with mapping", &Sources{Alertmanager: &Source{Name: "alertmanager", BodyLimit: 1, Mapping: m}}, "takes no mapping"},
		{"webhook without mapping", &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{"ci": {Name: "ci", BodyLimit: 1}}}, `"ci": no mapping`},
		{"webhook misfiled", &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{"ci": {Name: "cd", Mapping: m, BodyLimit: 1}}}, `listed as "ci"`},
		{"webhook nil", &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{"ci": nil}}, `"ci": nil`},
		{"reserved name", &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{"unknown": {Name: "unknown", Mapping: m, BodyLimit: 1}}}, "reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.s.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
