package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// noiseConfig sends everything to two numbers; EXTRA is replaced by the
// test's noise settings.
const noiseConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
  timeout: 2s
  rate_limit: 100
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001", "+27830000002"]
EXTRA
`

// groupPayload is an Alertmanager notification of one alert in group
// name; externalURL and the endsAt of the firing alert are what the two
// peers of an HA pair send differently.
func groupPayload(name, status, externalURL, startsAt, severity string) []byte {
	endsAt := "2026-11-26T03:09:00Z"
	if status == "resolved" {
		endsAt = "2026-11-26T03:20:00Z"
	}
	return fmt.Appendf(nil, `{"version":"4","status":%q,"receiver":"sms","groupKey":"{}:{alertname=\"%[3]s\"}",
"groupLabels":{"alertname":%[3]q},"commonLabels":{"alertname":%[3]q},"commonAnnotations":{},"externalURL":%[4]q,
"alerts":[{"status":%[1]q,"labels":{"alertname":%[3]q,"instance":"db1:9100","severity":%[6]q},"annotations":{"summary":"about %[3]s"},
"startsAt":%[5]q,"endsAt":%[2]q,"fingerprint":"f%[3]s"}]}`, status, endsAt, name, externalURL, startsAt, severity)
}

func deliveriesByState(t *testing.T, tb *testBridge) map[outbox.State]int {
	t.Helper()
	rs, err := tb.store.Deliveries(context.Background(), outbox.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[outbox.State]int{}
	for _, r := range rs {
		out[r.State]++
	}
	return out
}

// TestDuplicatesAndStale: the copy of a notification from the other
// Alertmanager peer is answered "duplicate" and sends nothing; the
// resolution goes once; a peer's late firing after it is "stale"; a
// re-fire sends again.
func TestDuplicatesAndStale(t *testing.T) {
	t.Parallel()
	tb := newTestBridge(t, strings.Replace(noiseConfig, "EXTRA", "dedup: {window: 1m}", 1), smsfake.Options{})
	const start = "2026-11-26T03:00:00Z"
	steps := []struct {
		name, body, status string
		sms                int // SMS delivered in total after the step
	}{
		{"peer 1 firing", string(groupPayload("DiskFull", "firing", "http://am-1:9093", start, "warning")), "accepted", 2},
		{"peer 2 firing", string(groupPayload("DiskFull", "firing", "http://am-2:9093", start, "warning")), "duplicate", 2},
		{"peer 1 resolved", string(groupPayload("DiskFull", "resolved", "http://am-1:9093", start, "warning")), "accepted", 4},
		{"peer 2 resolved", string(groupPayload("DiskFull", "resolved", "http://am-2:9093", start, "warning")), "duplicate", 4},
		{"peer 2's firing, retried late", string(groupPayload("DiskFull", "firing", "http://am-2:9093", start, "warning")), "stale", 4},
		{"re-fire", string(groupPayload("DiskFull", "firing", "http://am-1:9093", "2026-11-26T03:30:00Z", "warning")), "accepted", 6},
	}
	for _, st := range steps {
		code, res := tb.post(t, "/api/v1/alertmanager", []byte(st.body))
		if code != 202 || res["status"] != st.status {
			t.Fatalf("%s: %d %v, want 202 %s", st.name, code, res, st.status)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tb.fake.WaitMessages(ctx, st.sms)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		waitFor(t, "outbox drained", func() bool { return tb.pending(t) == 0 })
	}
	if n := len(tb.fake.Messages()); n != 6 {
		t.Errorf("%d SMS, want 6 (firing, resolved, re-fire to two numbers)", n)
	}
	for outcome, want := range map[string]float64{"accepted": 3, "duplicate": 2, "stale": 1} {
		if v := tb.metricValue(t, "smsbridge_notifications_received_total", map[string]string{"source": "alertmanager", "outcome": outcome}); v != want {
			t.Errorf("outcome %s counted %v, want %v", outcome, v, want)
		}
	}
}

// TestStorm is the storm: 20 groups reach one receiver within 2s
// under throttle.per_number [{count: 3, per: 10s}]. Each number gets at
// most 3 SMS in the first 10s, then one digest naming the rest, and every
// delivery ends accepted or bundled.
func TestStorm(t *testing.T) {
	t.Parallel()
	tb := newTestBridge(t, strings.Replace(noiseConfig, "EXTRA", "throttle:\n  per_number: [{count: 3, per: 10s}]", 1), smsfake.Options{})
	for i := range 20 {
		name := fmt.Sprintf("Storm%02d", i)
		if code, res := tb.post(t, "/api/v1/alertmanager", groupPayload(name, "firing", "http://am", "2026-11-26T03:00:00Z", "warning")); code != 202 || res["status"] != "accepted" {
			t.Fatalf("post %d: %d %v", i, code, res)
		}
		time.Sleep(90 * time.Millisecond) // 20 posts within 2s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tb.fake.WaitMessages(ctx, 8); err != nil {
		t.Fatalf("the digests did not come: %v\n%s", err, tb.logs)
	}
	waitFor(t, "every delivery settled", func() bool {
		st := deliveriesByState(t, tb)
		return st[outbox.StateAccepted]+st[outbox.StateBundled] == len(storeRows(t, tb))
	})
	byNumber := map[string][]smsfake.Message{}
	for _, m := range tb.fake.Messages() {
		byNumber[m.Number] = append(byNumber[m.Number], m)
	}
	for _, num := range []string{"+27830000001", "+27830000002"} {
		msgs := byNumber[num]
		if len(msgs) != 4 {
			t.Errorf("%s got %d SMS, want 3 and a digest", num, len(msgs))
			continue
		}
		first := msgs[0].At
		for _, m := range msgs[:3] {
			if m.At.Sub(first) >= 10*time.Second || strings.HasPrefix(m.Text, "17 held") {
				t.Errorf("%s: %q at +%s, want one of the first three within 10s", num, m.Text, m.At.Sub(first))
			}
		}
		digest := msgs[3]
		if digest.At.Sub(first) < 10*time.Second {
			t.Errorf("%s: the digest came %s after the first SMS, inside the window", num, digest.At.Sub(first))
		}
		// The rest: three went, seventeen are named (they fit in the
		// default three segments), oldest first.
		if !strings.HasPrefix(digest.Text, "17 held: FIRING Storm03 db1; FIRING Storm04 db1;") {
			t.Errorf("%s: digest %q, want the 17 held ones, oldest first", num, digest.Text)
		}
		for i := 3; i < 20; i++ {
			if !strings.Contains(digest.Text, fmt.Sprintf("Storm%02d", i)) {
				t.Errorf("%s: the digest does not name Storm%02d", num, i)
			}
		}
	}
	st := deliveriesByState(t, tb)
	if st[outbox.StateAccepted] != 8 || st[outbox.StateBundled] != 34 || len(st) != 2 {
		t.Errorf("delivery states %v, want 8 accepted (3 each and the digests) and 34 bundled", st)
	}
	if v := tb.metricValue(t, "smsbridge_throttled_total", map[string]string{"receiver": "ops"}); v != 34 {
		t.Errorf("throttled{ops} = %v, want 34", v)
	}
	if v := tb.metricValue(t, "smsbridge_digests_sent_total", nil); v != 2 {
		t.Errorf("digests sent = %v, want 2", v)
	}
}

func storeRows(t *testing.T, tb *testBridge) []outbox.Record {
	t.Helper()
	rs, err := tb.store.Deliveries(context.Background(), outbox.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestBudgetHolds: once the day's segments are spent, a non-critical
// alert fails visibly with budget_exhausted, and a critical one still
// goes out.
func TestBudgetHolds(t *testing.T) {
	t.Parallel()
	tb := newTestBridge(t, strings.Replace(noiseConfig, "EXTRA",
		"budget: {daily_segments: 4, time_zone: Europe/Berlin, critical: ['severity=\"critical\"']}", 1), smsfake.Options{})
	post := func(name, severity string, wantSMS int) {
		t.Helper()
		if code, res := tb.post(t, "/api/v1/alertmanager", groupPayload(name, "firing", "http://am", "2026-11-26T03:00:00Z", severity)); code != 202 {
			t.Fatalf("post %s: %d %v", name, code, res)
		}
		waitFor(t, name+" decided", func() bool { return tb.pending(t) == 0 })
		if n := len(tb.fake.Messages()); n != wantSMS {
			t.Fatalf("after %s: %d SMS, want %d", name, n, wantSMS)
		}
	}
	post("First", "warning", 2)   // 2 of 4 segments
	post("Second", "warning", 4)  // 4 of 4: spent
	post("Third", "warning", 4)   // fails for both numbers
	post("Fourth", "critical", 6) // goes: 6 of 4
	failed := 0
	for _, r := range storeRows(t, tb) {
		if r.State == outbox.StateFailed {
			failed++
			if r.ErrorCode != "budget_exhausted" || !strings.Contains(r.Text, "Third") || !strings.Contains(r.Error, "daily budget of 4 segments") {
				t.Errorf("failed row %+v", r)
			}
		}
	}
	if failed != 2 {
		t.Errorf("%d rows failed, want Third's two", failed)
	}
	for name, want := range map[string]float64{"smsbridge_budget_segments_used": 6, "smsbridge_budget_segments_remaining": 0} {
		if v := tb.metricValue(t, name, nil); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := tb.metricValue(t, "smsbridge_deliveries_failed_total", map[string]string{"reason": "budget_exhausted"}); v != 2 {
		t.Errorf("failed{budget_exhausted} = %v, want 2", v)
	}
	logs := tb.logs.String()
	for _, want := range []string{"the daily sms budget is spent: only critical messages are sent until midnight", "the daily segment budget is spent and the messages are not critical"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	_, page, _ := get(t, "GET", tb.srv.URL+"/")
	for _, want := range []string{"6 of 4 segments", "Spent: only critical messages go", "budget_exhausted"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
}
