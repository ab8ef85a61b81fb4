package status

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// fakeEscalations has one open escalation (step 1 due in 4m, step 2
// after it) and one that ended (escalated, then acknowledged).
type fakeEscalations struct {
	mu        sync.Mutex
	open      []outbox.Escalation
	ended     []outbox.Escalation
	filters   []outbox.EscalationFilter
	cancelled []string
	err       error
}

func newFakeEscalations() *fakeEscalations {
	started := testNow.Add(-6 * time.Minute)
	step := func(id int64, n int, after time.Duration, rcv string, st outbox.EscalationState) outbox.EscalationStep {
		return outbox.EscalationStep{ID: id, Escalation: id - int64(n) + 1, Step: n, After: after, StepReceiver: rcv, DueAt: started.Add(after),
			State: st, GroupKey: `{}:{alertname="DiskFull"}`, AlertName: "DiskFull", Receiver: "db-oncall", NotificationID: 7, StartedAt: started}
	}
	open := outbox.Escalation{ID: 11, GroupKey: `{}:{alertname="DiskFull"}`, Source: "alertmanager", AlertName: "DiskFull", Receiver: "db-oncall",
		NotificationID: 7, StartedAt: started, Steps: []outbox.EscalationStep{
			step(11, 1, 10*time.Minute, "db-secondary", outbox.EscalationPending),
			step(12, 2, 30*time.Minute, "managers", outbox.EscalationPending),
		}}
	open.Steps[0].Attempts, open.Steps[0].Error = 2, "alertmanager http://am:9093: connection refused"
	done := outbox.Escalation{ID: 5, GroupKey: "g2", Source: "alertmanager", AlertName: "HighLatency", Receiver: "web", NotificationID: 3,
		StartedAt: testNow.Add(-2 * time.Hour), Steps: []outbox.EscalationStep{
			{ID: 5, Escalation: 5, Step: 1, After: 10 * time.Minute, StepReceiver: "web-2", State: outbox.EscalationEscalated,
				EndedAt: testNow.Add(-110 * time.Minute), EscalatedTo: 9},
			{ID: 6, Escalation: 5, Step: 2, After: time.Hour, StepReceiver: "managers", State: outbox.EscalationStopped,
				Reason: outbox.StopAcked, Detail: "acknowledged by bob (+2783****002) (ACK 4)", EndedAt: testNow.Add(-100 * time.Minute)},
		}}
	return &fakeEscalations{open: []outbox.Escalation{open}, ended: []outbox.Escalation{done}}
}

func (f *fakeEscalations) Escalations(_ context.Context, flt outbox.EscalationFilter) ([]outbox.Escalation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	if f.err != nil {
		return nil, f.err
	}
	if flt.Open {
		return f.open, nil
	}
	return append(append([]outbox.Escalation{}, f.open...), f.ended...), nil
}

func (f *fakeEscalations) Cancel(_ context.Context, id int64, by string) (outbox.Escalation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch id {
	case 11, 12:
		f.cancelled = append(f.cancelled, by)
		esc := f.open[0]
		for i := range esc.Steps {
			esc.Steps[i].State, esc.Steps[i].Reason = outbox.EscalationStopped, outbox.StopCancelled
		}
		return esc, nil
	case 5, 6:
		return f.ended[0], ErrEscalationOver
	}
	return outbox.Escalation{}, ErrUnknownEscalation
}

// TestEscalationsOnThePage: the open escalation with its next step, its
// time and the failing check; the ended one with what became of each
// step; a cancel button only with the admin API; links under the prefix.
func TestEscalationsOnThePage(t *testing.T) {
	t.Parallel()
	for _, admin := range []bool{true, false} {
		fe := newFakeEscalations()
		srv, _ := newTestServer(t, &fakeBridge{}, func(o *Options) { o.Escalations = fe; o.AdminAPI = admin; o.PathPrefix = "/sms" })
		code, page := do(t, "GET", srv.URL+"/", "")
		if code != 200 {
			t.Fatalf("page %d", code)
		}
		for _, want := range []string{
			`<section id="escalations">`, `<tr id="escalation-11" class="escalation open">`, `<span class="alertname">DiskFull</span>`,
			`<a href="/sms/#notification-7">notification #7</a>`,
			`<span class="badge st-pending">step 1</span> <code>db-secondary</code>`, `2026-11-26 03:04:00Z <span class="hint">(in 4m 0s)</span>`,
			`Alertmanager not answering: 2 checks failed; alertmanager http://am:9093: connection refused`,
			`<div>step 2: <code>managers</code> after 30m, 2026-11-26 03:24:00Z</div>`,
			`<b>HighLatency</b> to <code>web</code>`, `<span class="badge warn">escalated</span> 2026-11-26 01:10:00Z, <a href="/sms/#notification-9">notification #9</a>`,
			`<span class="badge ok">acked</span> <span class="hint">acknowledged by bob (&#43;2783****002) (ACK 4)</span>`,
			`<a href="/sms/api/v1/escalations"><code>/api/v1/escalations</code></a>`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("admin %t: page lacks %s", admin, want)
			}
		}
		if got := strings.Contains(page, `<form method="post" action="/sms/escalations/11/cancel" class="inline">`); got != admin {
			t.Errorf("admin %t: cancel button shown %t", admin, got)
		}
		for _, m := range regexp.MustCompile(`(?:href|action)="(/[^"]*)"`).FindAllStringSubmatch(page, -1) {
			if !strings.HasPrefix(m[1], "/sms/") {
				t.Errorf("links to %s, outside the prefix", m[1])
			}
		}
	}
	// Nothing open; the store failing says so; no section without
	// escalation.
	fe := newFakeEscalations()
	fe.open = nil
	srv, _ := newTestServer(t, &fakeBridge{}, func(o *Options) { o.Escalations = fe })
	if _, page := do(t, "GET", srv.URL+"/", ""); !strings.Contains(page, "No escalation is waiting") {
		t.Error("an empty list is not said to be empty")
	}
	fe.err = errors.New("disk on fire")
	if code, page := do(t, "GET", srv.URL+"/", ""); code != 200 || !strings.Contains(page, "the escalations could not be read") || strings.Contains(page, "disk on fire") {
		t.Errorf("a failing store: %d", code)
	}
	srv, _ = newTestServer(t, &fakeBridge{})
	if _, page := do(t, "GET", srv.URL+"/", ""); strings.Contains(page, `id="escalations"`) {
		t.Error("an escalation section without escalation")
	}
	if code, _ := do(t, "GET", srv.URL+"/api/v1/escalations", ""); code != 404 {
		t.Errorf("the API without escalation: %d", code)
	}
}

