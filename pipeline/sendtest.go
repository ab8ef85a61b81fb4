package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/smsbridge/smsbridge/outbox"
)

// Errors of SendTest.
var (
	ErrUnknownReceiver = errors.New("no such receiver")
	ErrNoNumbers       = errors.New("receiver has no numbers")
)

// TestSource is the source of test SMS in the outbox and on the page.
const TestSource = "send-test"

// TestResult is a queued test SMS.
type TestResult struct {
	ID       int64
	Receiver string
	Text     string
	// Numbers are the full numbers; callers mask them. People are the
	// names of the people they belong to, or "".
	Numbers []string
	People  []string
}

// SendTest queues one test SMS to every number of the receiver called
// name (its own, and whoever is on call on its lists now), fitted to its text budget like any page: it proves the store, the
// dispatcher, the key and the provider. It skips the stages: an operator
// asked for it.
func (p *Pipeline) SendTest(ctx context.Context, name string) (TestResult, error) {
	rcv, ok := p.router.Receiver(name)
	if !ok {
		return TestResult{}, fmt.Errorf("send test to %q: %w", name, ErrUnknownReceiver)
	}
	now := p.now()
	var nums, people []string
	for _, m := range rcv.Recipients(now, p.overrides) {
		nums, people = append(nums, m.Number), append(people, m.Name)
	}
	if len(nums) == 0 {
		return TestResult{}, fmt.Errorf("send test to %q: %w", name, ErrNoNumbers)
	}
	if p.store == nil {
		return TestResult{}, errors.New("pipeline: no store to write to")
	}
	text, segs := p.renderer.Plain(fmt.Sprintf("smsbridge test to %s at %s: if you read this, paging works.",
		rcv.Name, now.UTC().Format("2006-01-02 15:04:05Z")), rcv.MaxSegments)
	res, err := p.store.Enqueue(ctx, outbox.Notification{
		Source: TestSource, GroupKey: TestSource + ":" + rcv.Name, Status: "firing", Outcome: outbox.OutcomeAccepted,
		AlertName: "test SMS",
		// An operator asked for it now: neither held by the throttle nor
		// refused by a spent budget.
		Messages: []outbox.Message{{Receiver: rcv.Name, Text: text, Segments: segs, Numbers: nums, People: people,
			Unthrottled: true, Critical: true}},
	})
	if err != nil {
		return TestResult{}, fmt.Errorf("send test to %q: %w", name, err)
	}
	return TestResult{ID: res.ID, Receiver: rcv.Name, Text: text, Numbers: nums, People: people}, nil
}
