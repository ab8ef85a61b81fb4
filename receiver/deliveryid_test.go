package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/receiver/auth"
)

// TestDeliveryIDs: the id a sender puts on a delivery reaches the sink
// namespaced by source and hashed, with the time until which a repeat is a
// duplicate: the source's own header first, then the well-known ones; a
// Standard Webhooks id signed under the source's auth until the end of its
// tolerance window.
func TestDeliveryIDs(t *testing.T) {
	t.Parallel()
	key := []byte("standard-webhooks-test-key")
	sw, err := (&auth.Config{Type: auth.TypeStandardWebhooks, Secret: secret.Secret(key), Tolerance: 2 * time.Minute}).Build()
	if err != nil {
		t.Fatal(err)
	}
	body := fixture(t, "am-firing.json")
	ts := strconv.FormatInt(testNow.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "msg_1.%s.%s", ts, body)
	signed := http.Header{"Webhook-Id": {"msg_1"}, "Webhook-Timestamp": {ts},
		"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))}}

	hash := func(v string) string {
		s := sha256.Sum256([]byte(v))
		return fmt.Sprintf("%x", s)
	}
	day := testNow.Add(24 * time.Hour)
	tests := []struct {
		name   string
		src    func(*Source)
		hdr    http.Header
		id     string
		expiry time.Time
	}{
		{"none", nil, nil, "", time.Time{}},
		{"github", nil, http.Header{"X-Github-Delivery": {"72d3162e-cc78-11e3-81ab-4c9367dc0958"}}, "alertmanager:" + hash("72d3162e-cc78-11e3-81ab-4c9367dc0958"), day},
		{"gitea sends three, one id", nil, http.Header{"X-Gitea-Delivery": {"g-1"}, "X-Gogs-Delivery": {"g-1"}, "X-Github-Delivery": {"g-1"}}, "alertmanager:" + hash("g-1"), day},
		{"gitea alone", nil, http.Header{"X-Gitea-Delivery": {"g-2"}}, "alertmanager:" + hash("g-2"), day},
		{"gitlab", nil, http.Header{"Idempotency-Key": {"gl-1"}}, "alertmanager:" + hash("gl-1"), day},
		{"unsigned webhook-id", nil, http.Header{"Webhook-Id": {"msg_9"}}, "alertmanager:" + hash("msg_9"), day},
		{"own header first, own ttl", func(s *Source) { s.DeliveryIDHeader, s.DeliveryIDTTL = "X-Request-Id", time.Hour },
			http.Header{"X-Request-Id": {"r-1"}, "X-Github-Delivery": {"gh-1"}}, "alertmanager:" + hash("r-1"), testNow.Add(time.Hour)},
		{"blank is none", nil, http.Header{"Idempotency-Key": {"  "}}, "", time.Time{}},
		{"signed webhook-id lasts the tolerance", func(s *Source) { s.Verifier = sw }, signed, "alertmanager:" + hash("msg_1"), testNow.Add(2 * time.Minute)},
		{"no ttl, no header ids", func(s *Source) { s.DeliveryIDTTL = 0 }, http.Header{"X-Github-Delivery": {"x"}}, "", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := amSource()
			src.DeliveryIDTTL = 24 * time.Hour
			if tc.src != nil {
				tc.src(src)
			}
			h := newHarness(t, &Sources{Alertmanager: src})
			rec := h.do("POST", "/api/v1/alertmanager", "application/json", body, tc.hdr)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("answer %d %s", rec.Code, rec.Body)
			}
			n := h.sink.got[0]
			if n.DeliveryID != tc.id || !n.DeliveryIDExpires.Equal(tc.expiry) {
				t.Errorf("delivery id %q until %v, want %q until %v", n.DeliveryID, n.DeliveryIDExpires, tc.id, tc.expiry)
			}
		})
	}
}

// TestDuplicateAnswer: a notification the sink reports as a duplicate is
// answered 202 {"status":"duplicate"} (so the sender does not retry) and
// counted as outcome duplicate, whether the store had its delivery id (a
// replay: logged as such, with the header) or the noise guards found every
// receiver had it already (logged as an accepted notification).
func TestDuplicateAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		replayed bool
		want     []string
	}{
		{"replayed delivery id", true, []string{"delivery already accepted; nothing sent", "header=Idempotency-Key"}},
		{"duplicate by the noise guards", false, []string{`msg="notification accepted"`, "outcome=duplicate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := amSource()
			src.DeliveryIDTTL = time.Hour
			h := newHarness(t, &Sources{Alertmanager: src})
			h.sink.outcome, h.sink.exact, h.sink.recipients, h.sink.replayed = OutcomeDuplicate, true, 0, tc.replayed
			rec := h.do("POST", "/api/v1/alertmanager", "application/json", fixture(t, "am-firing.json"), http.Header{"Idempotency-Key": {"k"}})
			if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"status":"duplicate"`) {
				t.Fatalf("answer %d %s", rec.Code, rec.Body)
			}
			if n := testutil.ToFloat64(h.metricsVec().WithLabelValues("alertmanager", OutcomeDuplicate)); n != 1 {
				t.Errorf("duplicate outcomes %v, want 1", n)
			}
			for _, w := range tc.want {
				if !strings.Contains(h.logs.String(), w) {
					t.Errorf("log lacks %q: %s", w, h.logs)
				}
			}
			if tc.replayed == strings.Contains(h.logs.String(), "notification accepted") {
				t.Errorf("replayed=%v logged as: %s", tc.replayed, h.logs)
			}
		})
	}
}

// TestUnhealthyStoreRefused: while the store cannot write durably, the
// intake answers 503 with the reason and hands nothing to the sink; it
// never answers 202 for what a restart could lose.
func TestUnhealthyStoreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, amOnly())
	var health error
	h.intake = func() Intake {
		return Intake{Sources: amOnly(), Sink: h.sink, Health: func() error { return health }}
	}
	body := fixture(t, "am-firing.json")
	health = errors.New("storage directory /data was removed")
	rec := h.do("POST", "/api/v1/alertmanager", "application/json", body, nil)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not ready: storage directory /data was removed; retry later") {
		t.Errorf("answer %d %s, want 503 with the reason", rec.Code, rec.Body)
	}
	if len(h.sink.got) != 0 {
		t.Errorf("the sink got %d notifications from an unhealthy store", len(h.sink.got))
	}
	if n := testutil.ToFloat64(h.metricsVec().WithLabelValues("alertmanager", OutcomeStoreError)); n != 1 {
		t.Errorf("store_error outcomes %v, want 1", n)
	}
	health = nil
	if rec := h.do("POST", "/api/v1/alertmanager", "application/json", body, nil); rec.Code != http.StatusAccepted {
		t.Errorf("healthy again: %d %s", rec.Code, rec.Body)
	}
}
