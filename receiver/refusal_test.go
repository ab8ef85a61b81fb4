package receiver

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
)

// logLines returns the lines of logs whose message is msg.
func logLines(logs, msg string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `msg="`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// TestEveryRequestIsLogged: each refused request leaves one warning that
// says why, with its source, outcome and status; each accepted one an
// info line with its id, source, outcome, receivers and recipients.
func TestEveryRequestIsLogged(t *testing.T) {
	t.Parallel()
	v, err := (&auth.Config{Type: "bearer", Secret: "t0ken-S3CRET"}).Build()
	if err != nil {
		t.Fatal(err)
	}
	plain := mapping.Config{Preset: "plain"}
	small := &Source{Name: "small", Mapping: compileMapping(t, plain, "small"), BodyLimit: 16}
	st := &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{
		"scripts": {Name: "scripts", Mapping: compileMapping(t, plain, "scripts"), BodyLimit: testBodyLimit},
		"locked":  {Name: "locked", Mapping: compileMapping(t, plain, "locked"), BodyLimit: testBodyLimit, Verifier: v},
		"limited": {Name: "limited", Mapping: compileMapping(t, plain, "limited"), BodyLimit: testBodyLimit, Limiter: rate.NewLimiter(rate.Limit(0.001), 1)},
		"small":   small,
	}}
	am := string(fixture(t, "am-firing.json"))
	tests := []struct {
		name, path, ctype, body string
		hdr                     http.Header
		code                    int
		// want are the fragments of the one line the request leaves.
		want []string
	}{
		{"malformed JSON", "/api/v1/alertmanager", "application/json", `{"version":`, nil, 400,
			[]string{`level=WARN msg="request refused" intake_source=alertmanager outcome=invalid status=400 reason="body is not valid JSON`}},
		{"unknown source", "/api/v1/webhooks/nope", "application/json", `{}`, nil, 404,
			[]string{"intake_source=unknown outcome=unknown_source status=404", `no webhook source named \"nope\" is configured`}},
		{"too large", "/api/v1/webhooks/small", "application/json", `{"text":"far more than sixteen bytes"}`, nil, 413,
			[]string{"intake_source=small outcome=too_large status=413"}},
		{"not JSON", "/api/v1/webhooks/scripts", "text/plain", `hello`, nil, 415,
			[]string{"intake_source=scripts outcome=unsupported_media_type status=415"}},
		{"does not fit the mapping", "/api/v1/webhooks/scripts", "application/json", `{"labels":{"pin":"SECRET-BODY-VALUE"}}`, nil, 422,
			[]string{"intake_source=scripts outcome=invalid status=422", `reason="the mapping's template failed for this body"`, "field=text"}},
		{"rate limited", "/api/v1/webhooks/limited", "application/json", `{"text":"x"}`, nil, 429,
			[]string{"intake_source=limited outcome=rate_limited status=429", "too many requests"}},
		{"wrong token", "/api/v1/webhooks/locked", "application/json", `{"text":"x"}`, http.Header{"Authorization": {"Bearer nope"}}, 401,
			[]string{"intake_source=locked outcome=unauthorized status=401", "auth_failure=mismatch"}},
		{"accepted", "/api/v1/alertmanager", "application/json", am, nil, 202,
			[]string{`level=INFO msg="notification accepted" id=1 intake_source=alertmanager outcome=accepted alertname=DiskFull receivers="[ops db]" recipients=2`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, st)
			if tc.name == "rate limited" {
				// The first request takes the limiter's one token.
				st := &Sources{Alertmanager: amSource(), Webhooks: map[string]*Source{"limited": {Name: "limited",
					Mapping: compileMapping(t, plain, "limited"), BodyLimit: testBodyLimit, Limiter: rate.NewLimiter(rate.Limit(0.001), 1)}}}
				h = newHarness(t, st)
				h.do(http.MethodPost, tc.path, tc.ctype, []byte(tc.body), tc.hdr)
				h.logs.Reset()
			}
			rec := h.do(http.MethodPost, tc.path, tc.ctype, []byte(tc.body), tc.hdr)
			if rec.Code != tc.code {
				t.Fatalf("answer %d %s, want %d", rec.Code, rec.Body, tc.code)
			}
			logs := h.logs.String()
			lines := strings.Split(strings.TrimSpace(logs), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1:\n%s", len(lines), logs)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("log line lacks %q:\n%s", w, lines[0])
				}
			}
			if strings.Contains(logs, "SECRET") {
				t.Errorf("the log quotes the body or a credential:\n%s", logs)
			}
		})
	}
}

func TestUnroutedIsAWarning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, amOnly())
	h.sink.recipients = 0
	if rec := h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), nil); rec.Code != 202 {
		t.Fatalf("answer %d", rec.Code)
	}
	lines := logLines(h.logs.String(), "notification accepted, but it reached no receiver with numbers: nobody is paged")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "outcome=unrouted") {
		t.Errorf("want one warning for the unrouted notification:\n%s", h.logs)
	}
}

// TestRefusalLogBudget: a flood of refusals writes a burst of lines, then
// about one a second, and the next line written says how many were left
// out.
func TestRefusalLogBudget(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := newRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)))
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	steps := []struct {
		at      time.Duration
		n       int
		lines   int
		lastHas string
	}{
		{0, refusalBurst + 30, refusalBurst, ""},
		{time.Second, 1, 1, "suppressed=30"},
		{time.Second, 5, 0, ""},
		{10 * time.Second, 1, 1, "suppressed=5"},
		{10 * time.Second, 1, 1, "n=0"},
	}
	for i, st := range steps {
		buf.Reset()
		for j := range st.n {
			r.log(t0.Add(st.at), []any{"n", j})
		}
		lines := logLines(buf.String(), "request refused")
		if len(lines) != st.lines {
			t.Fatalf("step %d: %d lines, want %d:\n%s", i, len(lines), st.lines, buf.String())
		}
		if st.lastHas != "" && !strings.Contains(lines[len(lines)-1], st.lastHas) {
			t.Errorf("step %d: last line %q lacks %q", i, lines[len(lines)-1], st.lastHas)
		}
		if i == len(steps)-1 && strings.Contains(buf.String(), "suppressed") {
			t.Errorf("step %d: nothing was suppressed since the last line, yet: %s", i, buf.String())
		}
	}
	if fmt.Sprint(r.suppressed.Load()) != "0" {
		t.Errorf("%d still counted as suppressed", r.suppressed.Load())
	}
}
