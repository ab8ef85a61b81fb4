package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

// recordingStore keeps what the pipeline enqueues and answers like the
// outbox would (it does not evaluate guards).
type recordingStore struct {
	mu  sync.Mutex
	got []outbox.Notification
	err error
}

func (s *recordingStore) Enqueue(_ context.Context, n outbox.Notification) (outbox.Enqueued, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return outbox.Enqueued{}, s.err
	}
	s.got = append(s.got, n)
	r := 0
	for _, m := range n.Messages {
		r += len(m.Numbers)
	}
	return outbox.Enqueued{ID: int64(len(s.got)), Outcome: n.Outcome, Recipients: r}, nil
}

func no() *bool { b := false; return &b }

func newPipeline(t *testing.T, store Store, stages ...Stage) *Pipeline {
	t.Helper()
	root := &routing.Route{Receiver: "ops", Routes: []*routing.Route{
		{Matchers: []string{`team="db"`}, Receiver: "db", Continue: true, Routes: []*routing.Route{
			{Matchers: []string{`severity="critical"`}, Receiver: "db-critical"},
		}},
		{Matchers: []string{`team=~"db|web"`}, Receiver: "web"},
		{Matchers: []string{`team="quiet"`}, Receiver: "quiet"},
		{Matchers: []string{`team="nobody"`}, Receiver: "empty"},
	}}
	receivers := []routing.Receiver{
		{Name: "ops", Numbers: []string{"+27830000001"}},
		{Name: "db", Numbers: []string{"+27830000002", "+27830000003"}},
		{Name: "db-critical", Numbers: []string{"+27830000004"}, Template: `CRIT {{ .CommonLabels.alertname }} {{ len .Alerts }}`},
		{Name: "web", Numbers: []string{"+27830000003", "+27830000005"}, Template: `{{ .CommonLabels.alertname }} on {{ .CommonLabels.team }}`},
		{Name: "quiet", Numbers: []string{"+27830000006"}, SendResolved: no()},
		{Name: "empty"},
	}
	router, err := routing.New(root, receivers, nil, routing.Options{MaxSegments: 1})
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Router: router, Renderer: renderer, Stages: stages, Store: store,
		Now: func() time.Time { return time.Date(2026, 3, 1, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func notification(source, status string, alerts ...map[string]string) *alert.Notification {
	n := &alert.Notification{Source: source, GroupKey: source + ":g", Data: template.Data{Status: status}}
	var kvs []template.KV
	for _, l := range alerts {
		n.Data.Alerts = append(n.Data.Alerts, template.Alert{Status: status, Labels: template.KV(l), Annotations: template.KV{}})
		kvs = append(kvs, template.KV(l))
	}
	n.Data.CommonLabels = alert.Common(kvs)
	n.Data.GroupLabels = template.KV{}
	n.Data.CommonAnnotations = template.KV{}
	return n
}

func TestPlan(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, nil)
	for _, tc := range []struct {
		name   string
		n      *alert.Notification
		want   []string // receiver: text or "receiver: -skipped reason"
		merged int      // messages after merging equal texts
	}{
		{
			name:   "root",
			n:      notification("alertmanager", "firing", map[string]string{"alertname": "A"}),
			want:   []string{"ops: FIRING:1 A"},
			merged: 1,
		},
		{
			name:   "continue and nested",
			n:      notification("alertmanager", "firing", map[string]string{"alertname": "Disk", "team": "db", "severity": "critical"}),
			want:   []string{"db-critical: CRIT Disk 1", "web: Disk on db"},
			merged: 2,
		},
		{
			name: "each receiver gets only its alerts",
			n: notification("alertmanager", "firing",
				map[string]string{"alertname": "Disk", "team": "db"}, map[string]string{"alertname": "Disk", "team": "web"}),
			// The two alerts share no team, so the common labels lack one.
			want:   []string{"db: FIRING:1 Disk", "web: Disk on"},
			merged: 2,
		},
		{
			name:   "send_resolved false",
			n:      notification("alertmanager", "resolved", map[string]string{"alertname": "Q", "team": "quiet"}),
			want:   []string{"quiet: -" + SkipResolved},
			merged: 0,
		},
		{
			name:   "no numbers",
			n:      notification("alertmanager", "firing", map[string]string{"alertname": "N", "team": "nobody"}),
			want:   []string{"empty: -" + SkipNoNumbers},
			merged: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pl := p.Plan(tc.n)
			var got []string
			for _, e := range pl.Entries {
				s := e.Receiver.Name + ": "
				if e.Skipped != "" {
					s += "-" + e.Skipped
				} else {
					s += strings.ReplaceAll(e.Text, "\n", " / ")
				}
				got = append(got, s)
			}
			for i := range got {
				if i < len(tc.want) && !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("entry %d = %q, want it to start with %q", i, got[i], tc.want[i])
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("entries %q, want %d", got, len(tc.want))
			}
			if m := pl.Messages(); len(m) != tc.merged {
				t.Errorf("%d messages, want %d", len(m), tc.merged)
			}
		})
	}
}

func TestMessagesMergeSameText(t *testing.T) {
	t.Parallel()
	rcv := func(name string) *routing.ResolvedReceiver { return &routing.ResolvedReceiver{Name: name} }
	pl := &Plan{Entries: []Entry{
		{Receiver: rcv("a"), Text: "same", Segments: 1, Numbers: []string{"+1", "+2"}},
		{Receiver: rcv("b"), Text: "same", Segments: 1, Numbers: []string{"+2", "+3"}},
		{Receiver: rcv("c"), Text: "other", Segments: 1, Numbers: []string{"+2"}},
		{Receiver: rcv("d"), Skipped: SkipNoNumbers},
	}}
	got := pl.Messages()
	if len(got) != 2 || !slices.Equal(got[0].Numbers, []string{"+1", "+2", "+3"}) || !slices.Equal(got[1].Numbers, []string{"+2"}) {
		t.Errorf("messages %+v", got)
	}
	if pl.Recipients() != 4 {
		t.Errorf("recipients %d, want 4", pl.Recipients())
	}
	// Merging must not change the plan's own numbers.
	if !slices.Equal(pl.Entries[0].Numbers, []string{"+1", "+2"}) {
		t.Errorf("plan modified: %v", pl.Entries[0].Numbers)
	}
}

// dropStage drops every notification with its outcome.
type dropStage struct{ outcome string }

func (d dropStage) Name() string { return "drop" }
func (d dropStage) Exec(_ context.Context, e *Envelope) error {
	e.Drop(d.outcome)
	return nil
}

// failStage cannot judge anything.
type failStage struct{}

func (failStage) Name() string                          { return "fail" }
func (failStage) Exec(context.Context, *Envelope) error { return errors.New("store unreachable") }

// countStage counts its calls.
type countStage struct{ n *int }

func (c countStage) Name() string { return "count" }
func (c countStage) Exec(context.Context, *Envelope) error {
	*c.n++
	return nil
}

func TestAccept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := map[string]string{"alertname": "Disk", "team": "db"}
	t.Run("accepted", func(t *testing.T) {
		store := &recordingStore{}
		p := newPipeline(t, store, ResolvedRule{})
		res, err := p.Accept(ctx, notification("alertmanager", "firing", db))
		if err != nil {
			t.Fatal(err)
		}
		got := store.got[0]
		if res.Outcome != outbox.OutcomeAccepted || res.Recipients != 4 || got.RequireFiring || got.Status != "firing" || got.GroupKey != "alertmanager:g" {
			t.Errorf("result %+v record %+v", res, got)
		}
		// What the log line and the status page say it was about.
		if got.AlertName != "Disk" || !slices.Equal(res.Receivers, []string{"db", "web"}) {
			t.Errorf("alert name %q, receivers %v; want Disk and [db web]", got.AlertName, res.Receivers)
		}
	})
	t.Run("the sender's delivery id goes to the store", func(t *testing.T) {
		store := &recordingStore{}
		p := newPipeline(t, store, ResolvedRule{})
		n := notification("alertmanager", "firing", db)
		exp := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
		n.DeliveryID, n.DeliveryIDExpires = "alertmanager:abc", exp
		if _, err := p.Accept(ctx, n); err != nil {
			t.Fatal(err)
		}
		if got := store.got[0]; got.DeliveryID != "alertmanager:abc" || !got.DeliveryIDExpires.Equal(exp) {
			t.Errorf("record delivery id %q until %v", got.DeliveryID, got.DeliveryIDExpires)
		}
	})
	t.Run("unrouted", func(t *testing.T) {
		store := &recordingStore{}
		p := newPipeline(t, store)
		res, err := p.Accept(ctx, notification("alertmanager", "firing", map[string]string{"alertname": "N", "team": "nobody"}))
		if err != nil || res.Outcome != outbox.OutcomeUnrouted || len(store.got[0].Messages) != 0 || len(res.Receivers) != 0 {
			t.Errorf("result %+v, %v", res, err)
		}
	})
	for _, tc := range []struct {
		source, status string
		guard          bool
	}{
		{"ci", "resolved", true},
		{"ci", "firing", false},
		{"alertmanager", "resolved", false},
	} {
		t.Run("resolved rule "+tc.source+" "+tc.status, func(t *testing.T) {
			store := &recordingStore{}
			p := newPipeline(t, store, ResolvedRule{})
			if _, err := p.Accept(ctx, notification(tc.source, tc.status, db)); err != nil {
				t.Fatal(err)
			}
			if got := store.got[0].RequireFiring; got != tc.guard {
				t.Errorf("RequireFiring %v, want %v", got, tc.guard)
			}
		})
	}
	t.Run("a dropping stage ends the stages and records the outcome", func(t *testing.T) {
		store := &recordingStore{}
		calls := 0
		p := newPipeline(t, store, dropStage{"duplicate"}, countStage{&calls})
		res, err := p.Accept(ctx, notification("alertmanager", "firing", db))
		if err != nil || res.Outcome != "duplicate" || len(store.got[0].Messages) != 0 || calls != 0 {
			t.Errorf("result %+v, %v, later stage ran %d times", res, err, calls)
		}
	})
	t.Run("a failing stage writes nothing", func(t *testing.T) {
		store := &recordingStore{}
		p := newPipeline(t, store, failStage{})
		if _, err := p.Accept(ctx, notification("alertmanager", "firing", db)); err == nil || len(store.got) != 0 {
			t.Errorf("err %v, %d written", err, len(store.got))
		}
	})
	t.Run("store error", func(t *testing.T) {
		store := &recordingStore{err: errors.New("disk full")}
		p := newPipeline(t, store)
		if _, err := p.Accept(ctx, notification("alertmanager", "firing", db)); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("err %v", err)
		}
	})
}

func TestSendTest(t *testing.T) {
	t.Parallel()
	store := &recordingStore{}
	p := newPipeline(t, store)
	res, err := p.SendTest(context.Background(), "db")
	if err != nil {
		t.Fatal(err)
	}
	want := "smsbridge test to db at 2026-03-01 03:04:05Z: if you read this, paging works."
	if res.Text != want || !slices.Equal(res.Numbers, []string{"+27830000002", "+27830000003"}) {
		t.Errorf("result %+v", res)
	}
	if got := store.got[0]; got.Source != TestSource || got.Messages[0].Segments != 1 {
		t.Errorf("record %+v", got)
	}
	if _, err := p.SendTest(context.Background(), "nope"); !errors.Is(err, ErrUnknownReceiver) {
		t.Errorf("unknown receiver: %v", err)
	}
	if _, err := p.SendTest(context.Background(), "empty"); !errors.Is(err, ErrNoNumbers) {
		t.Errorf("no numbers: %v", err)
	}
}
