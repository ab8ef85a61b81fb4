package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// The contract's parts for two-way SMS: reply codes, handset receipts,
// acknowledgements and their silences, opt-outs, claims and counted
// events.

const (
	twA = "+27830000101"
	twB = "+27830000102"
	twC = "+27830000103"
)

// page is a firing notification of group with one text asking for a
// reply code, to numbers, each named by people (or "").
func page(group, text string, numbers []string, people ...string) outbox.Notification {
	return outbox.Notification{Source: "alertmanager", GroupKey: group, Status: "firing", AlertName: text,
		AckLabels: map[string]string{"alertname": text, "group": group},
		Messages: []outbox.Message{{Receiver: "ops", Text: text + " Reply ACK " + outbox.ReplyCodePlaceholder, Segments: 1,
			Numbers: numbers, People: people, ReplyCode: true}}}
}

// acceptDue leases every due delivery and records it accepted.
func acceptDue(t testing.TB, s outbox.Store, now time.Time) []outbox.Delivery {
	t.Helper()
	var out []outbox.Delivery
	for _, b := range lease(t, s, now, 100, 100) {
		for _, d := range b.Deliveries {
			complete(t, s, outbox.Accepted(d, "primary", fmt.Sprintf("api-%d", d.ID)))
			out = append(out, d)
		}
	}
	return out
}

func testReplyCodes(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()

	first := enqueue(t, s, page("g1", "DiskFull", []string{twA, twB}, "alice", ""))
	if first.ReplyCode != "1" {
		t.Fatalf("first code %q, want 1", first.ReplyCode)
	}
	rs := records(t, s, outbox.Filter{NotificationID: first.ID})
	if len(rs) != 2 {
		t.Fatalf("%d deliveries, want 2", len(rs))
	}
	for _, r := range rs {
		if r.Text != "DiskFull Reply ACK 1" || r.ReplyCode != "1" {
			t.Errorf("delivery to %s: text %q, code %q; want the code written in", r.Number, r.Text, r.ReplyCode)
		}
	}
	// One text for both numbers: one request.
	if bs := lease(t, s, e.clock.Now(), 10, 10); len(bs) != 1 || len(bs[0].Deliveries) != 2 {
		t.Errorf("leased %d batches, want one of 2 numbers", len(bs))
	}

	// B holds 1: a page to B and C gets 2; C alone then gets 1.
	second := enqueue(t, s, page("g2", "NodeDown", []string{twB, twC}))
	third := enqueue(t, s, page("g3", "Backup", []string{twC}))
	if second.ReplyCode != "2" || third.ReplyCode != "1" {
		t.Errorf("codes %q and %q, want 2 (B holds 1) and 1 (C held only 2)", second.ReplyCode, third.ReplyCode)
	}

	for _, tc := range []struct {
		number string
		code   int
		want   int64 // notification; 0 for not found
	}{
		{twA, 1, first.ID},
		{twB, 1, first.ID},
		{twB, 2, second.ID},
		{twC, 2, second.ID},
		{twC, 1, third.ID},
		{twA, 2, 0},
		{"+27830000999", 1, 0},
	} {
		got, err := s.ReplyCode(ctx, tc.number, tc.code, e.clock.Now())
		switch {
		case tc.want == 0 && !errors.Is(err, outbox.ErrNotFound):
			t.Errorf("code %d of %s: %+v, %v; want ErrNotFound", tc.code, tc.number, got, err)
		case tc.want != 0 && (err != nil || got.NotificationID != tc.want):
			t.Errorf("code %d of %s: notification %d, %v; want %d", tc.code, tc.number, got.NotificationID, err, tc.want)
		}
	}
	got, err := s.ReplyCode(ctx, twA, 1, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := outbox.ReplyTarget{NotificationID: first.ID, GroupKey: "g1", Source: "alertmanager", Status: "firing", AlertName: "DiskFull",
		Code: 1, IssuedAt: e.clock.Now(), Person: "alice", AckLabels: map[string]string{"alertname": "DiskFull", "group": "g1"},
		Numbers: []string{twA, twB}, GroupOpen: true}
	slices.Sort(got.Numbers)
	if !got.IssuedAt.Equal(want.IssuedAt) || !maps.Equal(got.AckLabels, want.AckLabels) || !slices.Equal(got.Numbers, want.Numbers) {
		t.Errorf("target %+v, want %+v", got, want)
	}
	got.IssuedAt, got.AckLabels, got.Numbers = want.IssuedAt, want.AckLabels, want.Numbers
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("target %+v, want %+v", got, want)
	}

	// A resolution closes the group; its text gets no code.
	res := page("g1", "DiskFull", []string{twA})
	res.Status = "resolved"
	resolved := enqueue(t, s, res)
	if resolved.ReplyCode != "" {
		t.Errorf("a resolution got code %q", resolved.ReplyCode)
	}
	if r := deliveryOf(t, s, resolved.ID); r.Text != "DiskFull Reply ACK " || r.ReplyCode != "" {
		t.Errorf("resolved text %q, code %q: want the placeholder removed", r.Text, r.ReplyCode)
	}
	e.clock.Advance(time.Minute)
	enqueue(t, s, page("g4", "Later", []string{twB}))
	targets, err := s.ReplyTargets(ctx, twB, e.clock.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, tg := range targets {
		groups = append(groups, fmt.Sprintf("%s:%d:%t", tg.GroupKey, tg.Code, tg.GroupOpen))
	}
	if w := []string{"g4:3:true", "g2:2:true", "g1:1:false"}; !slices.Equal(groups, w) {
		t.Errorf("targets of B %v, want %v (newest first, g1 resolved)", groups, w)
	}
	if targets, err := s.ReplyTargets(ctx, twB, e.clock.Now()); err != nil || len(targets) != 1 {
		t.Errorf("targets since now: %d, %v; want g4 only", len(targets), err)
	}

	// A code lives a day, and is free again after it.
	e.clock.Advance(outbox.ReplyCodeLifetime)
	if _, err := s.ReplyCode(ctx, twA, 1, e.clock.Now()); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("a code a day old still resolves: %v", err)
	}
	if again := enqueue(t, s, page("g5", "Again", []string{twA})); again.ReplyCode != "1" {
		t.Errorf("code a day later %q, want 1 again", again.ReplyCode)
	}
	// No code asked for: the text stays as given.
	plain := page("g6", "Plain", []string{twA})
	plain.Messages[0].ReplyCode = false
	if p := enqueue(t, s, plain); p.ReplyCode != "" || deliveryOf(t, s, p.ID).Text != plain.Messages[0].Text {
		t.Errorf("a message without ReplyCode got code %q", p.ReplyCode)
	}
}

