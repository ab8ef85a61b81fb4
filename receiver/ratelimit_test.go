package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
)

// TestRateLimitSpentByAuthenticatedOnly: requests with wrong or missing
// credentials never spend a source's rate limit, whether the scheme is
// checked before the body is read (bearer) or after (HMAC over the body);
// once the authenticated requests have used up the burst, Alertmanager is
// answered 503 (which it retries; it drops a 429) and a webhook 429, both
// with Retry-After.
func TestRateLimitSpentByAuthenticatedOnly(t *testing.T) {
	t.Parallel()
	const key = "rl-key-5b4a"
	bearer, err := (&auth.Config{Type: "bearer", Secret: secret.Secret(key)}).Build()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := (&auth.Config{Type: "hmac-sha256", Secret: secret.Secret(key)}).Build()
	if err != nil {
		t.Fatal(err)
	}
	webhookBody := []byte(`{"text":"backup failed on db1"}`)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(webhookBody)
	signature := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	tests := []struct {
		name        string
		path        string
		body        []byte
		good, bad   http.Header
		wantLimited int
	}{
		{"alertmanager bearer", "/api/v1/alertmanager", nil,
			http.Header{"Authorization": {"Bearer " + key}}, http.Header{"Authorization": {"Bearer nope"}}, http.StatusServiceUnavailable},
		{"webhook hmac", "/api/v1/webhooks/ci", webhookBody,
			http.Header{auth.DefaultHMACHeader: {signature}}, http.Header{auth.DefaultHMACHeader: {"sha256=00"}}, http.StatusTooManyRequests},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			am := amSource()
			am.Verifier = bearer
			am.Limiter = rate.NewLimiter(1, 3)
			st := &Sources{Alertmanager: am, Webhooks: map[string]*Source{
				"ci": {Name: "ci", Mapping: compileMapping(t, mapping.Config{Preset: "plain"}, "ci"), BodyLimit: testBodyLimit,
					Verifier: signer, Limiter: rate.NewLimiter(1, 3)},
			}}
			h := newHarness(t, st)
			body := tc.body
			if body == nil {
				body = fixture(t, "am-firing.json")
			}
			source := strings.TrimPrefix(strings.TrimPrefix(tc.path, "/api/v1/webhooks/"), "/api/v1/")
			// The handler's clock stands still: no token comes back.
			var codes []int
			for range 5 {
				codes = append(codes, h.do(http.MethodPost, tc.path, "application/json", body, tc.bad).Code)
				codes = append(codes, h.do(http.MethodPost, tc.path, "application/json", body, nil).Code)
			}
			for i, c := range codes {
				if c != http.StatusUnauthorized {
					t.Errorf("unauthenticated request %d: %d, want 401", i+1, c)
				}
			}
			for i := range 3 {
				if rec := h.do(http.MethodPost, tc.path, "application/json", body, tc.good); rec.Code != http.StatusAccepted {
					t.Fatalf("authenticated request %d after 10 unauthenticated: %d %s, want 202", i+1, rec.Code, rec.Body)
				}
			}
			rec := h.do(http.MethodPost, tc.path, "application/json", body, tc.good)
			if rec.Code != tc.wantLimited || !strings.Contains(rec.Body.String(), "too many requests") {
				t.Fatalf("authenticated request over the burst: %d %s, want %d", rec.Code, rec.Body, tc.wantLimited)
			}
			if got := rec.Header().Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1", got)
			}
			// Still unauthenticated first: a wrong credential is told so,
			// not that the source is busy.
			if rec := h.do(http.MethodPost, tc.path, "application/json", body, tc.bad); rec.Code != http.StatusUnauthorized {
				t.Errorf("unauthenticated request over the limit: %d, want 401", rec.Code)
			}
			for outcome, want := range map[string]float64{OutcomeUnauthorized: 11, OutcomeAccepted: 3, OutcomeRateLimited: 1} {
				if got := counterValue(t, h.reg, source, outcome); got != want {
					t.Errorf("%s/%s counted %v, want %v", source, outcome, got, want)
				}
			}
			if len(h.sink.got) != 3 {
				t.Errorf("sink got %d notifications, want 3", len(h.sink.got))
			}
		})
	}
}
