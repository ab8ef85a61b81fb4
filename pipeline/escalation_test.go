package pipeline

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

// escalationStore answers Enqueue as a store that began or stopped
// escalations would.
type escalationStore struct {
	recordingStore
	res outbox.Enqueued
}

func (s *escalationStore) Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error) {
	if _, err := s.recordingStore.Enqueue(ctx, n); err != nil {
		return outbox.Enqueued{}, err
	}
	return s.res, nil
}

type observed struct {
	mu                  sync.Mutex
	scheduled, resolved []string
}

func (o *observed) Scheduled(group string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.scheduled = append(o.scheduled, group)
}

func (o *observed) Resolved(group string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.resolved = append(o.resolved, group)
}

// TestEscalationStage: a firing page carries the steps of each receiver
// that has them, with the group's labels; a resolution or a muted
// receiver carries none; what the store reports reaches the observer.
func TestEscalationStage(t *testing.T) {
	t.Parallel()
	root := &routing.Route{Receiver: "db", Routes: []*routing.Route{
		{Matchers: []string{`team="db"`}, Receiver: "db", Continue: true},
		{Matchers: []string{`team="db"`}, Receiver: "ops"},
	}}
	router, err := routing.New(root, []routing.Receiver{
		{Name: "db", Numbers: []string{"+27830000001"}, Escalate: []routing.EscalationStep{{After: "10m", Receiver: "db2"}, {After: "30m", Receiver: "ops"}}},
		{Name: "db2", Numbers: []string{"+27830000002"}},
		{Name: "ops", Numbers: []string{"+27830000003"}},
	}, nil, routing.Options{MaxSegments: 1})
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := amAlert("firing", "aaaa", map[string]string{"alertname": "Disk", "team": "db"})
	grouped := func(status string, alerts ...template.Alert) *alert.Notification {
		n := amNotification(status, alerts...)
		n.Data.GroupLabels = template.KV{"alertname": "Disk"}
		return n
	}
	for _, tc := range []struct {
		name      string
		n         *alert.Notification
		res       outbox.Enqueued
		steps     map[string][]outbox.EscalationPlan // receiver -> steps carried
		labels    map[string]string
		scheduled []string
		resolved  []string
	}{
		{"firing: db's steps, none for ops", grouped("firing", a), outbox.Enqueued{EscalationsScheduled: 1},
			map[string][]outbox.EscalationPlan{"db": {{After: 10 * time.Minute, Receiver: "db2"}, {After: 30 * time.Minute, Receiver: "ops"}}, "ops": nil},
			map[string]string{"alertname": "Disk"}, []string{`{}:{alertname="Disk"}`}, nil},
		{"a nested route: its matchers too", func() *alert.Notification {
			n := grouped("firing", a)
			n.GroupKey = `{}/{team="db"}:{alertname="Disk"}`
			return n
		}(), outbox.Enqueued{},
			map[string][]outbox.EscalationPlan{"db": {{After: 10 * time.Minute, Receiver: "db2"}, {After: 30 * time.Minute, Receiver: "ops"}}, "ops": nil},
			map[string]string{"alertname": "Disk", "team": "db"}, nil, nil},
		{"no group labels: the common ones", amNotification("firing", a), outbox.Enqueued{},
			map[string][]outbox.EscalationPlan{"db": {{After: 10 * time.Minute, Receiver: "db2"}, {After: 30 * time.Minute, Receiver: "ops"}}, "ops": nil},
			map[string]string{"alertname": "Disk", "team": "db"}, nil, nil},
		{"resolved: nothing carried, the stop reported", grouped("resolved", amAlert("resolved", "aaaa", map[string]string{"alertname": "Disk", "team": "db"})),
			outbox.Enqueued{EscalationsStopped: 2}, map[string][]outbox.EscalationPlan{"db": nil, "ops": nil}, nil, nil, []string{`{}:{alertname="Disk"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := &escalationStore{res: tc.res}
			obs := &observed{}
			p, err := New(Options{Router: router, Renderer: renderer, Store: store, Stages: []Stage{Escalation{Observer: obs}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Accept(context.Background(), tc.n); err != nil {
				t.Fatal(err)
			}
			rec := store.got[0]
			msgs := byReceiver(rec.Messages)
			if len(msgs) != len(tc.steps) {
				t.Fatalf("messages %+v", rec.Messages)
			}
			for rcv, want := range tc.steps {
				if got := msgs[rcv].Escalate; !slices.Equal(got, want) {
					t.Errorf("%s carries %+v, want %+v", rcv, got, want)
				}
			}
			if !maps.Equal(rec.EscalationLabels, tc.labels) {
				t.Errorf("labels %v, want %v", rec.EscalationLabels, tc.labels)
			}
			if !slices.Equal(obs.scheduled, tc.scheduled) || !slices.Equal(obs.resolved, tc.resolved) {
				t.Errorf("observed scheduled %v resolved %v, want %v %v", obs.scheduled, obs.resolved, tc.scheduled, tc.resolved)
			}
		})
	}
}
