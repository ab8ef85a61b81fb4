package pipeline

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

func replyPipeline(t *testing.T, store Store, replies *Replies) *Pipeline {
	t.Helper()
	router, err := routing.New(&routing.Route{Receiver: "ops"}, []routing.Receiver{{Name: "ops", Numbers: []string{"+27830000001", "+27830000002"}}},
		nil, routing.Options{MaxSegments: 1})
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Router: router, Renderer: renderer, Store: store, Replies: replies,
		Now: func() time.Time { return time.Date(2026, 3, 1, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplyCodes: with replies, a firing text ends with the reply line
// around the store's placeholder and asks the store for a code, and the
// notification carries the labels an acknowledgement silences.
func TestReplyCodes(t *testing.T) {
	t.Parallel()
	grouped := func(source, status string) *alert.Notification {
		n := notification(source, status, map[string]string{"alertname": "DiskFull", "team": "db", "instance": "db1"})
		n.Data.GroupLabels = template.KV{"alertname": "DiskFull", "team": "db"}
		if source == alert.SourceAlertmanager {
			n.GroupKey = `{}:{alertname="DiskFull", team="db"}`
		}
		return n
	}
	ungrouped := notification("alertmanager", "firing", map[string]string{"alertname": "DiskFull", "instance": "db1"})
	ungrouped.GroupKey = `{}:{}`
	// The README's sample: grouped by alertname under a route for team db.
	routed := notification("alertmanager", "firing", map[string]string{"alertname": "DiskFull", "team": "db", "instance": "db1"})
	routed.GroupKey = `{}/{team="db"}:{alertname="DiskFull"}`
	routed.Data.GroupLabels = template.KV{"alertname": "DiskFull"}
	tests := []struct {
		name      string
		replies   *Replies
		n         *alert.Notification
		wantLine  string // "" for none
		wantLabel map[string]string
	}{
		{"alertmanager, silences", &Replies{Silence: "1h"}, grouped("alertmanager", "firing"),
			"\nReply ACK " + outbox.ReplyCodePlaceholder + " to silence 1h", map[string]string{"alertname": "DiskFull", "team": "db"}},
		{"no alertmanager_api: acknowledge only", &Replies{}, grouped("alertmanager", "firing"),
			"\nReply ACK " + outbox.ReplyCodePlaceholder + " to acknowledge", map[string]string{"alertname": "DiskFull", "team": "db"}},
		{"a webhook never silences", &Replies{Silence: "1h"}, grouped("ci", "firing"),
			"\nReply ACK " + outbox.ReplyCodePlaceholder + " to acknowledge", map[string]string{"alertname": "DiskFull", "team": "db"}},
		{"a route's matchers: within the route", &Replies{Silence: "1h"}, routed,
			"\nReply ACK " + outbox.ReplyCodePlaceholder + " to silence 1h", map[string]string{"alertname": "DiskFull", "team": "db"}},
		{"no group labels: the common labels", &Replies{Silence: "1h"}, ungrouped,
			"\nReply ACK " + outbox.ReplyCodePlaceholder + " to silence 1h", map[string]string{"alertname": "DiskFull", "instance": "db1"}},
		{"resolved: no code", &Replies{Silence: "1h"}, grouped("alertmanager", "resolved"), "", map[string]string{"alertname": "DiskFull", "team": "db"}},
		{"replies off", nil, grouped("alertmanager", "firing"), "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &recordingStore{}
			p := replyPipeline(t, st, tc.replies)
			if _, err := p.Accept(context.Background(), tc.n); err != nil {
				t.Fatal(err)
			}
			got := st.got[0]
			if !maps.Equal(got.AckLabels, tc.wantLabel) {
				t.Errorf("ack labels %v, want %v", got.AckLabels, tc.wantLabel)
			}
			m := got.Messages[0]
			switch {
			case tc.wantLine == "" && (m.ReplyCode || strings.Contains(m.Text, outbox.ReplyCodePlaceholder) || strings.Contains(m.Text, "Reply")):
				t.Errorf("text %q, reply code %t: want none", m.Text, m.ReplyCode)
			case tc.wantLine != "" && (!m.ReplyCode || !strings.HasSuffix(m.Text, tc.wantLine)):
				t.Errorf("text %q, reply code %t: want it to end with %q", m.Text, m.ReplyCode, tc.wantLine)
			}
			if m.Segments != 1 || templates.Segments(m.Text) != 1 {
				t.Errorf("segments %d (text %d), want the receiver's 1", m.Segments, templates.Segments(m.Text))
			}
		})
	}
}

// TestReplyCodePreview: the routes test shows where the code goes.
func TestReplyCodePreview(t *testing.T) {
	t.Parallel()
	p := replyPipeline(t, nil, &Replies{Silence: "1h"})
	n := notification("alertmanager", "firing", map[string]string{"alertname": "DiskFull"})
	pl := p.Preview(n, time.Date(2026, 3, 1, 3, 4, 5, 0, time.UTC))
	if text := pl.Entries[0].Text; !strings.HasSuffix(text, "Reply ACK "+PreviewReplyCode+" to silence 1h") || strings.Contains(text, outbox.ReplyCodePlaceholder) {
		t.Errorf("preview text %q", text)
	}
}
