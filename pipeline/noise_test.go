package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

var t0 = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)

func amAlert(status, fp string, lbls map[string]string) template.Alert {
	a := template.Alert{Status: status, Labels: template.KV(lbls), Annotations: template.KV{"summary": "s " + fp},
		StartsAt: t0, Fingerprint: fp}
	if status == alert.StatusResolved {
		a.EndsAt = t0.Add(time.Minute)
	}
	return a
}

func TestDedupKey(t *testing.T) {
	t.Parallel()
	a := amAlert("firing", "aaaa", map[string]string{"alertname": "A"})
	b := amAlert("firing", "bbbb", map[string]string{"alertname": "B"})
	r := amAlert("resolved", "cccc", map[string]string{"alertname": "C"})
	base := DedupKey("ops", "g", "firing", template.Alerts{a, b, r})
	peer := func(as ...template.Alert) template.Alerts {
		out := make(template.Alerts, len(as))
		for i, x := range as {
			// What a peer changes: endsAt of firing alerts, annotations.
			x.EndsAt = t0.Add(4 * time.Minute)
			x.Annotations = template.KV{"summary": "other rendering"}
			x.GeneratorURL = "http://peer-2"
			out[i] = x
		}
		return out
	}
	noFP := a
	noFP.Fingerprint = ""
	for _, tc := range []struct {
		name string
		key  string
		same bool
	}{
		{"the peer's copy, alerts in another order", DedupKey("ops", "g", "firing", peer(r, b, a)), true},
		{"another receiver", DedupKey("db", "g", "firing", template.Alerts{a, b, r}), false},
		{"another group", DedupKey("ops", "h", "firing", template.Alerts{a, b, r}), false},
		{"another status", DedupKey("ops", "g", "resolved", template.Alerts{a, b, r}), false},
		{"one alert fewer", DedupKey("ops", "g", "firing", template.Alerts{a, r}), false},
		{"a firing alert resolved", DedupKey("ops", "g", "firing", template.Alerts{a, amAlert("resolved", "bbbb", nil), r}), false},
	} {
		if (tc.key == base) != tc.same {
			t.Errorf("%s: same key %v, want %v", tc.name, tc.key == base, tc.same)
		}
	}
	// Without a fingerprint in the payload, the labels give Alertmanager's.
	withFP := a
	withFP.Fingerprint = alert.Fingerprint(a.Labels)
	if DedupKey("ops", "g", "firing", template.Alerts{noFP}) != DedupKey("ops", "g", "firing", template.Alerts{withFP}) {
		t.Error("a missing fingerprint is not computed from the labels")
	}
}

