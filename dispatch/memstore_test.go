package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// memStore is an in-memory Store with the outbox's lease semantics, so the
// dispatcher's tests run on a fake clock (testing/synctest) without disk.
// The outbox's own conformance suite pins the real drivers to the same
// behaviour.
type memStore struct {
	mu    sync.Mutex
	now   func() time.Time
	rows  []*memRow
	state map[string][]byte
	wake  chan struct{}
	// fail, when set, makes the named method fail.
	fail func(method string) error
	// budget is the segments admitted per day.
	budget map[string]int
	// optedOut are the numbers that replied STOP.
	optedOut map[string]bool
}

type memRow struct {
	outbox.Delivery
	text     string
	segments int
	state    outbox.State
	due      time.Time
	until    time.Time
	account  string
	apiID    string
	code     string
	err      string
	status   string

	unthrottled, critical bool
	admitted              time.Time
	charged               int
	day                   string
	bundledInto           int64
}

func newMemStore() *memStore {
	return &memStore{now: time.Now, state: map[string][]byte{}, wake: make(chan struct{}, 1), budget: map[string]int{}}
}

// mark sets the marks of rows ids.
func (m *memStore) mark(ids []int64, unthrottled, critical bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.rows[id-1].unthrottled, m.rows[id-1].critical = unthrottled, critical
	}
}

func (m *memStore) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *memStore) check(method string) error {
	if m.fail != nil {
		return m.fail(method)
	}
	return nil
}

// add queues one text for numbers, due now, and returns the rows' ids.
func (m *memStore) add(receiver, text string, segments int, numbers ...string) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	nid := int64(len(m.rows) + 1)
	var ids []int64
	for _, n := range numbers {
		id := int64(len(m.rows) + 1)
		m.rows = append(m.rows, &memRow{
			Delivery: outbox.Delivery{ID: id, NotificationID: nid, MessageID: nid, Receiver: receiver, Number: n, QueuedAt: now},
			text:     text, segments: segments, state: outbox.StatePending, due: now, status: "firing",
		})
		ids = append(ids, id)
	}
	m.signal()
	return ids
}

func (m *memStore) rowsIn(state outbox.State) []memRow {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []memRow
	for _, r := range m.rows {
		if state == "" || r.state == state {
			out = append(out, *r)
		}
	}
	return out
}

func (m *memStore) Wake() <-chan struct{} { return m.wake }

