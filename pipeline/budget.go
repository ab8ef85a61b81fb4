package pipeline

import (
	"context"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
)

// Budget marks the messages that go even when the day's segment budget is
// spent: those about an alert that matches every one of Critical. The
// budget itself is counted when a message is sent (outbox.Store.Admit),
// since that is what is billed: segments times numbers accepted.
type Budget struct {
	// Critical are matchers in Alertmanager's syntax, all of which an
	// alert (its labels over the notification's common labels) must
	// match; none marks nothing critical.
	Critical labels.Matchers
}

// Name implements Stage.
func (Budget) Name() string { return "budget" }

// Exec implements Stage.
func (b Budget) Exec(_ context.Context, e *Envelope) error {
	if len(b.Critical) == 0 {
		return nil
	}
	for i := range e.Plan.Entries {
		en := &e.Plan.Entries[i]
		if en.Skipped != "" || en.Notification == nil {
			continue
		}
		for _, ls := range en.Notification.RouteLabels() {
			if b.Critical.Matches(labelSet(ls)) {
				en.Marks.Critical = true
				break
			}
		}
	}
	return nil
}

func labelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}
