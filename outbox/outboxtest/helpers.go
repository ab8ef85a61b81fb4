package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// note is a firing notification with one message per text, each to the
// same two numbers.
func note(texts ...string) outbox.Notification {
	n := outbox.Notification{Source: "alertmanager", GroupKey: `{}:{alertname="X"}`, Status: "firing"}
	for i, tx := range texts {
		n.Messages = append(n.Messages, msg(fmt.Sprintf("r%d", i), tx, "+27830000001", "+27830000002"))
	}
	return n
}

func msg(receiver, text string, numbers ...string) outbox.Message {
	return outbox.Message{Receiver: receiver, Text: text, Segments: 1, Numbers: numbers}
}

func enqueue(t testing.TB, s outbox.Store, n outbox.Notification) outbox.Enqueued {
	t.Helper()
	e, err := s.Enqueue(context.Background(), n)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return e
}

func lease(t testing.TB, s outbox.Store, now time.Time, maxBatches, maxNumbers int) []outbox.Batch {
	t.Helper()
	b, err := s.Lease(context.Background(), now, maxBatches, maxNumbers, time.Minute)
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	return b
}

func complete(t testing.TB, s outbox.Store, outs ...outbox.Outcome) {
	t.Helper()
	if err := s.Complete(context.Background(), outs); err != nil {
		t.Fatalf("complete: %v", err)
	}
}

func records(t testing.TB, s outbox.Store, f outbox.Filter) []outbox.Record {
	t.Helper()
	r, err := s.Deliveries(context.Background(), f)
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	return r
}

// record returns the delivery with id.
func record(t testing.TB, s outbox.Store, id int64) outbox.Record {
	t.Helper()
	for _, r := range records(t, s, outbox.Filter{Limit: 1000}) {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no delivery %d", id)
	return outbox.Record{}
}

func stats(t testing.TB, s outbox.Store) outbox.Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return st
}

func schedule(t testing.TB, s outbox.Store, now time.Time) outbox.Schedule {
	t.Helper()
	sc, err := s.Schedule(context.Background(), now)
	if err != nil {
		t.Fatalf("schedule: %v", err)
	}
	return sc
}

// woken reports whether a wake-up is waiting, and takes it.
func woken(s outbox.Store) bool {
	select {
	case <-s.Wake():
		return true
	default:
		return false
	}
}

// drain takes any waiting wake-up.
func drain(s outbox.Store) { woken(s) }

// ids returns the delivery ids of bs, sorted.
func ids(bs []outbox.Batch) []int64 {
	var out []int64
	for _, b := range bs {
		for _, d := range b.Deliveries {
			out = append(out, d.ID)
		}
	}
	slices.Sort(out)
	return out
}

// deliveries returns every delivery of bs in order.
func deliveries(bs []outbox.Batch) []outbox.Delivery {
	var out []outbox.Delivery
	for _, b := range bs {
		out = append(out, b.Deliveries...)
	}
	return out
}

func isInvalid(err error) bool { return errors.Is(err, outbox.ErrInvalid) }

// admitAll leases every due row and admits each batch under limits, and
// returns what Admit decided, summed. Admitted rows stay sending.
func admitAll(t testing.TB, s outbox.Store, now time.Time, limits outbox.Limits) outbox.Admission {
	t.Helper()
	var sum outbox.Admission
	for _, b := range lease(t, s, now, 100, 100) {
		adm, err := s.Admit(context.Background(), now, b.Deliveries, limits)
		if err != nil {
			t.Fatalf("admit: %v", err)
		}
		sum.Send = append(sum.Send, adm.Send...)
		sum.Held = append(sum.Held, adm.Held...)
		sum.Deferred = append(sum.Deferred, adm.Deferred...)
		sum.Failed = append(sum.Failed, adm.Failed...)
		sum.BudgetUsed = adm.BudgetUsed
	}
	return sum
}
