package twoway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commoncfg "github.com/prometheus/common/config"

	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/sqlite"
	"github.com/smsbridge/smsbridge/sms/touchbase"
	"github.com/smsbridge/smsbridge/templates"
)

const (
	token   = "t0ken-c4llback-0123456789abcdef"
	alice   = "+27830000001"
	bob     = "+27830000002"
	carol   = "+27830000003"
	backup  = "+27830000009"
	unknown = "+27839999999"
)

// fakeAM is an Alertmanager's silences endpoint: it records what it is
// sent and answers with status (200: a new id).
type fakeAM struct {
	mu       sync.Mutex
	status   int
	silences []apiSilence
	srv      *httptest.Server
}

func newFakeAM(t *testing.T) *fakeAM {
	am := &fakeAM{status: http.StatusOK}
	am.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		am.mu.Lock()
		defer am.mu.Unlock()
		if r.URL.Path != silencesPath || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if am.status != http.StatusOK {
			w.WriteHeader(am.status)
			fmt.Fprint(w, `"silence invalid: matchers"`)
			return
		}
		var s apiSilence
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		am.silences = append(am.silences, s)
		fmt.Fprintf(w, `{"silenceID":"sil-%d"}`, len(am.silences))
	}))
	t.Cleanup(am.srv.Close)
	return am
}

func (am *fakeAM) set(status int) {
	am.mu.Lock()
	defer am.mu.Unlock()
	am.status = status
}

func (am *fakeAM) got() []apiSilence {
	am.mu.Lock()
	defer am.mu.Unlock()
	return slices.Clone(am.silences)
}