// testReplyCodesExhausted: when every code was issued to the number
// within the lifetime, the text says ALL.
func testReplyCodesExhausted(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	var wg sync.WaitGroup
	errs := make(chan error, outbox.MaxReplyCode)
	codes := make(chan string, outbox.MaxReplyCode)
	for i := range outbox.MaxReplyCode {
		wg.Go(func() {
			res, err := s.Enqueue(context.Background(), page(fmt.Sprintf("g%d", i), "Storm", []string{twA}))
			if err != nil {
				errs <- err
				return
			}
			codes <- res.ReplyCode
		})
	}
	wg.Wait()
	close(errs)
	close(codes)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for c := range codes {
		if seen[c] {
			t.Fatalf("code %s issued twice to one number", c)
		}
		seen[c] = true
	}
	if len(seen) != outbox.MaxReplyCode {
		t.Fatalf("%d distinct codes, want %d", len(seen), outbox.MaxReplyCode)
	}
	last := enqueue(t, s, page("g-last", "Storm", []string{twA, twB}))
	if last.ReplyCode != outbox.ReplyCodeAll {
		t.Errorf("code after %d: %q, want %q", outbox.MaxReplyCode, last.ReplyCode, outbox.ReplyCodeAll)
	}
	if r := records(t, s, outbox.Filter{NotificationID: last.ID}); len(r) != 2 || !strings.HasSuffix(r[0].Text, "ACK ALL") {
		t.Errorf("text %q", r[0].Text)
	}
}