// TestEscalationsAPI: the list, open by default or all since a time;
// cancel behind the admin gate, refused cross-site, 404 and 409 for what
// cannot be cancelled, 400 for a bad id.
func TestEscalationsAPI(t *testing.T) {
	t.Parallel()
	fe := newFakeEscalations()
	srv, _ := newTestServer(t, &fakeBridge{}, func(o *Options) { o.Escalations = fe })
	code, body := do(t, "GET", srv.URL+"/api/v1/escalations", "")
	for _, want := range []string{`"id":11`, `"receiver":"db-oncall"`, `"open":true`,
		`"next":{"id":11,"step":1,"after":"10m","receiver":"db-secondary","due_at":"2026-11-26T03:04:00Z","state":"pending","attempts":2,"error":"alertmanager http://am:9093: connection refused"}`,
		`{"id":12,"step":2,"after":"30m","receiver":"managers","due_at":"2026-11-26T03:24:00Z","state":"pending"}`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET open: %d, lacks %s: %s", code, want, body)
		}
	}
	if strings.Contains(body, "HighLatency") {
		t.Error("the open list holds an ended escalation")
	}
	code, body = do(t, "GET", srv.URL+"/api/v1/escalations?state=all&since=6h", "")
	if code != 200 || !strings.Contains(body, `"reason":"acked","detail":"acknowledged by bob (+2783****002) (ACK 4)"`) || !strings.Contains(body, `"escalated_to":9`) {
		t.Errorf("GET all: %d %s", code, body)
	}
	if f := fe.filters[len(fe.filters)-1]; f.Open || !f.Since.Equal(testNow.Add(-6*time.Hour)) {
		t.Errorf("filter %+v, want since 6h ago", f)
	}
	for _, bad := range []string{"?state=closed", "?since=yesterday&state=all", "?since=1h"} {
		if code, body := do(t, "GET", srv.URL+"/api/v1/escalations"+bad, ""); code != 400 {
			t.Errorf("GET %s: %d %s, want 400", bad, code, body)
		}
	}

	for _, tc := range []struct {
		path string
		hdr  []string
		code int
		want string
	}{
		{"/api/v1/escalations/12/cancel", []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-origin"},
		{"/api/v1/escalations/12/cancel", nil, 200, `"status":"cancelled"`},
		{"/api/v1/escalations/6/cancel", nil, 409, "has no step left to cancel"},
		{"/api/v1/escalations/99/cancel", nil, 404, "no escalation with id 99"},
		{"/api/v1/escalations/x/cancel", nil, 400, "not a positive whole number"},
		{"/escalations/11/cancel", nil, 303, ""},
	} {
		code, body := do(t, "POST", srv.URL+tc.path, "", tc.hdr...)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s: %d %s, want %d with %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	if len(fe.cancelled) != 2 || !strings.HasPrefix(fe.cancelled[0], "the admin API from 127.0.0.1") || !strings.HasPrefix(fe.cancelled[1], "the status page from 127.0.0.1") {
		t.Errorf("cancelled by %q", fe.cancelled)
	}

	// Without the admin API: 403 naming the flag, nothing cancelled.
	closed := newFakeEscalations()
	srv, _ = newTestServer(t, &fakeBridge{}, func(o *Options) { o.Escalations = closed; o.AdminAPI = false })
	for _, path := range []string{"/api/v1/escalations/11/cancel", "/escalations/11/cancel"} {
		if code, body := do(t, "POST", srv.URL+path, ""); code != 403 || !strings.Contains(body, "--web.enable-admin-api") {
			t.Errorf("POST %s without the flag: %d %s", path, code, body)
		}
	}
	if len(closed.cancelled) != 0 {
		t.Errorf("cancelled through a closed gate: %v", closed.cancelled)
	}
	if code, _ := do(t, "GET", srv.URL+"/api/v1/escalations", ""); code != 200 {
		t.Errorf("reading without the flag: %d", code)
	}
}
