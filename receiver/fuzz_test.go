package receiver

import (
	"net/http"
	"os"
	"testing"
)

// FuzzAlertmanagerPayload feeds arbitrary bodies to the Alertmanager
// endpoint: it must answer 202 or a 4xx, never a 5xx, and never panic.
func FuzzAlertmanagerPayload(f *testing.F) {
	good, err := os.ReadFile("testdata/am-firing.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"}}]}`))
	f.Add([]byte(`{"version":4}`))
	f.Add([]byte(`[[[[[[[[[[]]]]]]]]]]`))
	f.Add([]byte(`{"version":"4","alerts":null,"truncatedAlerts":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		h := newHarness(t, amOnly())
		rec := h.do(http.MethodPost, "/api/v1/alertmanager", "application/json", body, nil)
		if rec.Code != http.StatusAccepted && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("answer %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == http.StatusAccepted && len(h.sink.got) != 1 {
			t.Fatal("202 without a stored notification")
		}
	})
}
