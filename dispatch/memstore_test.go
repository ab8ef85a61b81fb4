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
}

func newMemStore() *memStore {
	return &memStore{now: time.Now, state: map[string][]byte{}, wake: make(chan struct{}, 1)}
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
			text:     text, segments: segments, state: outbox.StatePending, due: now,
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
		if o.Attempted {
			r.Attempts++
		}
		if o.Account != "" {
			r.account = o.Account
		}
		switch o.State {
		case outbox.StateAccepted:
			r.apiID, r.code, r.err = o.APIMessageID, "", ""
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
		}
	}
	return s, nil
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