// testReplyCodesConcurrent: pages to one number written at once by every
// store open on the backing never share a code.
func testReplyCodesConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		s := stores[i%len(stores)]
		wg.Go(func() {
			res, err := s.Enqueue(context.Background(), page(fmt.Sprintf("g%d", i), "X", []string{twA, twB}))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[res.ReplyCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for c, n := range seen {
		if n != 1 {
			t.Errorf("code %s given %d times", c, n)
		}
	}
	if len(seen) != 40 {
		t.Errorf("%d codes for 40 pages", len(seen))
	}
}

func testReceipts(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	window := time.Hour
	receipt := func(number, status, word string) (outbox.ReceiptMatch, error) {
		return s.RecordReceipt(ctx, e.clock.Now(), outbox.Receipt{Number: number, Status: status, Word: word, Window: window})
	}

	// Pending (not yet accepted) deliveries get no receipt.
	older := enqueue(t, s, page("g1", "Older", []string{twA}))
	if _, err := receipt(twA, outbox.ReceiptDelivered, "Delivered"); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("receipt for a pending delivery: %v, want ErrNotFound", err)
	}
	acceptDue(t, s, e.clock.Now())
	e.clock.Advance(time.Minute)
	newer := enqueue(t, s, page("g2", "Newer", []string{twA}))
	acceptDue(t, s, e.clock.Now())
	olderID, newerID := deliveryOf(t, s, older.ID).ID, deliveryOf(t, s, newer.ID).ID
	updated := deliveryOf(t, s, newer.ID).UpdatedAt

	// Information keeps the delivery outstanding.
	m, err := receipt(twA, "", "Enroute")
	if err != nil || m.Delivery.ID != newerID || m.Delivery.Receipt != "" || m.Delivery.ReceiptWord != "Enroute" {
		t.Fatalf("information: %+v, %v; want the newer delivery, word Enroute, no final receipt", m, err)
	}
	e.clock.Advance(time.Second)
	m, err = receipt(twA, outbox.ReceiptFailed, "Undeliverable")
	if err != nil || m.Delivery.ID != newerID || m.Delivery.Receipt != outbox.ReceiptFailed || m.Delivery.ReceiptWord != "Undeliverable" {
		t.Fatalf("failure: %+v, %v; want the newer delivery failed", m, err)
	}
	if m.Delivery.State != outbox.StateAccepted || !m.Delivery.ReceiptAt.Equal(e.clock.Now()) || !m.Delivery.UpdatedAt.Equal(updated) {
		t.Errorf("after the receipt: state %s, receipt at %v, updated %v; want accepted, now, unchanged", m.Delivery.State, m.Delivery.ReceiptAt, m.Delivery.UpdatedAt)
	}
	if m.Template != "Newer Reply ACK "+outbox.ReplyCodePlaceholder || !maps.Equal(m.AckLabels, map[string]string{"alertname": "Newer", "group": "g2"}) {
		t.Errorf("template %q, labels %v", m.Template, m.AckLabels)
	}
	// The next receipt goes to the older one, with the provider's time.
	at := e.clock.Now().Add(-30 * time.Second)
	m, err = s.RecordReceipt(ctx, e.clock.Now(), outbox.Receipt{Number: twA, Status: outbox.ReceiptDelivered, Word: "Delivered", At: at, Window: window})
	if err != nil || m.Delivery.ID != olderID || !m.Delivery.ReceiptAt.Equal(at) {
		t.Fatalf("second receipt: %+v, %v; want the older delivery at %v", m, err, at)
	}
	if _, err := receipt(twA, outbox.ReceiptDelivered, "Delivered"); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("a third receipt: %v, want ErrNotFound (none outstanding)", err)
	}
	if r := record(t, s, olderID); r.Receipt != outbox.ReceiptDelivered || r.ReceiptWord != "Delivered" {
		t.Errorf("stored receipt %q %q", r.Receipt, r.ReceiptWord)
	}

	// A delivery still leased: the provider can report before the sender
	// recorded its answer.
	inFlight := enqueue(t, s, page("g4", "InFlight", []string{twC}))
	lease(t, s, e.clock.Now(), 10, 10)
	if m, err := receipt(twC, outbox.ReceiptDelivered, "Delivered"); err != nil || m.Delivery.ID != deliveryOf(t, s, inFlight.ID).ID ||
		m.Delivery.State != outbox.StateSending {
		t.Errorf("receipt for a delivery in flight: %+v, %v", m, err)
	}

	// Outside the window.
	enqueue(t, s, page("g3", "Old", []string{twB}))
	acceptDue(t, s, e.clock.Now())
	e.clock.Advance(window + time.Second)
	if _, err := receipt(twB, outbox.ReceiptDelivered, "Delivered"); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("receipt past the window: %v, want ErrNotFound", err)
	}
	if _, err := receipt(twB, "sent", "Sent"); !errors.Is(err, outbox.ErrInvalid) {
		t.Errorf("status other than delivered, failed or empty: %v, want ErrInvalid", err)
	}

	// A failover names the failed delivery, which names the failover's
	// notification.
	fo := page("g2", "Newer", []string{twC})
	fo.Messages[0].Receiver, fo.Messages[0].FailoverOf = "backup", newerID
	foRes := enqueue(t, s, fo)
	if r := deliveryOf(t, s, foRes.ID); r.FailoverOf != newerID || r.FailedOverTo != 0 {
		t.Errorf("failover record: of %d, to %d; want of %d", r.FailoverOf, r.FailedOverTo, newerID)
	}
	if r := record(t, s, newerID); r.FailedOverTo != foRes.ID {
		t.Errorf("failed delivery: failed over to %d, want notification %d", r.FailedOverTo, foRes.ID)
	}
}