// env is a Processor and Handler on a real store, a fake clock and a
// fake Alertmanager.
type env struct {
	t     *testing.T
	store *sqlite.Store
	proc  *Processor
	h     *Handler
	e     *echo.Echo
	am    *fakeAM
	cfg   *Config
	now   time.Time
	mu    sync.Mutex
	logs  *bytes.Buffer
	reg   *prometheus.Registry
	acks  []outbox.Ack
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ev := &env{t: t, now: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}, reg: prometheus.NewRegistry()}
	st, err := sqlite.Open(t.TempDir(), sqlite.Options{Retention: 7 * 24 * time.Hour, PruneInterval: -1, Clock: ev.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ev.store = st
	ev.am = newFakeAM(t)
	am, err := NewAlertmanager([]string{ev.am.srv.URL}, time.Second, commoncfg.DefaultHTTPClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	parser, err := touchbase.New(touchbase.Config{URL: "http://127.0.0.1:1/sms/messages", APIKey: "parser-key-never-in-a-reply-3f9a", Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{alice: "alice", bob: "bob", carol: "", backup: "dave"}
	ev.cfg = &Config{Token: token, BodyLimit: 64 << 10, MatchWindow: 24 * time.Hour, Inbound: parser, Replies: true,
		AckSilence: time.Hour, MaxSilence: 24 * time.Hour, NotifyOthers: true, Alertmanager: am,
		Lookup: func(n string) (string, bool) { name, ok := names[n]; return name, ok },
		Failover: func(receiver string, _ time.Time) (string, []oncall.Member) {
			if receiver != "db" {
				return "", nil
			}
			return "db-backup", []oncall.Member{{Name: "dave", Number: backup}, {Name: "alice", Number: alice}}
		},
	}
	logger := slog.New(slog.NewTextHandler(lockedWriter{&ev.mu, ev.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ev.proc = NewProcessor(Options{Store: st, Config: func() *Config { return ev.cfg }, Logger: logger, Metrics: NewMetrics(ev.reg),
		Now: ev.clock, OnAck: func(a outbox.Ack) { ev.acks = append(ev.acks, a) }})
	ev.h = NewHandler(ev.proc)
	ev.e = echo.New()
	ev.h.Register(ev.e)
	return ev
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (ev *env) clock() time.Time {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.now
}

func (ev *env) advance(d time.Duration) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.now = ev.now.Add(d)
}

func (ev *env) log() string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.logs.String()
}

// page queues a firing Alertmanager page of DiskFull team=db (group g)
// to numbers through receiver db, with a reply code, and marks it
// accepted by the provider. It returns the code.
func (ev *env) page(group string, numbers ...string) int {
	ev.t.Helper()
	n := outbox.Notification{Source: "alertmanager", GroupKey: group, Status: "firing", AlertName: "DiskFull",
		AckLabels: map[string]string{"alertname": "DiskFull", "team": "db"},
		Messages: []outbox.Message{{Receiver: "db", Text: "FIRING:1 DiskFull\nReply ACK " + outbox.ReplyCodePlaceholder + " to silence 1h",
			Segments: 1, Numbers: numbers, People: make([]string, len(numbers)), ReplyCode: true}}}
	res, err := ev.store.Enqueue(context.Background(), n)
	if err != nil {
		ev.t.Fatal(err)
	}
	ev.acceptAll()
	var code int
	fmt.Sscan(res.ReplyCode, &code)
	return code
}

// acceptAll records every due delivery accepted, as the dispatcher
// would after the provider took it.
func (ev *env) acceptAll() {
	ev.t.Helper()
	ctx := context.Background()
	bs, err := ev.store.Lease(ctx, ev.clock(), 100, 100, time.Minute)
	if err != nil {
		ev.t.Fatal(err)
	}
	for _, b := range bs {
		for _, d := range b.Deliveries {
			if err := ev.store.Complete(ctx, []outbox.Outcome{outbox.Accepted(d, "primary", fmt.Sprint("api-", d.ID))}); err != nil {
				ev.t.Fatal(err)
			}
		}
	}
}

// callback posts a callback of typ with events to path's token.
func (ev *env) post(tok, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, CallbackPath+tok, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	ev.e.ServeHTTP(rec, req)
	return rec
}

// body is a callback of typ from the provider, one event per pair of
// number and text (a reply's message, or a status word).
func body(typ string, pairs ...string) string {
	var events []string
	for i := 0; i+1 < len(pairs); i += 2 {
		field := "Message"
		if typ == "MessageStatusUpdate" {
			field = "Status"
		}
		events = append(events, fmt.Sprintf(`{"Number": %q, %q: %q}`, strings.TrimPrefix(pairs[i], "+"), field, pairs[i+1]))
	}
	return fmt.Sprintf(`{"Timestamp": "2026-03-01T03:00:00.1234567Z", "Type": %q, "Events": [%s]}`, typ, strings.Join(events, ", "))
}

// reply posts one reply from number and fails unless it is accepted.
func (ev *env) reply(number, text string) {
	ev.t.Helper()
	// A distinct timestamp per reply, as the provider's: equal bodies
	// are one callback sent twice.
	ev.advance(time.Millisecond)
	b := strings.Replace(body("MessageReply", number, text), "03:00:00.1234567Z", ev.clock().Format("15:04:05.0000000Z"), 1)
	if rec := ev.post(token, b); rec.Code != http.StatusOK {
		ev.t.Fatalf("reply %q: %d %s", text, rec.Code, rec.Body)
	}
}

// answers returns the texts queued for number by the replies, oldest
// first.
func (ev *env) answers(number string) []string {
	ev.t.Helper()
	rs, err := ev.store.Deliveries(context.Background(), outbox.Filter{Limit: 1000})
	if err != nil {
		ev.t.Fatal(err)
	}
	var out []string
	for _, r := range slices.Backward(rs) {
		if r.Number == number && r.Source == SourceReplies {
			out = append(out, r.Text)
		}
	}
	return out
}

func (ev *env) replies(result string) float64 {
	return testutil.ToFloat64(ev.proc.metrics.replies.WithLabelValues(result))
}

func TestCallbackToken(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	code := ev.page("g1", alice)
	ack := body("MessageReply", alice, fmt.Sprintf("ACK %d", code))
	unknownPath := httptest.NewRecorder()
	ev.e.ServeHTTP(unknownPath, httptest.NewRequest(http.MethodPost, "/api/v1/nothing-here", nil))
	for _, tc := range []struct {
		name, token string
		disable     func(*Config)
	}{
		{"wrong token", "wrong-" + token, nil},
		{"prefix of the token", token[:10], nil},
		{"empty token", "", nil},
		{"callbacks off", token, func(c *Config) { c.Token = "" }},
		{"no parser", token, func(c *Config) { c.Inbound = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := *ev.cfg
			if tc.disable != nil {
				tc.disable(ev.cfg)
			}
			rec := ev.post(tc.token, ack)
			*ev.cfg = saved
			if rec.Code != http.StatusNotFound || rec.Body.String() != unknownPath.Body.String() {
				t.Errorf("answer %d %q, want the 404 of an unknown path %q", rec.Code, rec.Body, unknownPath.Body)
			}
		})
	}
	if len(ev.acks) != 0 || len(ev.am.got()) != 0 {
		t.Errorf("a refused callback acknowledged %d groups", len(ev.acks))
	}
	// The empty token matches no route: Echo's own 404, not counted.
	if n := testutil.ToFloat64(ev.proc.metrics.callbacks.WithLabelValues(CallbackNotFound)); n != 4 {
		t.Errorf("not_found counted %v, want 4", n)
	}
	if rec := ev.post(token, ack); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"accepted"`) {
		t.Errorf("the right token: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(ev.log(), token[:10]) {
		t.Errorf("the token is in the log:\n%s", ev.log())
	}
	if !strings.Contains(ev.log(), "callback refused: wrong token") {
		t.Errorf("wrong tokens not logged:\n%s", ev.log())
	}
}

func TestCallbackBody(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.cfg.BodyLimit = 512
	tests := []struct {
		name     string
		body     string
		code     int
		outcome  string
		contains string
	}{
		{"too large", `{"Type": "MessageReply", "Events": [` + strings.Repeat(`{"Number": "27830000001", "Message": "hi"}, `, 20) + `{}]}`,
			http.StatusRequestEntityTooLarge, CallbackTooLarge, "body_limit"},
		{"not json", `<html>proxy error</html>`, http.StatusBadRequest, CallbackInvalid, "not the provider's format"},
		{"events not a list", `{"Type": "MessageReply", "Events": "x"}`, http.StatusBadRequest, CallbackInvalid, "not a list"},
		{"unknown type: counted, ignored", `{"Type": "MessageSomethingNew", "Events": [{"Number": "27830000001"}]}`, http.StatusOK, CallbackAccepted, `"events":1`},
		{"empty events", `{"Type": "MessageStatusUpdate", "Events": []}`, http.StatusOK, CallbackAccepted, `"events":0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(ev.proc.metrics.callbacks.WithLabelValues(tc.outcome))
			rec := ev.post(token, tc.body)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("answer %d %s, want %d with %q", rec.Code, rec.Body, tc.code, tc.contains)
			}
			if after := testutil.ToFloat64(ev.proc.metrics.callbacks.WithLabelValues(tc.outcome)); after != before+1 {
				t.Errorf("%s counted %v times, want once", tc.outcome, after-before)
			}
		})
	}
	if n := testutil.ToFloat64(ev.proc.metrics.events.WithLabelValues("unknown")); n != 1 {
		t.Errorf("unknown events %v, want 1", n)
	}
}

// TestReplayedBodyOnce: the provider sending one body again acknowledges
// once and answers once.
func TestReplayedBodyOnce(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	code := ev.page("g1", alice, bob)
	b := body("MessageReply", alice, fmt.Sprintf("ACK %d", code))
	for i := range 3 {
		rec := ev.post(token, b)
		want := CallbackAccepted
		if i > 0 {
			want = CallbackDuplicate
		}
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"`+want+`"`) {
			t.Errorf("post %d: %d %s, want %s", i+1, rec.Code, rec.Body, want)
		}
	}
	ev.proc.Silencer().Step(context.Background())
	if got := ev.am.got(); len(got) != 1 {
		t.Errorf("%d silences, want 1", len(got))
	}
	if got := ev.answers(alice); len(got) != 1 {
		t.Errorf("answers to alice %q, want one confirmation", got)
	}
	if got := ev.answers(bob); len(got) != 1 {
		t.Errorf("answers to bob %q, want one \"acked by\"", got)
	}
}

// TestBodyCutShortHandledOnRetry: a process that dies while handling a
// body (some events done, the rest not) must not leave the body marked
// handled: the provider's retry is told to come back while the dead
// process's hold lasts, and then handles every event.
func TestBodyCutShortHandledOnRetry(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ctx := context.Background()
	ev.page("g1", alice, bob)
	b := body("MessageReply", alice, "STOP", bob, "STOP")
	sum := sha256.Sum256([]byte(b))
	key := hex.EncodeToString(sum[:])
	// The dead process: it held the body and handled its first event.
	if ok, err := ev.store.Claim(ctx, "callback-working/"+key, ev.clock(), workFor); err != nil || !ok {
		t.Fatalf("hold: %t %v", ok, err)
	}
	events, err := ev.cfg.Inbound.ParseCallback(http.Header{}, []byte(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.proc.Process(ctx, ev.cfg, key[:16], events[:1]); err != nil {
		t.Fatal(err)
	}
	optedOut := func() []string {
		got, err := ev.store.OptedOut(ctx, []string{alice, bob})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := optedOut(); !slices.Equal(got, []string{alice}) {
		t.Fatalf("opted out before the retry: %v", got)
	}
	for _, step := range []struct {
		after  time.Duration
		code   int
		status string
		opted  []string
	}{
		{0, http.StatusServiceUnavailable, "being handled", []string{alice}},
		{workFor - time.Second, http.StatusServiceUnavailable, "being handled", []string{alice}},
		{time.Second, http.StatusOK, `"status":"accepted"`, []string{alice, bob}},
		{time.Minute, http.StatusOK, `"status":"duplicate"`, []string{alice, bob}},
	} {
		ev.advance(step.after)
		rec := ev.post(token, b)
		if rec.Code != step.code || !strings.Contains(rec.Body.String(), step.status) {
			t.Errorf("+%s: %d %s, want %d with %q", step.after, rec.Code, rec.Body, step.code, step.status)
		}
		if step.code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Errorf("+%s: 503 without Retry-After", step.after)
		}
		if got := optedOut(); !slices.Equal(got, step.opted) {
			t.Errorf("+%s: opted out %v, want %v", step.after, got, step.opted)
		}
	}
	if n := testutil.ToFloat64(ev.proc.metrics.callbacks.WithLabelValues(CallbackInProgress)); n != 2 {
		t.Errorf("in_progress counted %v, want 2", n)
	}
}

// TestAckCreatesSilence: the whole acknowledgement, as the issue words it.
func TestAckCreatesSilence(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	code := ev.page(`{}:{alertname="DiskFull", team="db"}`, alice, bob, carol)
	ev.reply(alice, fmt.Sprintf("'ack %d'", code))
	at := ev.clock()
	if len(ev.acks) != 1 || ev.acks[0].Person != "alice" || ev.acks[0].Code != code {
		t.Fatalf("OnAck got %+v", ev.acks)
	}
	// The others hear at once; the sender when the silence exists.
	for _, n := range []string{bob, carol} {
		if got := ev.answers(n); len(got) != 1 || got[0] != "DiskFull team=db acked by alice for 1h" {
			t.Errorf("answers to %s %q", n, got)
		}
	}
	if got := ev.answers(alice); len(got) != 0 {
		t.Errorf("alice answered before the silence exists: %q", got)
	}
	ev.proc.Silencer().Step(context.Background())
	got := ev.am.got()
	if len(got) != 1 {
		t.Fatalf("%d silences, want 1", len(got))
	}
	s := got[0]
	wantMatchers := []apiMatcher{{Name: "alertname", Value: "DiskFull", IsEqual: true}, {Name: "team", Value: "db", IsEqual: true}}
	if !slices.Equal(s.Matchers, wantMatchers) || s.CreatedBy != "smsbridge" || !s.StartsAt.Equal(at) || !s.EndsAt.Equal(at.Add(time.Hour)) {
		t.Errorf("silence %+v", s)
	}
	if want := fmt.Sprintf("Acknowledged by SMS from alice (ACK %d)", code); s.Comment != want {
		t.Errorf("comment %q, want %q", s.Comment, want)
	}
	if got := ev.answers(alice); len(got) != 1 || got[0] != fmt.Sprintf("Silenced DiskFull team=db for 1h (ACK %d)", code) {
		t.Errorf("confirmation %q", got)
	}
	as, err := ev.store.Acks(context.Background(), time.Time{}, 0)
	if err != nil || len(as) != 1 || as[0].Silence != outbox.SilenceCreated || as[0].SilenceID != "sil-1" {
		t.Errorf("stored ack %+v %v", as, err)
	}
	if testutil.ToFloat64(ev.proc.metrics.silencesCreated) != 1 || ev.replies(ResultAck) != 1 {
		t.Error("silence or ack not counted")
	}

	// Bob acks too: already acked, by alice.
	ev.reply(bob, fmt.Sprintf("%da", code))
	if got := ev.answers(bob); len(got) != 2 || !strings.HasPrefix(got[1], "Already acked by alice, 1h left") {
		t.Errorf("bob's answers %q", got)
	}
	if len(ev.am.got()) != 1 || ev.replies(ResultAlreadyAcked) != 1 {
		t.Error("a second silence for an acknowledged group")
	}
}

func TestAckDurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reply string
		want  time.Duration
	}{
		{"ACK %d", time.Hour},
		{"ACK %d 4h", 4 * time.Hour},
		{"ack%d 90m", 90 * time.Minute},
		{"ACK %d 3d", 24 * time.Hour}, // at most max_silence
		{"ACK %d sometime", time.Hour},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			code := ev.page("g", alice)
			ev.reply(alice, fmt.Sprintf(tc.reply, code))
			at := ev.clock()
			ev.proc.Silencer().Step(context.Background())
			got := ev.am.got()
			if len(got) != 1 || !got[0].EndsAt.Equal(at.Add(tc.want)) {
				t.Errorf("silences %+v, want one ending %v later", got, tc.want)
			}
		})
	}
}

func TestAckAll(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.page("g1", alice)
	ev.page("g2", alice, bob)
	ev.page("g3", bob) // not alice's
	ev.reply(alice, "ACK ALL")
	ev.proc.Silencer().Step(context.Background())
	if n := len(ev.am.got()); n != 2 {
		t.Errorf("%d silences, want alice's 2 groups", n)
	}
	if ev.replies(ResultAckAll) != 1 {
		t.Error("ack_all not counted")
	}
	// Nothing left open for alice now: both acknowledged (she had one
	// summary for the two).
	ev.reply(alice, "ack all")
	if got := ev.answers(alice); len(got) != 2 || !strings.HasPrefix(got[1], "Already acked") {
		t.Errorf("answers %q", got)
	}
	// A number with nothing open gets told so.
	ev.reply(carol, "ACK ALL")
	if got := ev.answers(carol); len(got) != 1 || got[0] != nothingOpenText {
		t.Errorf("carol's answers %q", got)
	}
}

// TestAckAllAnswersOnce: ACK ALL over many groups answers the sender
// once and each other recipient once, however many groups; the Silencer
// does not confirm the silences one by one; a replayed callback sends
// nothing more.
func TestAckAllAnswersOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		am     bool // alertmanager_api configured
		status int  // what Alertmanager answers
		head   string
		// sender is how many answers alice gets in all.
		sender int
	}{
		{"silences created", true, http.StatusOK, "Acked 20 groups for 1h (silences pending): ", 1},
		{"no alertmanager_api", false, http.StatusOK, "Acked 20 groups for 1h (no silence: alertmanager_api is not configured): ", 1},
		// Refusals are said, within the limit of answers (the replay's
		// "already acked", not sent, took one).
		{"silences refused", true, http.StatusBadRequest, "Acked 20 groups for 1h (silences pending): ", 1 + maxAnswers - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			if !tc.am {
				ev.cfg.Alertmanager = nil
			}
			ev.am.set(tc.status)
			ctx := context.Background()
			for i := range 20 {
				numbers := []string{alice, bob}
				if i < 3 {
					numbers = append(numbers, carol)
				}
				name := fmt.Sprintf("Alert%02d", i)
				if _, err := ev.store.Enqueue(ctx, outbox.Notification{Source: "alertmanager", GroupKey: fmt.Sprint("g", i), Status: "firing",
					AlertName: name, AckLabels: map[string]string{"alertname": name, "team": "db"},
					Messages: []outbox.Message{{Receiver: "db", Text: "FIRING " + name + " ACK " + outbox.ReplyCodePlaceholder, Segments: 1,
						Numbers: numbers, People: make([]string, len(numbers)), ReplyCode: true}}}); err != nil {
					t.Fatal(err)
				}
			}
			ev.acceptAll()
			events, err := ev.cfg.Inbound.ParseCallback(http.Header{}, []byte(body("MessageReply", alice, "ACK ALL")))
			if err != nil {
				t.Fatal(err)
			}
			// The same callback twice (a replay after an error): the
			// second sends nothing.
			for range 2 {
				if err := ev.proc.Process(ctx, ev.cfg, "replayed", events); err != nil {
					t.Fatal(err)
				}
			}
			if len(ev.acks) != 20 {
				t.Fatalf("%d acknowledgements, want 20", len(ev.acks))
			}
			ev.proc.Silencer().Step(ctx)
			if n := len(ev.am.got()); tc.am && tc.status == http.StatusOK && n != 20 {
				t.Errorf("%d silences, want 20", n)
			}
			got := ev.answers(alice)
			if len(got) != tc.sender {
				t.Fatalf("alice got %d answers, want %d: %q", len(got), tc.sender, got)
			}
			if !strings.HasPrefix(got[0], tc.head) || !strings.Contains(got[0], ": Alert19, Alert18, ") ||
				!strings.HasSuffix(got[0], " more") || templates.Segments(got[0]) != 1 {
				t.Errorf("summary %q: want %q, names, how many more, one segment", got[0], tc.head)
			}
			for _, a := range got[1:] {
				if !strings.Contains(a, "refused the silence") {
					t.Errorf("answer %q, want a refusal", a)
				}
			}
			for _, w := range []struct {
				number, head string
			}{
				{bob, "20 groups acked by alice for 1h: Alert19, Alert18, "},
				{carol, "3 groups acked by alice for 1h: Alert02, Alert01, Alert00"},
			} {
				if got := ev.answers(w.number); len(got) != 1 || !strings.HasPrefix(got[0], w.head) || templates.Segments(got[0]) != 1 {
					t.Errorf("answers to %s %q, want one starting %q", w.number, got, w.head)
				}
			}
		})
	}
}

// TestHelpAndLimits: a bad code and junk get help, at most 5 an hour per
// number; an unknown number gets nothing at all.
func TestHelpAndLimits(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	code := ev.page("g", alice)
	ev.reply(alice, fmt.Sprintf("ACK %d", code+1))
	if got := ev.answers(alice); len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("no alert with code %d", code+1)) {
		t.Errorf("bad code answered %q", got)
	}
	for range 6 {
		ev.reply(bob, "thanks, looking")
	}
	if got := ev.answers(bob); len(got) != 5 || got[0] != helpText {
		t.Errorf("6 junk replies got %d answers, want 5: %q", len(got), got)
	}
	if n := testutil.ToFloat64(ev.proc.metrics.suppressed); n != 1 {
		t.Errorf("suppressed %v, want 1", n)
	}
	// An hour later bob may be answered again.
	ev.advance(time.Hour)
	ev.reply(bob, "hello?")
	if got := ev.answers(bob); len(got) != 6 {
		t.Errorf("after an hour %d answers, want 6", len(got))
	}
	for _, text := range []string{"ACK 1", "hello", "ACK ALL"} {
		ev.reply(unknown, text)
	}
	if got := ev.answers(unknown); len(got) != 0 || ev.replies(ResultUnknownNumber) != 3 {
		t.Errorf("an unknown number was answered %q", got)
	}
	if ev.replies(ResultBadCode) != 1 || ev.replies(ResultJunk) != 7 {
		t.Errorf("bad_code %v, junk %v", ev.replies(ResultBadCode), ev.replies(ResultJunk))
	}
}

func TestStopStart(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.page("g1", alice)
	// Waiting for alice: pending, not yet sent.
	if _, err := ev.store.Enqueue(context.Background(), outbox.Notification{Source: "alertmanager", GroupKey: "g2", Status: "firing",
		Messages: []outbox.Message{{Receiver: "db", Text: "waiting", Segments: 1, Numbers: []string{alice, bob}}}}); err != nil {
		t.Fatal(err)
	}
	var failed int
	ev.proc.countFailed = func(reason string, n int) { failed += n }
	ev.reply(alice, "STOP")
	outs, err := ev.store.OptOuts(context.Background())
	if err != nil || len(outs) != 1 || outs[0].Number != alice {
		t.Fatalf("opt-outs %+v %v", outs, err)
	}
	if failed != 1 || ev.replies(ResultStop) != 1 {
		t.Errorf("failed %d, stop counted %v", failed, ev.replies(ResultStop))
	}
	if got := ev.answers(alice); len(got) != 0 {
		t.Errorf("STOP was answered: %q", got)
	}
	if !strings.Contains(ev.log(), "a number replied STOP") || strings.Contains(ev.log(), alice) {
		t.Errorf("the opt-out is not logged loudly, or with the number in full:\n%s", ev.log())
	}
	ev.reply(alice, "Start")
	if outs, _ := ev.store.OptOuts(context.Background()); len(outs) != 0 {
		t.Errorf("opt-outs after START: %+v", outs)
	}
	if got := ev.answers(alice); len(got) != 1 || got[0] != startText {
		t.Errorf("START answered %q", got)
	}
	// STOP and START work with replies off; nothing else does.
	ev.cfg.Replies = false
	ev.reply(bob, "quit")
	ev.reply(bob, "ACK 1")
	if outs, _ := ev.store.OptOuts(context.Background()); len(outs) != 1 || ev.replies(ResultIgnored) != 1 || len(ev.acks) != 0 {
		t.Errorf("replies off: opt-outs %+v, ignored %v, acks %d", outs, ev.replies(ResultIgnored), len(ev.acks))
	}
}

// TestNoSilence: what is acknowledged without a silence says why.
func TestNoSilence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(ev *env) int
		why   string
	}{
		{"no alertmanager_api", func(ev *env) int { ev.cfg.Alertmanager = nil; return ev.page("g", alice) }, "alertmanager_api is not configured"},
		{"a webhook's alert", func(ev *env) int {
			res, err := ev.store.Enqueue(context.Background(), outbox.Notification{Source: "github", GroupKey: "ci:1", Status: "firing", AlertName: "WorkflowFailed",
				AckLabels: map[string]string{"alertname": "WorkflowFailed"},
				Messages:  []outbox.Message{{Receiver: "db", Text: "ci " + outbox.ReplyCodePlaceholder, Segments: 1, Numbers: []string{alice}, ReplyCode: true}}})
			if err != nil {
				t.Fatal(err)
			}
			var c int
			fmt.Sscan(res.ReplyCode, &c)
			return c
		}, "not an Alertmanager alert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			code := tc.setup(ev)
			ev.reply(alice, fmt.Sprintf("ACK %d", code))
			ev.proc.Silencer().Step(context.Background())
			if len(ev.am.got()) != 0 || len(ev.acks) != 1 || ev.acks[0].Silence != outbox.SilenceNone {
				t.Errorf("silences %d, acks %+v", len(ev.am.got()), ev.acks)
			}
			if got := ev.answers(alice); len(got) != 1 || !strings.HasSuffix(got[0], "no silence: "+tc.why) {
				t.Errorf("answer %q", got)
			}
		})
	}
}

// TestSilenceRetries: while Alertmanager does not answer, the
// acknowledgement waits in the store and is retried with backoff; the
// sender hears "pending" once and "silenced" when it worked. A refusal is
// not retried.
func TestSilenceRetries(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ctx := context.Background()
	code := ev.page("g", alice)
	ev.am.set(http.StatusServiceUnavailable)
	ev.reply(alice, fmt.Sprintf("ACK %d", code))
	acked := ev.clock()
	s := ev.proc.Silencer()
	next := s.Step(ctx)
	if want := ev.clock().Add(minRetry); !next.Equal(want) {
		t.Errorf("next attempt %v, want %v", next, want)
	}
	if got := ev.answers(alice); len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("Ack recorded, silence pending (ACK %d)", code)) {
		t.Errorf("answers %q", got)
	}
	ev.advance(minRetry)
	if next := s.Step(ctx); !next.Equal(ev.clock().Add(2 * minRetry)) {
		t.Errorf("second retry at %v, want doubled", next)
	}
	if n := testutil.ToFloat64(ev.proc.metrics.silenceErrors.WithLabelValues(ReasonServerError)); n != 2 {
		t.Errorf("server_error counted %v, want 2", n)
	}
	ev.am.set(http.StatusOK)
	ev.advance(2 * minRetry)
	s.Step(ctx)
	if len(ev.am.got()) != 1 {
		t.Fatal("no silence once Alertmanager answered")
	}
	got := ev.answers(alice)
	if len(got) != 2 || !strings.HasPrefix(got[1], "Silenced DiskFull team=db for ") {
		t.Errorf("answers %q: want pending once, then silenced", got)
	}
	// Late, but it ends when the acknowledgement said.
	if s := ev.am.got()[0]; !s.EndsAt.Equal(acked.Add(time.Hour)) || !s.StartsAt.Equal(ev.clock()) {
		t.Errorf("silence from %v to %v, want from now to %v", s.StartsAt, s.EndsAt, acked.Add(time.Hour))
	}

	// Refused: failed for good, said so, not retried.
	code = ev.page("g-refused", bob)
	ev.am.set(http.StatusBadRequest)
	ev.reply(bob, fmt.Sprintf("ACK %d", code))
	if next := s.Step(ctx); !next.IsZero() {
		t.Errorf("a refused silence is due again at %v", next)
	}
	if got := ev.answers(bob); len(got) != 1 || !strings.Contains(got[0], "refused the silence") {
		t.Errorf("bob's answers %q", got)
	}

	// Too late: given up once the acknowledgement ended.
	code = ev.page("g-late", carol)
	ev.am.set(http.StatusBadGateway)
	ev.reply(carol, fmt.Sprintf("ACK %d 1m", code))
	s.Step(ctx)
	ev.advance(2 * time.Minute)
	s.Step(ctx)
	if n := testutil.ToFloat64(ev.proc.metrics.silenceErrors.WithLabelValues(ReasonExpired)); n != 1 {
		t.Errorf("expired %v, want 1", n)
	}
}

// TestReceiptsAndFailover: receipts land on the message; a failure sends
// the same text once to on_undelivered, with a code of its own.
func TestReceiptsAndFailover(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ctx := context.Background()
	ev.page("g", alice, bob)
	rec := ev.post(token, body("MessageStatusUpdate", alice, "Delivered", bob, "Undeliverable", carol, "Delivered", bob, "Enroute"))
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	for _, tc := range []struct {
		label string
		want  float64
	}{{ReceiptDelivered, 1}, {ReceiptFailed, 1}, {ReceiptOther, 0}} {
		if n := testutil.ToFloat64(ev.proc.metrics.receipts.WithLabelValues(tc.label)); n != tc.want {
			t.Errorf("receipts{%s} %v, want %v", tc.label, n, tc.want)
		}
	}
	// carol had nothing; bob's Enroute came after his failure.
	if n := testutil.ToFloat64(ev.proc.metrics.unmatched); n != 2 {
		t.Errorf("unmatched %v, want 2", n)
	}
	rs, err := ev.store.Deliveries(ctx, outbox.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var failover []outbox.Record
	byNumber := map[string]outbox.Record{}
	for _, r := range rs {
		if r.FailoverOf != 0 {
			failover = append(failover, r)
		} else {
			byNumber[r.Number] = r
		}
	}
	if r := byNumber[alice]; r.Receipt != outbox.ReceiptDelivered || r.State != outbox.StateAccepted {
		t.Errorf("alice's delivery %+v", r)
	}
	if len(failover) != 1 || failover[0].Number != backup || failover[0].Receiver != "db-backup" || failover[0].FailoverOf != byNumber[bob].ID ||
		failover[0].Person != "dave" || failover[0].ReplyCode == "" || !strings.HasPrefix(failover[0].Text, "FIRING:1 DiskFull\nReply ACK ") {
		t.Fatalf("failover %+v: want the text once to dave (alice had it already), with a code", failover)
	}
	if byNumber[bob].FailedOverTo != failover[0].NotificationID {
		t.Errorf("bob's delivery names failover %d, want %d", byNumber[bob].FailedOverTo, failover[0].NotificationID)
	}
	// The backup's code acknowledges the same group.
	var c int
	fmt.Sscan(failover[0].ReplyCode, &c)
	ev.reply(backup, fmt.Sprintf("ACK %d", c))
	if len(ev.acks) != 1 || ev.acks[0].GroupKey != "g" || ev.acks[0].Person != "dave" {
		t.Errorf("the backup's ack %+v", ev.acks)
	}
	// The failover failing too goes nowhere (one hop); the same failure
	// reported twice fails over once.
	ev.acceptAll()
	ev.post(token, body("MessageStatusUpdate", backup, "Failed"))
	if n := testutil.ToFloat64(ev.proc.metrics.failovers); n != 1 {
		t.Errorf("failovers %v, want 1", n)
	}
}

func TestAlertmanagerClient(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // connection refused from now on
	am := newFakeAM(t)
	withStatus := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			if code == http.StatusOK {
				fmt.Fprint(w, `{"unexpected": true}`)
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	withPrefix := httptest.NewServer(http.StripPrefix("/am", am.srv.Config.Handler))
	t.Cleanup(withPrefix.Close)
	tests := []struct {
		name      string
		urls      []string
		reason    string // "" for success
		permanent bool
	}{
		{"first answers", []string{am.srv.URL}, "", false},
		{"the first is down: the second", []string{downURL, am.srv.URL}, "", false},
		{"the first fails: the second", []string{withStatus(http.StatusInternalServerError), am.srv.URL}, "", false},
		{"a route prefix", []string{withPrefix.URL + "/am/"}, "", false},
		{"all down", []string{downURL}, ReasonUnreachable, false},
		{"unauthorized", []string{withStatus(http.StatusUnauthorized)}, ReasonUnauthorized, false},
		{"refused: the peer is not asked", []string{withStatus(http.StatusBadRequest), am.srv.URL}, ReasonRejected, true},
		{"no id", []string{withStatus(http.StatusOK)}, ReasonBadResponse, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewAlertmanager(tc.urls, time.Second, commoncfg.DefaultHTTPClientConfig)
			if err != nil {
				t.Fatal(err)
			}
			before := len(am.got())
			id, err := c.CreateSilence(context.Background(), Silence{Matchers: map[string]string{"alertname": "X"},
				StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour), Comment: "test"})
			if tc.reason == "" {
				if err != nil || id == "" || len(am.got()) != before+1 {
					t.Errorf("id %q, err %v", id, err)
				}
				return
			}
			se, ok := err.(*APIError)
			if !ok || se.Reason != tc.reason || se.Permanent != tc.permanent || len(am.got()) != before {
				t.Errorf("error %#v, want reason %s (permanent %t) and nothing created", err, tc.reason, tc.permanent)
			}
		})
	}
	if _, err := (&Alertmanager{}).CreateSilence(context.Background(), Silence{}); err == nil {
		t.Error("a silence without matchers was sent")
	}
}

// TestAlertmanagerSecrets: the basic auth password reaches Alertmanager
// in the header only, and no error holds it.
func TestAlertmanagerSecrets(t *testing.T) {
	t.Parallel()
	const pass = "am-pa55w0rd-s3cret"
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, p, _ := r.BasicAuth()
		gotAuth = p
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "forbidden: "+r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	cfg := commoncfg.DefaultHTTPClientConfig
	cfg.BasicAuth = &commoncfg.BasicAuth{Username: "sb", Password: commoncfg.Secret(pass)}
	c, err := NewAlertmanager([]string{srv.URL}, time.Second, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateSilence(context.Background(), Silence{Matchers: map[string]string{"a": "b"}, EndsAt: time.Now().Add(time.Hour)})
	if gotAuth != pass {
		t.Errorf("Alertmanager got password %q", gotAuth)
	}
	if err == nil || strings.Contains(err.Error(), pass) || strings.Contains(fmt.Sprintf("%+v", c), pass) {
		t.Errorf("the password leaks: %v", err)
	}
}

func TestTokenEqualAndRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got, want string
		eq        bool
	}{{token, token, true}, {token + "x", token, false}, {"", token, false}, {"", "", true}, {strings.ToUpper(token), token, false}} {
		if TokenEqual(tc.got, secret.Secret(tc.want)) != tc.eq {
			t.Errorf("TokenEqual(%q, %q) != %t", tc.got, tc.want, tc.eq)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"/api/v1/sms/callback/" + token, "/api/v1/sms/callback/<secret>"},
		{"/sms/api/v1/sms/callback/" + token + "?x=1", "/sms/api/v1/sms/callback/<secret>?x=1"},
		{"/api/v1/alertmanager", "/api/v1/alertmanager"},
	} {
		if got := RedactPath(tc.in); got != tc.want {
			t.Errorf("RedactPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCallbackLogsPeer: a refused callback is logged with the peer's
// address; X-Forwarded-For and X-Real-IP, which anyone can send, never
// take its place.
func TestCallbackLogsPeer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, token, body string
		headers           map[string]string
		want, absent      []string
	}{
		{"wrong token, forged headers", "wrong-" + token, "{}",
			map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "198.51.100.8"},
			[]string{"remote=192.0.2.1:1234", "forwarded_for=203.0.113.7"}, []string{"remote=203.0.113.7", "remote=198.51.100.8"}},
		{"wrong token, no headers", "wrong-" + token, "{}", nil,
			[]string{"remote=192.0.2.1:1234"}, []string{"forwarded_for"}},
		{"not the provider's format", token, "<html>", map[string]string{"X-Real-IP": "198.51.100.8"},
			[]string{"not the provider's format", "remote=192.0.2.1:1234"}, []string{"198.51.100.8"}},
		{"too large", token, strings.Repeat("x", 128), map[string]string{"X-Forwarded-For": "203.0.113.7, 10.0.0.1"},
			[]string{"body too large", "remote=192.0.2.1:1234", `forwarded_for="203.0.113.7, 10.0.0.1"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			ev.cfg.BodyLimit = 64
			req := httptest.NewRequest(http.MethodPost, CallbackPath+tc.token, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			ev.e.ServeHTTP(httptest.NewRecorder(), req)
			log := ev.log()
			for _, w := range tc.want {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(log, a) {
					t.Errorf("log has %q:\n%s", a, log)
				}
			}
		})
	}
}

// TestStartAnswerLimited: START's confirmation counts in the 5 answers an
// hour, so STOP/START pairs cannot make the bridge text without end; STOP
// is never answered.
func TestStartAnswerLimited(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		pairs    int
		answers  int
		suppress float64
	}{
		{"within the limit", 3, 3, 0},
		{"the limit", 5, 5, 0},
		{"past it", 8, 5, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			for range tc.pairs {
				ev.reply(alice, "STOP")
				ev.reply(alice, "START")
			}
			got := ev.answers(alice)
			if len(got) != tc.answers || slices.ContainsFunc(got, func(s string) bool { return s != startText }) {
				t.Errorf("%d STOP/START pairs got %d answers %q, want %d confirmations", tc.pairs, len(got), got, tc.answers)
			}
			if n := testutil.ToFloat64(ev.proc.metrics.suppressed); n != tc.suppress {
				t.Errorf("suppressed %v, want %v", n, tc.suppress)
			}
			if ev.replies(ResultStart) != float64(tc.pairs) {
				t.Errorf("start counted %v, want %d", ev.replies(ResultStart), tc.pairs)
			}
			if outs, _ := ev.store.OptOuts(context.Background()); len(outs) != 0 {
				t.Errorf("opted out after START: %+v", outs)
			}
		})
	}
}