// noisePipeline routes every alert with a team to "ops" and team=db
// alerts to "db" (two numbers) and "pager" (unthrottled) as well.
func noisePipeline(t *testing.T, store Store, stages ...Stage) *Pipeline {
	t.Helper()
	no := false
	root := &routing.Route{Receiver: "ops", Routes: []*routing.Route{
		{Matchers: []string{`team=~".+"`}, Receiver: "ops", Continue: true},
		{Matchers: []string{`team="db"`}, Receiver: "db", Continue: true},
		{Matchers: []string{`team="db"`}, Receiver: "pager"},
	}}
	router, err := routing.New(root, []routing.Receiver{
		{Name: "ops", Numbers: []string{"+27830000001"}},
		{Name: "db", Numbers: []string{"+27830000002", "+27830000003"}},
		{Name: "pager", Numbers: []string{"+27830000009"}, Throttle: &no},
	}, nil, routing.Options{MaxSegments: 1})
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Router: router, Renderer: renderer, Stages: stages, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func amNotification(status string, alerts ...template.Alert) *alert.Notification {
	n := &alert.Notification{Source: alert.SourceAlertmanager, GroupKey: `{}:{alertname="Disk"}`,
		Data: template.Data{Status: status, Alerts: alerts, ExternalURL: "http://am-1"}}
	var kvs []template.KV
	for _, a := range alerts {
		kvs = append(kvs, a.Labels)
	}
	n.Data.CommonLabels = alert.Common(kvs)
	return n
}

func byReceiver(msgs []outbox.Message) map[string]outbox.Message {
	out := map[string]outbox.Message{}
	for _, m := range msgs {
		out[m.Receiver] = m
	}
	return out
}

func TestDedupStage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := amAlert("firing", "aaaa", map[string]string{"alertname": "Disk", "team": "db"})
	gone := amAlert("resolved", "bbbb", map[string]string{"alertname": "Disk", "team": "web"})
	for _, tc := range []struct {
		name       string
		stage      Dedup
		n          *alert.Notification
		window     time.Duration
		keyed      bool
		alerts     map[string]int // receiver -> alerts named for the stale check
		resolved   []string
		cancelHeld bool
	}{
		{"firing", Dedup{Window: 5 * time.Minute}, amNotification("firing", db, gone), 5 * time.Minute, true,
			map[string]int{"ops": 2, "db": 1, "pager": 1}, []string{"bbbb"}, false},
		{"resolved: no stale check", Dedup{Window: time.Minute}, amNotification("resolved", gone), time.Minute, true,
			map[string]int{"ops": 0}, []string{"bbbb"}, false},
		{"no window: only the stale check", Dedup{}, amNotification("firing", db), 0, false,
			map[string]int{"ops": 1, "db": 1, "pager": 1}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := &recordingStore{}
			if _, err := noisePipeline(t, store, tc.stage).Accept(ctx, tc.n); err != nil {
				t.Fatal(err)
			}
			rec := store.got[0]
			if rec.DedupWindow != tc.window {
				t.Errorf("window %s, want %s", rec.DedupWindow, tc.window)
			}
			var resolved []string
			for _, r := range rec.Resolved {
				resolved = append(resolved, r.Fingerprint)
			}
			if !slices.Equal(resolved, tc.resolved) {
				t.Errorf("resolved %v, want %v", resolved, tc.resolved)
			}
			msgs := byReceiver(rec.Messages)
			if len(msgs) != len(tc.alerts) {
				t.Errorf("messages for %v, want %v", msgs, tc.alerts)
			}
			keys := map[string]bool{}
			for r, want := range tc.alerts {
				m := msgs[r]
				if len(m.Alerts) != want {
					t.Errorf("%s: %d alerts named, want %d", r, len(m.Alerts), want)
				}
				if (m.DedupKey != "") != tc.keyed {
					t.Errorf("%s: key %q, want keyed %v", r, m.DedupKey, tc.keyed)
				}
				if m.DedupKey != "" && keys[m.DedupKey] {
					t.Errorf("%s shares its key with another receiver", r)
				}
				keys[m.DedupKey] = true
			}
		})
	}
}

// suppressingStore answers like the outbox when its guards dropped the
// messages of some receivers.
type suppressingStore struct {
	recordingStore
	drop []string
}

func (s *suppressingStore) Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error) {
	var kept []outbox.Message
	var sup []outbox.Suppressed
	for _, m := range n.Messages {
		if slices.Contains(s.drop, m.Receiver) {
			sup = append(sup, outbox.Suppressed{Receiver: m.Receiver, Reason: outbox.ReasonDuplicate})
			continue
		}
		kept = append(kept, m)
	}
	n.Messages = kept
	res, err := s.recordingStore.Enqueue(ctx, n)
	res.Suppressed = sup
	return res, err
}

// TestReceiversReached: the receivers Accept reports are those a text was
// written for, not those whose message the store's guards dropped.
func TestReceiversReached(t *testing.T) {
	t.Parallel()
	store := &suppressingStore{drop: []string{"db"}}
	n := amNotification("firing", amAlert("firing", "aaaa", map[string]string{"alertname": "Disk", "team": "db"}))
	res, err := noisePipeline(t, store, Dedup{Window: time.Minute}).Accept(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Receivers, []string{"ops", "pager"}) {
		t.Errorf("receivers %v, want ops and pager (db's copy was a duplicate)", res.Receivers)
	}
}