func (m *memStore) Lease(_ context.Context, now time.Time, maxBatches, maxNumbers int, leaseFor time.Duration) ([]outbox.Batch, error) {
	if err := m.check("Lease"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var due []*memRow
	for _, r := range m.rows {
		if (r.state == outbox.StatePending && !r.due.After(now)) || (r.state == outbox.StateSending && !r.until.After(now)) {
			due = append(due, r)
		}
	}
	slices.SortStableFunc(due, func(a, b *memRow) int { return a.due.Compare(b.due) })
	var batches []outbox.Batch
	byText := map[string]int{}
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	lease := hex.EncodeToString(token)
	for _, r := range due {
		i, ok := byText[r.text]
		if !ok {
			if len(batches) == maxBatches {
				break
			}
			i = len(batches)
			byText[r.text] = i
			batches = append(batches, outbox.Batch{Text: r.text, Segments: r.segments, LeaseUntil: now.Add(leaseFor)})
		}
		b := &batches[i]
		if len(b.Deliveries) == maxNumbers || slices.Contains(b.Numbers(), r.Number) {
			continue
		}
		r.state, r.until, r.Lease = outbox.StateSending, now.Add(leaseFor), lease
		b.Deliveries = append(b.Deliveries, r.Delivery)
	}
	return batches, nil
}

func (m *memStore) Complete(_ context.Context, outs []outbox.Outcome) error {
	if err := m.check("Complete"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	signal := false
	for _, o := range outs {
		r := m.rows[o.Delivery.ID-1]
		if r.state != outbox.StateSending || r.Lease != o.Delivery.Lease {
			continue
		}
		r.state, r.Lease = o.State, ""
		if o.State != outbox.StateAccepted {
			m.budget[r.day] -= r.charged
			r.admitted, r.charged, r.day = time.Time{}, 0, ""
		}
		if o.Attempted {
			r.Attempts++
		}
		if o.Account != "" {
			r.account = o.Account
		}
		switch o.State {
		case outbox.StateAccepted:
			r.apiID, r.code, r.err, r.admitted = o.APIMessageID, "", "", now
		case outbox.StateFailed:
			r.code, r.err = o.ErrorCode, o.Error
		case outbox.StatePending:
			r.due = o.NextAttempt
			if r.due.Before(now) {
				r.due = now
			}
			signal = signal || !r.due.After(now)
			if o.Error != "" || o.ErrorCode != "" {
				r.code, r.err = o.ErrorCode, o.Error
			}
		default:
			return errors.New("memstore: unknown outcome state " + string(o.State))
		}
	}
	if signal {
		m.signal()
	}
	return nil
}

func (m *memStore) FailExpired(_ context.Context, now time.Time, maxAge time.Duration) (int, error) {
	if err := m.check("FailExpired"); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.rows {
		waiting := r.state == outbox.StatePending || (r.state == outbox.StateSending && !r.until.After(now))
		if waiting && !r.QueuedAt.Add(maxAge).After(now) {
			r.state, r.code, r.Lease = outbox.StateFailed, "max_age", ""
			n++
		}
	}
	return n, nil
}

func (m *memStore) Schedule(_ context.Context, now time.Time) (outbox.Schedule, error) {
	if err := m.check("Schedule"); err != nil {
		return outbox.Schedule{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var s outbox.Schedule
	earliest := func(dst *time.Time, t time.Time) {
		if dst.IsZero() || t.Before(*dst) {
			*dst = t
		}
	}
	for _, r := range m.rows {
		switch r.state {
		case outbox.StatePending:
			earliest(&s.NextDue, r.due)
			earliest(&s.OldestQueued, r.QueuedAt)
		case outbox.StateSending:
			earliest(&s.NextDue, r.until)
			if !r.until.After(now) {
				earliest(&s.OldestQueued, r.QueuedAt)
			}
		case outbox.StateHeld:
			if !m.digestWaiting(r.Number, 0) {
				earliest(&s.NextHeld, r.due)
			}
		}
	}
	return s, nil
}

// digestWaiting reports a digest to number pending or sending, other than
// row id. m.mu is held.
func (m *memStore) digestWaiting(number string, id int64) bool {
	for _, r := range m.rows {
		if r.Number == number && r.Digest && r.ID != id && (r.state == outbox.StatePending || r.state == outbox.StateSending) {
			return true
		}
	}
	return false
}

// Admit has the outbox's semantics (pinned for the real drivers by the
// conformance suite), simply.
func (m *memStore) Admit(_ context.Context, now time.Time, ds []outbox.Delivery, lim outbox.Limits) (outbox.Admission, error) {
	var adm outbox.Admission
	if err := m.check("Admit"); err != nil {
		return adm, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	used := m.budget[lim.Budget.Day]
	for _, d := range ds {
		r := m.rows[d.ID-1]
		if r.state != outbox.StateSending || r.Lease != d.Lease {
			continue
		}
		if len(lim.Throttle) > 0 && !r.unthrottled {
			until, full := m.window(r.Number, now, lim.Throttle)
			if r.Digest && full {
				r.state, r.due, r.Lease = outbox.StatePending, until, ""
				adm.Deferred = append(adm.Deferred, outbox.SetAside{Delivery: d, Until: until})
				continue
			}
			if !r.Digest {
				waiting := m.digestWaiting(r.Number, r.ID)
				for _, o := range m.rows {
					waiting = waiting || (o.Number == r.Number && o.state == outbox.StateHeld)
				}
				if full || waiting {
					if !full {
						until = now
					}
					r.state, r.due, r.Lease = outbox.StateHeld, until, ""
					adm.Held = append(adm.Held, outbox.SetAside{Delivery: d, Until: until})
					continue
				}
			}
		}
		if lim.Budget.Limit > 0 {
			cost := max(r.segments, 1)
			if !r.critical && used+cost > lim.Budget.Limit {
				r.state, r.code, r.err, r.Lease = outbox.StateFailed, outbox.ReasonBudgetExhausted, "budget spent", ""
				adm.Failed = append(adm.Failed, outbox.SetAside{Delivery: d})
				continue
			}
			used += cost
			r.charged, r.day = cost, lim.Budget.Day
		}
		r.admitted = now
		adm.Send = append(adm.Send, d)
	}
	if lim.Budget.Limit > 0 {
		m.budget[lim.Budget.Day] = used
		adm.BudgetUsed = used
	}
	return adm, nil
}

// window reports whether number is full in some bucket at now, and until
// when. m.mu is held.
func (m *memStore) window(number string, now time.Time, buckets []outbox.Bucket) (time.Time, bool) {
	var times []time.Time
	for _, r := range m.rows {
		if r.Number == number && !r.admitted.IsZero() && (r.state == outbox.StateSending || r.state == outbox.StateAccepted) {
			times = append(times, r.admitted)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return b.Compare(a) })
	var until time.Time
	full := false
	for _, b := range buckets {
		if len(times) >= b.Count && times[b.Count-1].After(now.Add(-b.Per)) {
			full = true
			if end := times[b.Count-1].Add(b.Per); end.After(until) {
				until = end
			}
		}
	}
	return until, full
}

// Release has the outbox's semantics, simply.
func (m *memStore) Release(_ context.Context, now time.Time, digest outbox.DigestFunc) ([]outbox.ReleasedHold, error) {
	if err := m.check("Release"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	held := map[string][]*memRow{}
	var order []string
	for _, r := range m.rows {
		if r.state != outbox.StateHeld || m.digestWaiting(r.Number, 0) {
			continue
		}
		if held[r.Number] == nil {
			order = append(order, r.Number)
		}
		held[r.Number] = append(held[r.Number], r)
	}
	var out []outbox.ReleasedHold
	for _, num := range order {
		rows := held[num]
		due := false
		for _, r := range rows {
			due = due || !r.due.After(now)
		}
		if !due {
			continue
		}
		rel := outbox.ReleasedHold{Number: num}
		var recs []outbox.Record
		for _, r := range rows {
			rel.Deliveries = append(rel.Deliveries, r.ID)
			if !slices.Contains(rel.Receivers, r.Receiver) {
				rel.Receivers = append(rel.Receivers, r.Receiver)
			}
			recs = append(recs, outbox.Record{ID: r.ID, Receiver: r.Receiver, Number: r.Number, Text: r.text, Status: r.status,
				State: r.state, Summary: r.text, Critical: r.critical})
		}
		if len(rows) == 1 {
			rows[0].state, rows[0].due, rows[0].QueuedAt = outbox.StatePending, now, now
			out = append(out, rel)
			continue
		}
		msg, err := digest(recs)
		if err != nil {
			return nil, err
		}
		id := int64(len(m.rows) + 1)
		critical := false
		for _, r := range rows {
			critical = critical || r.critical
		}
		m.rows = append(m.rows, &memRow{
			Delivery: outbox.Delivery{ID: id, NotificationID: id, MessageID: id, Receiver: msg.Receiver, Number: num, QueuedAt: now, Digest: true},
			text:     msg.Text, segments: msg.Segments, state: outbox.StatePending, due: now, critical: critical, status: "firing",
		})
		for _, r := range rows {
			r.state, r.bundledInto = outbox.StateBundled, id
		}
		rel.Digest = id
		out = append(out, rel)
	}
	if len(out) > 0 {
		m.signal()
	}
	return out, nil
}

func (m *memStore) BudgetUsed(_ context.Context, day string) (int, error) {
	if err := m.check("BudgetUsed"); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.budget[day], nil
}

func (m *memStore) OptedOut(_ context.Context, numbers []string) ([]string, error) {
	if err := m.check("OptedOut"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, n := range numbers {
		if m.optedOut[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// optOut marks numbers opted out.
func (m *memStore) optOut(numbers ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.optedOut == nil {
		m.optedOut = map[string]bool{}
	}
	for _, n := range numbers {
		m.optedOut[n] = true
	}
}

func (m *memStore) GetState(_ context.Context, key string) ([]byte, bool, error) {
	if err := m.check("GetState"); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.state[key]
	return slices.Clone(v), ok, nil
}

func (m *memStore) PutState(_ context.Context, key string, value []byte) error {
	if err := m.check("PutState"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state[key] = slices.Clone(value)
	return nil
}