// TestStopKnownNumbersOnly: STOP opts out only a number the bridge pages
// (configured, or given a code in the last day); any other number's STOP
// or START is counted as unknown_number and changes nothing.
func TestStopKnownNumbersOnly(t *testing.T) {
	t.Parallel()
	const paged = "+27830000010" // not configured; given a code
	forget := func(ev *env, n string) {
		lookup := ev.cfg.Lookup
		ev.cfg.Lookup = func(m string) (string, bool) {
			if m == n {
				return "", false
			}
			return lookup(m)
		}
	}
	for _, tc := range []struct {
		name                 string
		steps                func(ev *env)
		out                  []string
		stop, start, unknown float64
		errorLog             bool
	}{
		{"configured", func(ev *env) { ev.reply(alice, "STOP") }, []string{alice}, 1, 0, 0, true},
		{"given a code in the last day", func(ev *env) { ev.page("g", paged); ev.reply(paged, "stop") }, []string{paged}, 1, 0, 0, true},
		{"given a code 25h ago", func(ev *env) { ev.page("g", paged); ev.advance(25 * time.Hour); ev.reply(paged, "STOP") }, nil, 0, 0, 1, false},
		{"never paged", func(ev *env) { ev.reply(unknown, "STOP") }, nil, 0, 0, 1, false},
		{"never paged, START", func(ev *env) { ev.reply(unknown, "START") }, nil, 0, 0, 1, false},
		{"configured later: its second STOP counts", func(ev *env) {
			ev.reply(unknown, "STOP")
			lookup := ev.cfg.Lookup
			ev.cfg.Lookup = func(m string) (string, bool) {
				if m == unknown {
					return "erin", true
				}
				return lookup(m)
			}
			ev.reply(unknown, "STOP")
		}, []string{unknown}, 1, 0, 1, true},
		{"no longer configured: START still opts back in", func(ev *env) {
			ev.reply(bob, "STOP")
			forget(ev, bob)
			ev.reply(bob, "START")
		}, nil, 1, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			tc.steps(ev)
			outs, err := ev.store.OptOuts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range outs {
				got = append(got, o.Number)
			}
			if !slices.Equal(got, tc.out) {
				t.Errorf("opted out %q, want %q", got, tc.out)
			}
			for _, c := range []struct {
				result string
				want   float64
			}{{ResultStop, tc.stop}, {ResultStart, tc.start}, {ResultUnknownNumber, tc.unknown}} {
				if n := ev.replies(c.result); n != c.want {
					t.Errorf("replies{%s} %v, want %v", c.result, n, c.want)
				}
			}
			if has := strings.Contains(ev.log(), "level=ERROR"); has != tc.errorLog {
				t.Errorf("error logged %t, want %t:\n%s", has, tc.errorLog, ev.log())
			}
			for _, n := range []string{unknown, paged} {
				if a := ev.answers(n); len(a) != 0 {
					t.Errorf("%s answered %q", n, a)
				}
			}
		})
	}
}

