package outbox

import (
	"fmt"

	"github.com/smsbridge/smsbridge/internal/plural"
)

// Validate checks n as every driver's Enqueue does before it writes
// anything: it settles its outcome and drops duplicate numbers within each
// message (with their people). An error wraps ErrInvalid.
func Validate(n Notification) (Notification, error) {
	if n.RequireFiring && n.GroupKey == "" {
		return n, fmt.Errorf("%w: the resolved rule needs a group key", ErrInvalid)
	}
	if n.DedupWindow < 0 {
		return n, fmt.Errorf("%w: negative dedup window %s", ErrInvalid, n.DedupWindow)
	}
	if n.CancelHeld && n.GroupKey == "" {
		return n, fmt.Errorf("%w: cancelling held deliveries needs a group key", ErrInvalid)
	}
	if n.Escalation.ID != 0 && n.Escalation.Lease == "" {
		return n, fmt.Errorf("%w: an escalated page needs its step's lease", ErrInvalid)
	}
	for i, a := range n.Resolved {
		if a.Fingerprint == "" {
			return n, fmt.Errorf("%w: resolved alert %d has no fingerprint", ErrInvalid, i)
		}
	}
	switch {
	case n.Outcome == "" && len(n.Messages) == 0:
		n.Outcome = OutcomeUnrouted
	case n.Outcome == "":
		n.Outcome = OutcomeAccepted
	case n.Outcome != OutcomeAccepted && len(n.Messages) > 0:
		return n, fmt.Errorf("%w: outcome %q with %s; only an accepted notification is sent", ErrInvalid, n.Outcome, plural.Count(len(n.Messages), "message", "messages"))
	}
	msgs := make([]Message, 0, len(n.Messages))
	for i, m := range n.Messages {
		if m.Segments < 0 {
			return n, fmt.Errorf("%w: message %d has %d segments", ErrInvalid, i, m.Segments)
		}
		if m.DedupKey != "" && n.DedupWindow > 0 && n.GroupKey == "" {
			return n, fmt.Errorf("%w: message %d has a dedup key but the notification no group key", ErrInvalid, i)
		}
		if err := CheckEscalate(n, m); err != nil {
			return n, fmt.Errorf("%w: message %d: %w", ErrInvalid, i, err)
		}
		for k, a := range m.Alerts {
			if a.Fingerprint == "" {
				return n, fmt.Errorf("%w: message %d alert %d has no fingerprint", ErrInvalid, i, k)
			}
		}
		if len(m.People) > 0 && len(m.People) != len(m.Numbers) {
			return n, fmt.Errorf("%w: message %d has %d people for %d numbers", ErrInvalid, i, len(m.People), len(m.Numbers))
		}
		seen := make(map[string]bool, len(m.Numbers))
		nums := make([]string, 0, len(m.Numbers))
		people := make([]string, 0, len(m.Numbers))
		for k, num := range m.Numbers {
			if num == "" {
				return n, fmt.Errorf("%w: message %d has an empty number", ErrInvalid, i)
			}
			if !seen[num] {
				seen[num] = true
				nums = append(nums, num)
				person := ""
				if len(m.People) > 0 {
					person = m.People[k]
				}
				people = append(people, person)
			}
		}
		if m.Text == "" && len(nums) > 0 {
			return n, fmt.Errorf("%w: message %d has numbers but no text", ErrInvalid, i)
		}
		m.Numbers, m.People = nums, people
		msgs = append(msgs, m)
	}
	n.Messages = msgs
	return n, nil
}
