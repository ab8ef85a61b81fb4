package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/receiver"
)

// fakeOncall has one list, db-primary, and records what it was asked.
type fakeOncall struct {
	mu      sync.Mutex
	added   []OverrideRequest
	deleted []int64
}

func (f *fakeOncall) Lists(now time.Time) []OncallList {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	return []OncallList{{
		Name: "db-primary", TimeZone: "Europe/Berlin", Source: "rotation",
		Now:   []Person{{Name: "alice", Number: "+27830000001"}},
		Until: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC), Next: []Person{{Name: "bob", Number: "+27830000002"}, {Number: "+27830000009"}},
		Schedule: "rotation alice, bob; shift 1w", NotifyHandoff: true,
		Overrides: []Override{
			{List: "db-primary", Members: []Person{{Name: "erin", Number: "+27830000005"}}, Start: now.Add(-time.Hour), End: now.Add(time.Hour)},
			{ID: 4, List: "db-primary", Members: []Person{{Name: "gone"}}, Start: now.Add(time.Hour), End: now.Add(2 * time.Hour), CreatedAt: now},
		},
		Location: berlin,
	}}
}

func (f *fakeOncall) AddOverride(_ context.Context, list string, req OverrideRequest) (Override, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case len(req.Members) > 0 && req.Members[0] == "eve":
		return Override{}, fmt.Errorf("%w: unknown person %q", ErrBadOverride, "eve")
	case len(req.Members) > 0 && req.Members[0] == "boom":
		return Override{}, errors.New("database is locked at /var/lib/smsbridge")
	}
	f.added = append(f.added, req)
	return Override{ID: 5, List: list, Members: []Person{{Name: "erin", Number: "+27830000005"}},
		Start: testNow, End: testNow.Add(time.Hour), CreatedAt: testNow}, nil
}

func (f *fakeOncall) DeleteOverride(_ context.Context, list string, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != 4 {
		return fmt.Errorf("%w %d", ErrUnknownOverride, id)
	}
	f.deleted = append(f.deleted, id)
	return nil
}

func newOncallServer(t *testing.T, admin bool) (*httptest.Server, *fakeOncall) {
	srv, oc, _ := newOncallServerLogs(t, admin)
	return srv, oc
}

// newOncallServerLogs is newOncallServer with its log.
func newOncallServerLogs(t *testing.T, admin bool) (*httptest.Server, *fakeOncall, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	oc := &fakeOncall{}
	records := sampleRecords()
	records[0].Person = "zoe" // who was on call at +27831110001
	h, err := New(Options{Store: &fakeStore{records: records}, Bridge: &fakeBridge{provider: Provider{State: ProviderOK}},
		Started: testNow, Now: func() time.Time { return testNow }, Logger: slog.New(slog.NewTextHandler(logs, nil)), Oncall: oc, AdminAPI: admin})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = receiver.ErrorHandler(slog.New(slog.DiscardHandler))
	h.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, oc, logs
}