// TestStopFlood: one callback of many STOPs. From numbers the bridge does
// not page it changes nothing and logs no error; from numbers it pages
// every opt-out is recorded, and the error lines keep to their budget,
// the next one counting those left out.
func TestStopFlood(t *testing.T) {
	t.Parallel()
	numbers := func(prefix string, n int) []string {
		var pairs []string
		for i := range n {
			pairs = append(pairs, fmt.Sprintf("%s%04d", prefix, i), "STOP")
		}
		return pairs
	}
	t.Run("unknown numbers", func(t *testing.T) {
		t.Parallel()
		ev := newEnv(t)
		if rec := ev.post(token, body("MessageReply", numbers("+2784000", 1000)...)); rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if outs, _ := ev.store.OptOuts(context.Background()); len(outs) != 0 {
			t.Errorf("%d numbers opted out, want none", len(outs))
		}
		if n := ev.replies(ResultUnknownNumber); n != 1000 || ev.replies(ResultStop) != 0 {
			t.Errorf("unknown_number %v, stop %v: want 1000, 0", n, ev.replies(ResultStop))
		}
		if n := strings.Count(ev.log(), "level=ERROR") + strings.Count(ev.log(), "level=WARN") + strings.Count(ev.log(), "level=INFO"); n != 0 {
			t.Errorf("%d lines above debug", n)
		}
	})
	t.Run("known numbers", func(t *testing.T) {
		t.Parallel()
		ev := newEnv(t)
		ev.cfg.Lookup = func(string) (string, bool) { return "", true }
		if rec := ev.post(token, body("MessageReply", numbers("+2784100", 30)...)); rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if outs, _ := ev.store.OptOuts(context.Background()); len(outs) != 30 || ev.replies(ResultStop) != 30 {
			t.Errorf("%d numbers opted out, stop %v: want 30", len(outs), ev.replies(ResultStop))
		}
		if n := strings.Count(ev.log(), "level=ERROR"); n != 10 {
			t.Errorf("%d error lines for 30 STOPs at once, want the burst of 10", n)
		}
		ev.advance(2 * time.Second)
		ev.reply("+27842000000", "STOP")
		if n := strings.Count(ev.log(), "level=ERROR"); n != 11 || !strings.Contains(ev.log(), "suppressed=20") {
			t.Errorf("%d error lines, want 11, the last with suppressed=20:\n%s", n, ev.log())
		}
	})
}