func testAcks(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	t0 := e.clock.Now()
	ack := func(group string, at time.Time, silence outbox.SilenceState) outbox.Ack {
		return outbox.Ack{GroupKey: group, NotificationID: 7, Source: "alertmanager", AlertName: "DiskFull", Number: twA, Person: "alice",
			Code: 12, At: at, Until: at.Add(time.Hour), Labels: map[string]string{"alertname": "DiskFull"}, Silence: silence}
	}
	a, created, err := s.Acknowledge(ctx, ack("g1", t0, outbox.SilencePending))
	if err != nil || !created || a.ID == 0 || !a.NextAttempt.Equal(t0) || a.Silence != outbox.SilencePending || a.Person != "alice" {
		t.Fatalf("acknowledge: %+v, %t, %v", a, created, err)
	}
	again, created, err := s.Acknowledge(ctx, ack("g1", t0.Add(10*time.Minute), outbox.SilencePending))
	if err != nil || created || again.ID != a.ID {
		t.Errorf("while in force: %+v, %t, %v; want the first, not created", again, created, err)
	}
	if got, ok, err := s.Acknowledged(ctx, "g1", t0.Add(-time.Minute)); err != nil || !ok || got.ID != a.ID || !maps.Equal(got.Labels, a.Labels) {
		t.Errorf("acknowledged since before: %+v, %t, %v", got, ok, err)
	}
	if _, ok, err := s.Acknowledged(ctx, "g1", t0.Add(time.Minute)); err != nil || ok {
		t.Errorf("acknowledged since after it: %t, %v; want none", ok, err)
	}
	if _, ok, _ := s.Acknowledged(ctx, "g2", t0.Add(-time.Hour)); ok {
		t.Error("another group is acknowledged")
	}
	for _, bad := range []outbox.Ack{
		{Silence: outbox.SilenceNone, At: t0, Until: t0.Add(time.Hour)},
		{GroupKey: "g", Silence: outbox.SilenceCreated, At: t0, Until: t0.Add(time.Hour)},
		{GroupKey: "g", Silence: outbox.SilenceNone, At: t0, Until: t0},
	} {
		if _, _, err := s.Acknowledge(ctx, bad); !errors.Is(err, outbox.ErrInvalid) {
			t.Errorf("acknowledge %+v: %v, want ErrInvalid", bad, err)
		}
	}
	none, _, err := s.Acknowledge(ctx, ack("g-none", t0, outbox.SilenceNone))
	if err != nil || none.Silence != outbox.SilenceNone {
		t.Fatalf("without a silence: %+v, %v", none, err)
	}

	// The silence: leased, retried, created.
	leased, next, err := s.LeaseSilences(ctx, t0, 10, time.Minute)
	if err != nil || len(leased) != 1 || leased[0].ID != a.ID || leased[0].Lease == "" || !next.IsZero() {
		t.Fatalf("lease: %+v, next %v, %v; want the pending one, nothing else", leased, next, err)
	}
	if more, next, err := s.LeaseSilences(ctx, t0, 10, time.Minute); err != nil || len(more) != 0 || !next.Equal(t0.Add(time.Minute)) {
		t.Errorf("lease again: %+v, next %v, %v; want nothing, next when the lease lapses", more, next, err)
	}
	if err := s.CompleteSilence(ctx, a.ID, "not-the-lease", outbox.SilenceOutcome{State: outbox.SilenceCreated, At: t0}); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("complete with another token: %v, want ErrNotFound", err)
	}
	retry := t0.Add(10 * time.Second)
	if err := s.CompleteSilence(ctx, a.ID, leased[0].Lease, outbox.SilenceOutcome{State: outbox.SilencePending, Error: "connection refused",
		NextAttempt: retry, At: t0}); err != nil {
		t.Fatal(err)
	}
	if more, next, err := s.LeaseSilences(ctx, t0.Add(5*time.Second), 10, time.Minute); err != nil || len(more) != 0 || !next.Equal(retry) {
		t.Errorf("before the retry: %+v, next %v, %v; want next at %v", more, next, err, retry)
	}
	leased, _, err = s.LeaseSilences(ctx, retry, 10, time.Minute)
	if err != nil || len(leased) != 1 || leased[0].Attempts != 1 || leased[0].Error != "connection refused" {
		t.Fatalf("retry lease: %+v, %v", leased, err)
	}
	// The lease lapses; someone else takes it; the first holder's result
	// is refused.
	stale := leased[0].Lease
	taken, _, err := s.LeaseSilences(ctx, retry.Add(time.Minute), 10, time.Minute)
	if err != nil || len(taken) != 1 || taken[0].Lease == stale {
		t.Fatalf("after the lease lapsed: %+v, %v", taken, err)
	}
	if err := s.CompleteSilence(ctx, a.ID, stale, outbox.SilenceOutcome{State: outbox.SilenceCreated, SilenceID: "x", At: retry}); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("the lapsed holder's result: %v, want ErrNotFound", err)
	}
	if err := s.CompleteSilence(ctx, a.ID, taken[0].Lease, outbox.SilenceOutcome{State: outbox.SilenceCreated, SilenceID: "sil-1",
		At: retry.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if more, next, err := s.LeaseSilences(ctx, retry.Add(time.Hour), 10, time.Minute); err != nil || len(more) != 0 || !next.IsZero() {
		t.Errorf("after creation: %+v, next %v, %v; want nothing", more, next, err)
	}
	all, err := s.Acks(ctx, t0.Add(-time.Hour), 0)
	if err != nil || len(all) != 2 {
		t.Fatalf("acks: %+v, %v", all, err)
	}
	got := all[len(all)-1]
	if all[0].ID != none.ID || got.ID != a.ID || got.Silence != outbox.SilenceCreated || got.SilenceID != "sil-1" || got.Attempts != 2 || got.Lease != "" {
		t.Errorf("acks %+v: want the newest first, the silence created as sil-1 after 2 attempts", all)
	}

	// Once it ended, the group can be acknowledged anew.
	later, created, err := s.Acknowledge(ctx, ack("g1", t0.Add(time.Hour), outbox.SilencePending))
	if err != nil || !created || later.ID == a.ID {
		t.Errorf("after the first ended: %+v, %t, %v; want a new one", later, created, err)
	}
	if err := s.CompleteSilence(ctx, none.ID, "x", outbox.SilenceOutcome{State: "maybe", At: t0}); !errors.Is(err, outbox.ErrInvalid) {
		t.Errorf("an unknown state: %v, want ErrInvalid", err)
	}
}

// testAcksConcurrent: of many replies acknowledging one group at once,
// through every store on the backing, exactly one is recorded.
func testAcksConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	t0 := e.clock.Now()
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		s := stores[i%len(stores)]
		wg.Go(func() {
			_, ok, err := s.Acknowledge(context.Background(), outbox.Ack{GroupKey: "g", Number: fmt.Sprintf("+2783000%04d", i),
				At: t0, Until: t0.Add(time.Hour), Silence: outbox.SilencePending})
			if err != nil {
				t.Error(err)
			}
			if ok {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Errorf("%d acknowledgements recorded, want 1", created.Load())
	}
	// And each pending silence is leased once.
	var leased atomic.Int32
	for i := range 10 {
		s := stores[i%len(stores)]
		wg.Go(func() {
			as, _, err := s.LeaseSilences(context.Background(), t0, 10, time.Minute)
			if err != nil {
				t.Error(err)
			}
			leased.Add(int32(len(as)))
		})
	}
	wg.Wait()
	if leased.Load() != 1 {
		t.Errorf("the silence was leased %d times, want once", leased.Load())
	}
}

func testOptOuts(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	sent := enqueue(t, s, page("g0", "Sent", []string{twA}))
	acceptDue(t, s, e.clock.Now())
	inFlight := enqueue(t, s, page("g1", "InFlight", []string{twA}))
	bs, err := s.Lease(ctx, e.clock.Now(), 1, 1, time.Hour)
	if err != nil || len(bs) != 1 {
		t.Fatalf("lease: %v %v", bs, err)
	}
	waiting := enqueue(t, s, page("g2", "Waiting", []string{twA, twB}))
	e.clock.Advance(time.Second)

	changed, failed, err := s.SetOptOut(ctx, twA, true, e.clock.Now())
	if err != nil || !changed || failed != 1 {
		t.Fatalf("opt out: changed %t, failed %d, %v; want the one pending delivery failed", changed, failed, err)
	}
	for _, tc := range []struct {
		what  string
		id    int64
		state outbox.State
		code  string
	}{
		{"accepted before", deliveryOf(t, s, sent.ID).ID, outbox.StateAccepted, ""},
		{"in flight", deliveryOf(t, s, inFlight.ID).ID, outbox.StateSending, ""},
	} {
		if r := record(t, s, tc.id); r.State != tc.state || r.ErrorCode != tc.code {
			t.Errorf("%s: %s %q, want %s %q", tc.what, r.State, r.ErrorCode, tc.state, tc.code)
		}
	}
	for _, r := range records(t, s, outbox.Filter{NotificationID: waiting.ID}) {
		want, code := outbox.StatePending, ""
		if r.Number == twA {
			want, code = outbox.StateFailed, outbox.CodeOptedOut
		}
		if r.State != want || r.ErrorCode != code || (code != "" && !r.UpdatedAt.Equal(e.clock.Now())) {
			t.Errorf("waiting to %s: %s %q, want %s %q", r.Number, r.State, r.ErrorCode, want, code)
		}
	}
	if changed, failed, err := s.SetOptOut(ctx, twA, true, e.clock.Now()); err != nil || changed || failed != 0 {
		t.Errorf("opt out again: %t %d %v; want nothing changed", changed, failed, err)
	}
	if _, _, err := s.SetOptOut(ctx, twC, true, e.clock.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	outs, err := s.OptOuts(ctx)
	if err != nil || len(outs) != 2 || outs[0].Number != twA || !outs[0].At.Equal(e.clock.Now()) || outs[1].Number != twC {
		t.Errorf("opt-outs %+v, %v; want A then C", outs, err)
	}
	if got, err := s.OptedOut(ctx, []string{twB, twC, twA}); err != nil || !slices.Equal(got, []string{twC, twA}) {
		t.Errorf("opted out of B, C, A: %v, %v; want C, A", got, err)
	}
	if got, err := s.OptedOut(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("opted out of none: %v, %v", got, err)
	}
	failedID := 0
	for _, r := range records(t, s, outbox.Filter{NotificationID: waiting.ID}) {
		if r.Number == twA {
			failedID = int(r.ID)
		}
	}
	if err := s.Retry(ctx, int64(failedID)); !errors.Is(err, outbox.ErrOptedOut) {
		t.Errorf("retry to an opted-out number: %v, want ErrOptedOut", err)
	}
	if changed, _, err := s.SetOptOut(ctx, twA, false, e.clock.Now()); err != nil || !changed {
		t.Errorf("opt in: %t %v", changed, err)
	}
	if changed, _, err := s.SetOptOut(ctx, twA, false, e.clock.Now()); err != nil || changed {
		t.Errorf("opt in again: %t %v; want unchanged", changed, err)
	}
	if err := s.Retry(ctx, int64(failedID)); err != nil {
		t.Errorf("retry after opting in: %v", err)
	}
	if _, _, err := s.SetOptOut(ctx, "", true, e.clock.Now()); !errors.Is(err, outbox.ErrInvalid) {
		t.Errorf("opt out of no number: %v, want ErrInvalid", err)
	}
}

func testClaimAllow(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	s := stores[0]
	ctx := context.Background()
	t0 := e.clock.Now()
	steps := []struct {
		what string
		call func() (bool, error)
		want bool
	}{
		{"not claimed yet", func() (bool, error) { return s.Claimed(ctx, "k", t0) }, false},
		{"claim", func() (bool, error) { return s.Claim(ctx, "k", t0, time.Hour) }, true},
		{"claimed", func() (bool, error) { return s.Claimed(ctx, "k", t0.Add(time.Minute)) }, true},
		{"claimed, seen from another store", func() (bool, error) {
			return stores[len(stores)-1].Claimed(ctx, "k", t0.Add(time.Minute))
		}, true},
		{"expired is not claimed", func() (bool, error) { return s.Claimed(ctx, "k", t0.Add(time.Hour)) }, false},
		{"claim again", func() (bool, error) { return s.Claim(ctx, "k", t0.Add(time.Minute), time.Hour) }, false},
		{"another key", func() (bool, error) { return s.Claim(ctx, "k2", t0, time.Hour) }, true},
		{"after expiry", func() (bool, error) { return s.Claim(ctx, "k", t0.Add(time.Hour), time.Hour) }, true},
		{"unclaimed", func() (bool, error) {
			if err := s.Unclaim(ctx, "k2"); err != nil {
				return false, err
			}
			return s.Claim(ctx, "k2", t0, time.Hour)
		}, true},
		{"given back is not claimed", func() (bool, error) {
			if err := s.Unclaim(ctx, "k2"); err != nil {
				return false, err
			}
			return s.Claimed(ctx, "k2", t0)
		}, false},
	}
	for _, st := range steps {
		if got, err := st.call(); err != nil || got != st.want {
			t.Errorf("%s: %t, %v; want %t", st.what, got, err, st.want)
		}
	}
	for i := range 6 {
		got, err := s.Allow(ctx, "n", t0.Add(time.Duration(i)*time.Second), 5, time.Hour)
		if err != nil || got != (i < 5) {
			t.Errorf("event %d: %t, %v; want %t", i+1, got, err, i < 5)
		}
	}
	if got, _ := s.Allow(ctx, "other", t0, 5, time.Hour); !got {
		t.Error("another key is limited too")
	}
	if got, _ := s.Allow(ctx, "n", t0.Add(time.Hour), 5, time.Hour); !got {
		t.Error("the window's oldest event has not aged out")
	}
	if _, err := s.Claim(ctx, "", t0, time.Hour); !errors.Is(err, outbox.ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}

	// At once, through every store: one claim wins, five events count.
	var won, allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		st := stores[i%len(stores)]
		wg.Go(func() {
			if ok, err := st.Claim(ctx, "race", t0, time.Hour); err != nil {
				t.Error(err)
			} else if ok {
				won.Add(1)
			}
			if ok, err := st.Allow(ctx, "race", t0, 5, time.Hour); err != nil {
				t.Error(err)
			} else if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || allowed.Load() != 5 {
		t.Errorf("%d claims won and %d events allowed, want 1 and 5", won.Load(), allowed.Load())
	}
}

// testPruneTwoWay: Prune forgets finished acknowledgements older than
// the retention, never a pending silence.
func testPruneTwoWay(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	t0 := e.clock.Now()
	for _, g := range []struct {
		group   string
		silence outbox.SilenceState
	}{{"done", outbox.SilenceNone}, {"pending", outbox.SilencePending}} {
		if _, _, err := s.Acknowledge(ctx, outbox.Ack{GroupKey: g.group, At: t0, Until: t0.Add(time.Hour), Silence: g.silence}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(48 * time.Hour)
	if _, err := s.Prune(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	as, err := s.Acks(ctx, time.Time{}, 0)
	if err != nil || len(as) != 1 || as[0].GroupKey != "pending" {
		t.Errorf("after prune: %+v, %v; want the pending one only", as, err)
	}
}
