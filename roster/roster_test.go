package roster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/outboxtest"
	"github.com/smsbridge/smsbridge/outbox/sqlite"
	"github.com/smsbridge/smsbridge/sms"
)

const lists = `
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
  - {name: carol, number: "+27830000003"}
  - {name: dave, number: "+27830000004"}
  - {name: erin, number: "+27830000005"}
time_intervals:
  - name: weekday-mornings
    time_intervals:
      - weekdays: [monday:friday]
        times: [{start_time: "06:00", end_time: "09:00"}]
        location: Europe/Berlin
oncall:
  - name: db-primary
    time_zone: Europe/Berlin
    notify_handoff: true
    rotation: {members: [alice, bob, carol], shift: 1w, start: "2026-01-05T09:00"}
  - name: web
    time_zone: Europe/Berlin
    notify_handoff: true
    rotation: {members: [alice, bob], shift: 12h, start: "2026-01-05T09:00"}
    layers:
      - time_intervals: [weekday-mornings]
        members: [dave, erin]
  - name: quiet
    rotation: {members: [alice, bob], shift: 1d, start: "2026-01-05T09:00"}
`

func view(t testing.TB) View {
	t.Helper()
	var c struct {
		People        []oncall.Person `yaml:"people"`
		TimeIntervals []struct {
			Name          string                      `yaml:"name"`
			TimeIntervals []timeinterval.TimeInterval `yaml:"time_intervals"`
		} `yaml:"time_intervals"`
		Oncall []oncall.List `yaml:"oncall"`
	}
	if err := yaml.Unmarshal([]byte(lists), &c); err != nil {
		t.Fatal(err)
	}
	dir, errs := oncall.NewDirectory(c.People, sms.NormalizeNumber)
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range c.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	ls, _, more := oncall.Compile(c.Oncall, oncall.Options{Directory: dir, TimeIntervals: intervals})
	if errs = append(errs, more...); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	return View{Lists: ls, Directory: dir}
}