func TestOncallAPI(t *testing.T) {
	t.Parallel()
	srv, oc, logs := newOncallServerLogs(t, true)
	code, body := do(t, "GET", srv.URL+"/api/v1/oncall", "")
	var got struct {
		Oncall []oncallJSON `json:"oncall"`
	}
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got.Oncall) != 1 {
		t.Fatalf("GET /api/v1/oncall: %d %s", code, body)
	}
	l := got.Oncall[0]
	if l.Name != "db-primary" || l.OnCall[0] != (personJSON{Name: "alice", Number: "+2783****001"}) || l.Until != "2026-11-30T09:00:00+01:00" ||
		len(l.Next) != 2 || l.Next[1].Number != "+2783****009" || len(l.Overrides) != 2 || l.Overrides[0].Source != "config" || l.Overrides[1].ID != 4 {
		t.Errorf("list %+v", l)
	}
	if strings.Contains(body, "27830000001") {
		t.Errorf("a full number in the API: %s", body)
	}
	code, body = do(t, "GET", srv.URL+"/api/v1/oncall/db-primary/overrides", "")
	if code != 200 || !strings.Contains(body, `"source":"api"`) || !strings.Contains(body, `"name":"gone"`) {
		t.Errorf("GET overrides: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		code                     int
		want                     string
	}{
		{"add", "POST", "/api/v1/oncall/db-primary/overrides", `{"members":["erin"],"end":"2026-11-26T05:00"}`, nil, 201, `"id":5`},
		{"add to an unknown list", "POST", "/api/v1/oncall/nope/overrides", `{"members":["erin"]}`, nil, 404, `no on-call list named \"nope\"`},
		{"add someone unknown", "POST", "/api/v1/oncall/db-primary/overrides", `{"members":["eve"],"end":"x"}`, nil, 400, `unknown person \"eve\"`},
		{"add, not JSON", "POST", "/api/v1/oncall/db-primary/overrides", `members=erin`, nil, 400, "body must be JSON like"},
		{"add, an unknown field", "POST", "/api/v1/oncall/db-primary/overrides", `{"member":["erin"]}`, nil, 400, "unknown field"},
		{"add, store failing", "POST", "/api/v1/oncall/db-primary/overrides", `{"members":["boom"],"end":"x"}`, nil, 503, "add override failed; see the bridge's log"},
		{"add from another site", "POST", "/api/v1/oncall/db-primary/overrides", `{"members":["erin"],"end":"x"}`, []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-origin"},
		{"delete", "DELETE", "/api/v1/oncall/db-primary/overrides/4", "", nil, 200, `"status":"deleted"`},
		{"delete unknown", "DELETE", "/api/v1/oncall/db-primary/overrides/9", "", nil, 404, "has no override 9"},
		{"delete a bad id", "DELETE", "/api/v1/oncall/db-primary/overrides/x", "", nil, 400, "is not a positive whole number"},
		{"delete from another site", "DELETE", "/api/v1/oncall/db-primary/overrides/4", "", []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-origin"},
	} {
		code, body := do(t, tc.method, srv.URL+tc.path, tc.body, tc.hdr...)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, code, body, tc.code, tc.want)
		}
		if strings.Contains(body, "/var/lib") {
			t.Errorf("%s: the store's error leaked: %s", tc.name, body)
		}
	}
	if len(oc.added) != 1 || oc.added[0].End != "2026-11-26T05:00" || len(oc.deleted) != 1 {
		t.Errorf("added %+v, deleted %v", oc.added, oc.deleted)
	}
	// Who changed who is paged, from where: once per change that happened.
	for _, w := range []string{`msg="on-call override added on request" oncall=db-primary id=5 remote_addr=127.0.0.1:`,
		`msg="on-call override deleted on request" oncall=db-primary id=4 remote_addr=127.0.0.1:`} {
		if strings.Count(logs.String(), w) != 1 {
			t.Errorf("log has not once %q:\n%s", w, logs)
		}
	}
}

// TestOncallAdminGate: without --web.enable-admin-api the writes are
// refused, naming the flag; reads still work.
func TestOncallAdminGate(t *testing.T) {
	t.Parallel()
	srv, oc := newOncallServer(t, false)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/api/v1/oncall/db-primary/overrides", `{"members":["erin"],"end":"2026-11-26T05:00"}`},
		{"DELETE", "/api/v1/oncall/db-primary/overrides/4", ""},
	} {
		code, body := do(t, tc.method, srv.URL+tc.path, tc.body)
		if code != 403 || !strings.Contains(body, "--web.enable-admin-api") {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, code, body)
		}
	}
	if len(oc.added)+len(oc.deleted) != 0 {
		t.Errorf("changed state: %+v %v", oc.added, oc.deleted)
	}
	if code, _ := do(t, "GET", srv.URL+"/api/v1/oncall/db-primary/overrides", ""); code != 200 {
		t.Errorf("GET overrides without the admin API: %d", code)
	}
}

func TestOncallOnPage(t *testing.T) {
	t.Parallel()
	srv, _ := newOncallServer(t, false)
	code, body := do(t, "GET", srv.URL+"/", "")
	for _, want := range []string{
		`id="oncall-db-primary"`, "alice (&#43;2783****001)", "Mon 30 Nov 09:00 CET", "in 4d 5h",
		"bob (&#43;2783****002), &#43;2783****009", "handoff notices", "override (configuration)", "override 4",
		"gone (not in the configuration)", "in force", "upcoming",
		"zoe (&#43;2783****001)", // the delivery names who was on call
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if code != 200 || strings.Contains(body, "27830000001") {
		t.Errorf("page %d, or a full number on it", code)
	}
	if _, body := do(t, "GET", srv.URL+"/api/v1/deliveries", ""); !strings.Contains(body, `"person":"zoe"`) {
		t.Errorf("deliveries JSON without the person: %s", body)
	}
	// Without lists, no section.
	plain, _ := newTestServer(t, &fakeBridge{provider: Provider{State: ProviderOK}})
	if _, body := do(t, "GET", plain.URL+"/", ""); strings.Contains(body, `id="oncall"`) {
		t.Error("an on-call section without lists")
	}
	if code, _ := do(t, "GET", plain.URL+"/api/v1/oncall", ""); code != 404 {
		t.Errorf("the on-call API without lists: %d", code)
	}
}

func TestMaskPeople(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		numbers, people []string
		want            string
	}{
		{[]string{"+27830000001", "+27830000005"}, []string{"alice", ""}, "alice (+2783****001), +2783****005"},
		{[]string{"+27830000001"}, nil, "+2783****001"},
	} {
		if got := maskPeople(tc.numbers, tc.people); got != tc.want {
			t.Errorf("maskPeople(%v, %v) = %q, want %q", tc.numbers, tc.people, got, tc.want)
		}
	}
}