// TestReplyLogFlood: one callback body full of replies that are not
// actions logs within a budget (bursts of 10, then a line a second saying
// how many were left out), and says "answered" only of answers queued.
func TestReplyLogFlood(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		pairs func() []string
		// answered is how many lines say an answer was queued; limited
		// whether some say the answer limit held one back.
		answered int
		limited  bool
	}{
		{"unknown numbers", func() []string {
			var pairs []string
			for i := range 1000 {
				pairs = append(pairs, fmt.Sprintf("+2784000%04d", i), "hello")
			}
			return pairs
		}, 0, false},
		{"junk from a paged number", func() []string {
			var pairs []string
			for range 200 {
				pairs = append(pairs, alice, "thanks, on it")
			}
			return pairs
		}, maxAnswers, true},
		{"unknown codes from a paged number", func() []string {
			var pairs []string
			for range 200 {
				pairs = append(pairs, alice, "ACK 998")
			}
			return pairs
		}, maxAnswers, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			pairs := tc.pairs()
			if rec := ev.post(token, body("MessageReply", pairs...)); rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if n := strings.Count(ev.log(), "level=INFO"); n != 10 {
				t.Errorf("%d info lines for %d replies at once, want the burst of 10", n, len(pairs)/2)
			}
			if n := strings.Count(ev.log(), "answered with help"); n != tc.answered {
				t.Errorf("%d lines say answered, want %d (the answers queued)", n, tc.answered)
			}
			if got := strings.Contains(ev.log(), "not answered: the answer limit for this number is reached"); got != tc.limited {
				t.Errorf("a line says the answer limit held one back: %v, want %v", got, tc.limited)
			}
			ev.advance(2 * time.Second)
			ev.reply(pairs[0], pairs[1])
			want := fmt.Sprintf("suppressed=%d", len(pairs)/2-10)
			if n := strings.Count(ev.log(), "level=INFO"); n != 11 || !strings.Contains(ev.log(), want) {
				t.Errorf("%d info lines, want 11, the last with %s", n, want)
			}
			if strings.Contains(ev.log(), alice) {
				t.Error("a number in full in the log")
			}
		})
	}
}