func openStore(t testing.TB, dir string, clock func() time.Time) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(dir, sqlite.Options{Retention: time.Hour, PruneInterval: -1, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type env struct {
	t     *testing.T
	dir   string
	clock *outboxtest.Clock
	store *sqlite.Store
	r     *Roster
	reg   *prometheus.Registry
	logs  *bytes.Buffer
}

func newEnv(t *testing.T, at string) *env {
	t.Helper()
	now, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: t.TempDir(), clock: outboxtest.NewClock(now)}
	e.start()
	return e
}

// start opens the store and a roster on it, as the bridge does at start.
func (e *env) start() {
	e.store = openStore(e.t, e.dir, e.clock.Now)
	e.t.Cleanup(func() { e.store.Close() })
	v := view(e.t)
	e.reg = prometheus.NewRegistry()
	e.logs = &bytes.Buffer{}
	e.r = New(Options{Store: e.store, View: func() View { return v }, Now: e.clock.Now, Metrics: NewMetrics(e.reg),
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	e.r.metrics.Init("db-primary", "web")
	e.reg.MustRegister(e.r.Collector())
	if err := e.r.Load(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.start()
}

func (e *env) check() {
	e.t.Helper()
	if err := e.r.CheckHandoffs(context.Background(), e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
}

// notices are the notices stored: "person number: text".
func (e *env) notices() []string {
	e.t.Helper()
	recs, err := e.store.Deliveries(context.Background(), outbox.Filter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		if r.Source != NoticeSource {
			e.t.Errorf("a delivery from %s", r.Source)
		}
		out = append(out, r.Receiver+" "+r.Person+" "+r.Number+": "+r.Text)
	}
	slices.Sort(out)
	return out
}

// TestHandoffNotice: at a handoff the member coming on call gets one
// notice, once, whatever the restarts.
func TestHandoffNotice(t *testing.T) {
	t.Parallel()
	// Monday 2026-03-30 09:00 in Berlin is 07:00Z; turn 12 is alice's.
	e := newEnv(t, "2026-03-30T06:59:00Z")
	e.check()
	// The web list's last handoff was its layer at 06:00 local (04:00Z)
	// that morning: dave and erin.
	want := []string{
		"handoff:web dave +27830000004: You are on call for web until Mon 09:00",
		"handoff:web erin +27830000005: You are on call for web until Mon 09:00",
	}
	if got := e.notices(); !slices.Equal(got, want) {
		t.Fatalf("notices before the handoff\n got %q\nwant %q", got, want)
	}
	e.clock.Advance(2 * time.Minute)
	e.check()
	want = append(want,
		"handoff:db-primary alice +27830000001: You are on call for db-primary until Mon 6 Apr 09:00",
		"handoff:web alice +27830000001: You are on call for web until Mon 21:00",
	)
	slices.Sort(want)
	if got := e.notices(); !slices.Equal(got, want) {
		t.Fatalf("notices after the handoff\n got %q\nwant %q", got, want)
	}
	if got := testutil.ToFloat64(e.r.metrics.notices.WithLabelValues("db-primary")); got != 1 {
		t.Errorf("db-primary notices counted %v, want 1", got)
	}
	if !strings.Contains(e.logs.String(), `member="alice (+2783****001)"`) || strings.Contains(e.logs.String(), "+27830000001") {
		t.Errorf("the log names alice with her number masked:\n%s", e.logs)
	}
	// Checked again, and after a restart (a fresh memory), nothing more.
	e.check()
	e.restart()
	e.check()
	e.clock.Advance(time.Hour)
	e.check()
	if got := e.notices(); !slices.Equal(got, want) {
		t.Errorf("notices after checking again and restarting\n got %q\nwant %q", got, want)
	}
	if got := testutil.ToFloat64(e.r.metrics.notices.WithLabelValues("db-primary")); got != 0 {
		t.Errorf("the restarted roster counted %v notices, want 0", got)
	}
	// The quiet list has no notify_handoff.
	for _, n := range e.notices() {
		if strings.Contains(n, "quiet") {
			t.Errorf("a notice for quiet: %s", n)
		}
	}
}

// TestHandoffNoticeLate: a bridge that was down at a handoff sends the
// notice when it is back, within a day; later, it does not.
func TestHandoffNoticeLate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		at   string
		want int
	}{
		{"2026-03-31T06:59:00Z", 1}, // alice's week began 24h minus a minute ago
		{"2026-03-31T07:01:00Z", 0}, // more than a day late
	} {
		e := newEnv(t, tc.at)
		e.r.view = func() View { v := view(t); v.Lists = v.Lists[:1]; return v }
		e.check()
		if got := len(e.notices()); got != tc.want {
			t.Errorf("at %s: %d notices, want %d", tc.at, got, tc.want)
		}
	}
	// With a store that keeps notices only an hour, a notice is not sent
	// later than that: the store could no longer tell it was sent.
	e := newEnv(t, "2026-03-30T08:01:00Z")
	e.r.view = func() View { v := view(t); v.Lists = v.Lists[:1]; return v }
	e.r.maxLate = time.Hour
	e.check()
	if got := len(e.notices()); got != 0 {
		t.Errorf("%d notices 61 minutes late with an hour's retention, want 0", got)
	}
}

// failingStore refuses to write.
type failingStore struct{ Store }

func (failingStore) Enqueue(context.Context, outbox.Notification) (outbox.Enqueued, error) {
	return outbox.Enqueued{}, errors.New("disk full")
}

// TestHandoffNoticeRetried: a notice the store could not take is tried
// again at the next check.
func TestHandoffNoticeRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "2026-03-30T07:01:00Z")
	real := e.r.store
	e.r.store = failingStore{real}
	if err := e.r.CheckHandoffs(context.Background(), e.clock.Now()); err == nil || !strings.Contains(err.Error(), "disk full") ||
		!strings.Contains(err.Error(), "alice (+2783****001)") {
		t.Fatalf("check with a failing store: %v", err)
	}
	e.r.store = real
	e.check()
	if got := len(e.notices()); got != 2 {
		t.Errorf("%d notices after the store recovered, want 2 (db-primary and web)", got)
	}
}

// TestOverrideNotice: an override added at run time is a handoff too.
func TestOverrideNotice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "2026-04-01T10:00:00Z")
	ctx := context.Background()
	o, err := e.r.Add(ctx, "db-primary", AddRequest{Members: []string{"erin"}, End: "2026-04-02T18:00"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Start.Equal(e.clock.Now()) || o.End.UTC().Format(time.RFC3339) != "2026-04-02T16:00:00Z" || !slices.Equal(o.Members, []string{"erin"}) {
		t.Errorf("stored %+v", o)
	}
	e.clock.Advance(time.Second)
	e.check()
	want := []string{
		"handoff:db-primary erin +27830000005: You are on call for db-primary until Thu 18:00",
		"handoff:web alice +27830000001: You are on call for web until Wed 21:00", // that morning's 09:00
	}
	if got := e.notices(); !slices.Equal(got, want) {
		t.Errorf("notices\n got %q\nwant %q", got, want)
	}
	if got := testutil.ToFloat64(gauge(t, e.reg, "db-primary")); got != 1 {
		t.Errorf("members gauge %v", got)
	}
	// A second roster on the same store (a restart, or a replica) knows it.
	e.restart()
	if got := e.r.Stored("db-primary"); len(got) != 1 || got[0].ID != o.ID {
		t.Errorf("after a restart: %+v", got)
	}
	if err := e.r.Delete(ctx, "web", o.ID); !errors.Is(err, ErrUnknownOverride) {
		t.Errorf("delete through another list: %v", err)
	}
	if err := e.r.Delete(ctx, "db-primary", o.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Delete(ctx, "db-primary", o.ID); !errors.Is(err, ErrUnknownOverride) {
		t.Errorf("delete twice: %v", err)
	}
	if got := e.r.For("db-primary", view(t).Directory); len(got) != 0 {
		t.Errorf("overrides after delete: %+v", got)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, list string) prometheus.Collector {
	t.Helper()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smsbridge_oncall_members" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == list {
				g.Set(m.GetGauge().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no smsbridge_oncall_members for %s", list)
	return nil
}

func TestMembersGauge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "2026-03-30T05:00:00Z") // 07:00 Monday in Berlin: web's morning layer
	for list, want := range map[string]float64{"db-primary": 1, "web": 2, "quiet": 1} {
		if got := testutil.ToFloat64(gauge(t, e.reg, list)); got != want {
			t.Errorf("%s: %v members, want %v", list, got, want)
		}
	}
}

// TestAddRefusals: every mistake is refused with a message and stores
// nothing.
func TestAddRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "2026-04-01T10:00:00Z")
	ctx := context.Background()
	for _, tc := range []struct {
		name, list string
		req        AddRequest
		is         error
		msg        string
	}{
		{"unknown list", "nope", AddRequest{Members: []string{"erin"}, End: "2026-04-02T00:00"}, ErrUnknownList, `no such on-call list "nope"`},
		{"no members", "db-primary", AddRequest{End: "2026-04-02T00:00"}, ErrBadOverride, `"members" is empty`},
		{"unknown person", "db-primary", AddRequest{Members: []string{"eve"}, End: "2026-04-02T00:00"}, ErrBadOverride, `unknown person "eve"; people are alice, bob, carol, dave, erin`},
		{"bad number", "db-primary", AddRequest{Members: []string{"+1"}, End: "2026-04-02T00:00"}, ErrBadOverride, `bad number "+1"`},
		{"empty member", "db-primary", AddRequest{Members: []string{" "}, End: "2026-04-02T00:00"}, ErrBadOverride, "a member is empty"},
		{"too many", "db-primary", AddRequest{Members: slices.Repeat([]string{"erin"}, 11), End: "2026-04-02T00:00"}, ErrBadOverride, "11 members; an override puts at most 10 people on call"},
		{"no end", "db-primary", AddRequest{Members: []string{"erin"}}, ErrBadOverride, `"end" is missing`},
		{"bad end", "db-primary", AddRequest{Members: []string{"erin"}, End: "tomorrow"}, ErrBadOverride, `end "tomorrow" is neither a local time`},
		{"bad start", "db-primary", AddRequest{Members: []string{"erin"}, Start: "now", End: "2026-04-02T00:00"}, ErrBadOverride, `start "now" is neither`},
		{"end before start", "db-primary", AddRequest{Members: []string{"erin"}, Start: "2026-04-03T00:00", End: "2026-04-02T00:00"}, ErrBadOverride,
			"end 2026-04-02T00:00:00+02:00 is not after start 2026-04-03T00:00:00+02:00"},
		{"in the past", "db-primary", AddRequest{Members: []string{"erin"}, Start: "2026-03-01T00:00", End: "2026-03-02T00:00"}, ErrBadOverride,
			"end 2026-03-02T00:00:00+01:00 is in the past"},
		{"too long", "db-primary", AddRequest{Members: []string{"erin"}, End: "2026-12-01T00:00"}, ErrBadOverride, "at most 90 days"},
	} {
		_, err := e.r.Add(ctx, tc.list, tc.req)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.is, tc.msg)
		}
	}
	if got, err := e.store.Overrides(ctx); err != nil || len(got) != 0 {
		t.Errorf("stored %+v %v", got, err)
	}
	// A number that belongs to a person is stored as the person.
	o, err := e.r.Add(ctx, "db-primary", AddRequest{Members: []string{"+27 83 000 0005", "+27830000009"}, Start: "2026-04-01T12:00:00Z", End: "2026-04-01T16:00"})
	if err != nil || !slices.Equal(o.Members, []string{"erin", "+27830000009"}) || o.End.UTC().Hour() != 14 {
		t.Errorf("stored %+v %v", o, err)
	}
}

// TestRunRefreshes: Run notices handoffs and rereads what another
// replica added.
func TestRunRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "2026-04-01T10:00:00Z")
	e.r.tick, e.r.refresh = time.Millisecond, time.Millisecond
	var mu sync.Mutex
	now := e.clock.Now()
	e.r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Millisecond); return now }
	if _, err := e.store.AddOverride(context.Background(), outbox.Override{List: "db-primary", Members: []string{"dave"},
		Start: e.clock.Now(), End: e.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.r.Stored("db-primary")) == 0 || len(e.notices()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run neither reread the overrides nor queued the notice")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
}

func TestNoticeText(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		until time.Time
		want  string
	}{
		{time.Date(2026, 3, 30, 19, 0, 0, 0, time.UTC), "You are on call for db until Mon 21:00"},
		{time.Date(2026, 4, 5, 6, 59, 0, 0, time.UTC), "You are on call for db until Sun 08:59"},
		{time.Date(2026, 4, 6, 7, 0, 0, 0, time.UTC), "You are on call for db until Mon 6 Apr 09:00"},
		{time.Time{}, "You are on call for db until further notice"},
	} {
		if got := NoticeText("db", tc.until, now, berlin); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.until, got, tc.want)
		}
	}
}
