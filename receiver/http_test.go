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
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
)

// fakeSink records what it accepts and fails when told to.
type fakeSink struct {
	mu         sync.Mutex
	got        []*Notification
	err        error
	recipients int
}

func (s *fakeSink) Accept(_ context.Context, n *Notification) (Accepted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return Accepted{}, s.err
	}
	s.got = append(s.got, n)
	return Accepted{ID: int64(len(s.got)), Recipients: s.recipients}, nil
}

type harness struct {
	e    *echo.Echo
	sink *fakeSink
	reg  *prometheus.Registry
	logs *bytes.Buffer
}

func newHarness(t *testing.T, st *State) *harness {
	t.Helper()
	h := &harness{e: echo.New(), sink: &fakeSink{recipients: 2}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewTextHandler(h.logs, nil))
	rh := New(h.sink, logger, NewMetrics(h.reg))
	rh.SetState(st)
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
		{"too large", "application/json", bytes.Repeat([]byte(" "), DefaultBodyLimit+1), nil, 2, 413, "larger than the limit", "too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, &State{Alertmanager: &Source{Name: SourceAlertmanager}})
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
	h := newHarness(t, &State{Alertmanager: &Source{Name: SourceAlertmanager}})
	rec := h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), nil)
	if rec.Code != 202 {
		t.Fatalf("code %d: %s", rec.Code, rec.Body)
	}
	n := h.sink.got[0]
	if n.Source != "alertmanager" || n.GroupKey == "" || n.Data.Status != "firing" ||
		n.Data.Alerts[0].Labels["instance"] != "db1:9100" || n.Data.CommonAnnotations["summary"] != "Disk almost full" ||
		n.Data.ExternalURL != "http://alertmanager.example:9093" || n.Data.Alerts[0].Fingerprint != "c1d2e3f4a5b6c7d8" {
		t.Errorf("decoded %+v", n)
	}
}

func TestAlertmanagerAuth(t *testing.T) {
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
			h := newHarness(t, &State{Alertmanager: &Source{Name: SourceAlertmanager, Verifier: v}})
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

func TestWebhookAnswers(t *testing.T) {
	m, err := mapping.Config{Preset: "plain"}.Compile("scripts")
	if err != nil {
		t.Fatal(err)
	}
	st := &State{
		Alertmanager: &Source{Name: SourceAlertmanager},
		Webhooks: map[string]*Source{
			"scripts": {Name: "scripts", Mapping: m},
			"limited": {Name: "limited", Mapping: m, Limiter: rate.NewLimiter(rate.Limit(0.001), 1)},
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
	n := h.sink.got[0]
	if n.Source != "scripts" || n.Data.Status != "firing" || len(n.Data.Alerts) != 1 || n.Data.CommonLabels["host"] != "db1" {
		t.Errorf("notification %+v", n)
	}
}

func TestNotReady(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler(slog.New(slog.DiscardHandler))
	New(&fakeSink{}, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewRegistry())).Register(e)
	for _, p := range []string{"/api/v1/alertmanager", "/api/v1/webhooks/x"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, p, strings.NewReader("{}")))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: %d, want 503", p, rec.Code)
		}
	}
}