func TestThrottleStage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := amAlert("firing", "aaaa", map[string]string{"alertname": "Disk", "team": "db", "instance": "db1:9100"})
	summary := func(receiver string, n *alert.Notification) string {
		return receiver + " " + n.Data.Status + " " + n.Data.CommonLabels["alertname"]
	}
	for _, tc := range []struct {
		name       string
		n          *alert.Notification
		cancelHeld bool
	}{
		{"firing", amNotification("firing", db), false},
		{"resolved", amNotification("resolved", amAlert("resolved", "aaaa", map[string]string{"alertname": "Disk", "team": "db"})), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := &recordingStore{}
			if _, err := noisePipeline(t, store, Throttle{Summary: summary}).Accept(ctx, tc.n); err != nil {
				t.Fatal(err)
			}
			rec := store.got[0]
			if rec.CancelHeld != tc.cancelHeld {
				t.Errorf("cancel held %v, want %v", rec.CancelHeld, tc.cancelHeld)
			}
			msgs := byReceiver(rec.Messages)
			for _, r := range []string{"ops", "db", "pager"} {
				m := msgs[r]
				if m.Unthrottled != (r == "pager") {
					t.Errorf("%s: unthrottled %v", r, m.Unthrottled)
				}
				if want := r + " " + tc.n.Data.Status + " Disk"; m.Summary != want {
					t.Errorf("%s: summary %q, want %q", r, m.Summary, want)
				}
			}
		})
	}
}

func TestBudgetStage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	critical, err := labels.ParseMatchers(`severity="critical",team=~"db|web"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		critical labels.Matchers
		alerts   []map[string]string
		want     bool
	}{
		{"every matcher matches", critical, []map[string]string{{"alertname": "A", "team": "db", "severity": "critical"}}, true},
		{"one matcher does not", critical, []map[string]string{{"alertname": "A", "team": "db", "severity": "warning"}}, false},
		{"any alert of the receiver's", critical, []map[string]string{
			{"alertname": "A", "team": "db", "severity": "warning"}, {"alertname": "B", "team": "db", "severity": "critical"}}, true},
		{"no matchers: nothing critical", nil, []map[string]string{{"alertname": "A", "team": "db", "severity": "critical"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var as []template.Alert
			for i, l := range tc.alerts {
				as = append(as, amAlert("firing", string(rune('a'+i)), l))
			}
			store := &recordingStore{}
			if _, err := noisePipeline(t, store, Budget{Critical: tc.critical}).Accept(ctx, amNotification("firing", as...)); err != nil {
				t.Fatal(err)
			}
			for _, m := range store.got[0].Messages {
				if m.Critical != tc.want {
					t.Errorf("%s: critical %v, want %v", m.Receiver, m.Critical, tc.want)
				}
			}
		})
	}
}

// TestStoredMessagesPerReceiver: the pipeline writes one message per
// receiver, each with its own marks, and leaves merging equal texts to
// the store, after the guards.
func TestStoredMessagesPerReceiver(t *testing.T) {
	t.Parallel()
	store := &recordingStore{}
	p := noisePipeline(t, store, Dedup{Window: time.Minute})
	n := amNotification("firing", amAlert("firing", "aaaa", map[string]string{"alertname": "Disk", "team": "db"}))
	if _, err := p.Accept(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	msgs := store.got[0].Messages
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want one per receiver (ops, db, pager)", len(msgs))
	}
	if msgs[0].Text != msgs[1].Text {
		t.Errorf("ops and db render alike but got %q and %q", msgs[0].Text, msgs[1].Text)
	}
	// The plan still merges them for display.
	if m := p.Plan(n).Messages(); len(m) != 1 {
		t.Errorf("the plan shows %d messages, want the three receivers' equal texts merged into one", len(m))
	}
}
