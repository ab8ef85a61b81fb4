package outbox

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Limits are what Admit applies at send time: the per-number throttle and
// the day's segment budget. The zero value applies neither.
type Limits struct {
	// Throttle are the per-number buckets: at most Count deliveries to a
	// number admitted within any Per. None means no throttle.
	Throttle []Bucket
	// Budget is the segment budget of one day; a zero Limit means none.
	Budget Budget
}

// Check refuses limits Admit cannot apply: a throttle bucket without a
// count or a period, a budget without its day. The error wraps
// ErrInvalid.
func (l Limits) Check() error {
	for _, b := range l.Throttle {
		if b.Count < 1 || b.Per <= 0 {
			return fmt.Errorf("throttle bucket %s: %w", b, ErrInvalid)
		}
	}
	if l.Budget.Limit > 0 && l.Budget.Day == "" {
		return fmt.Errorf("a budget without a day: %w", ErrInvalid)
	}
	return nil
}

// Active reports whether l limits anything.
func (l Limits) Active() bool { return len(l.Throttle) > 0 || l.Budget.Limit > 0 }

// Bucket is one throttle window: at most Count deliveries per Per.
type Bucket struct {
	Count int
	Per   time.Duration
}

// String writes b as it is configured: "5 per 15m".
func (b Bucket) String() string { return fmt.Sprintf("%d per %s", b.Count, model.Duration(b.Per)) }

// Budget is one day's segment budget. The caller names the day (a local
// date such as "2026-03-29"), so the budget resets whenever the name
// changes: at local midnight, whatever the clock's zone or DST.
type Budget struct {
	Day   string
	Limit int
}

// Codes a delivery is set aside with.
const (
	// ReasonBudgetExhausted is the error code of a delivery Admit failed
	// because the day's budget was spent.
	ReasonBudgetExhausted = "budget_exhausted"
	// CodeResolvedBeforeSent is the error code of a delivery CancelHeld
	// cancelled.
	CodeResolvedBeforeSent = "resolved_before_sent"
)

// SourceDigest is the Source of the notifications Release records for
// digests.
const SourceDigest = "digest"

// Admission is what Admit decided.
type Admission struct {
	// Send are the deliveries that may go now, in the order given.
	Send []Delivery
	// Held are held for their number; Until is when it may receive again.
	Held []SetAside
	// Deferred are digests back in the queue until Until.
	Deferred []SetAside
	// Failed failed for the budget.
	Failed []SetAside
	// BudgetUsed is the day's segments counted after this call; 0
	// without a budget.
	BudgetUsed int
}

// SetAside is one delivery Admit did not admit.
type SetAside struct {
	Delivery Delivery
	// Until is when a held or deferred delivery is due.
	Until time.Time
}

// DigestFunc renders the digest of the deliveries held for one number,
// oldest first. The store sets the digest's number; the Message's Text,
// Segments and Receiver are used.
type DigestFunc func(held []Record) (Message, error)

// ReleasedHold is what Release did for one number.
type ReleasedHold struct {
	Number string
	// Digest is the digest's delivery id; 0 when the number's one held
	// delivery went back to the queue instead.
	Digest int64
	// Deliveries are the held deliveries released (bundled into the
	// digest, or back in the queue).
	Deliveries []int64
	// Receivers are their receivers, each once, in order.
	Receivers []string
}

// NumberStats is one number's recent traffic, for the status page. Number
// is the full number: mask it before showing it.
type NumberStats struct {
	Number string
	// Sent counts deliveries admitted (sending or accepted) since the time
	// asked about.
	Sent int
	// Held counts held deliveries.
	Held int
	// NextRelease is the earliest time one of them is due; zero when none
	// is held.
	NextRelease time.Time
	// DigestWaiting is true while a digest to the number is pending or
	// sending.
	DigestWaiting bool
}

// DigestPlan is what a driver writes for the digest of held deliveries:
// the rendered message and the notification it stands for.
type DigestPlan struct {
	Receiver, Text string
	Segments       int
	// Status is firing if any held delivery was, else resolved.
	Status string
	// Critical if any held delivery was; Person the first one named.
	Critical bool
	Person   string
	// AlertName names what it bundles: at most three distinct alert
	// names, then how many more.
	AlertName string
}

// PlanDigest renders the digest of held (not empty) with digest and
// settles what the drivers record for it. An error wraps ErrInvalid, or
// is the renderer's.
func PlanDigest(held []Record, digest DigestFunc) (DigestPlan, error) {
	if digest == nil {
		return DigestPlan{}, fmt.Errorf("no digest renderer: %w", ErrInvalid)
	}
	if len(held) == 0 {
		return DigestPlan{}, fmt.Errorf("nothing held to digest: %w", ErrInvalid)
	}
	m, err := digest(held)
	if err != nil {
		return DigestPlan{}, fmt.Errorf("render the digest: %w", err)
	}
	if m.Text == "" || m.Segments < 0 {
		return DigestPlan{}, fmt.Errorf("the digest has no text: %w", ErrInvalid)
	}
	d := DigestPlan{Receiver: m.Receiver, Text: m.Text, Segments: m.Segments, Status: "resolved"}
	if d.Receiver == "" {
		d.Receiver = held[0].Receiver
	}
	var names []string
	for _, r := range held {
		if r.Status == "firing" {
			d.Status = "firing"
		}
		d.Critical = d.Critical || r.Critical
		if d.Person == "" {
			d.Person = r.Person
		}
		if r.AlertName != "" && !slices.Contains(names, r.AlertName) {
			names = append(names, r.AlertName)
		}
	}
	const most = 3
	d.AlertName = strings.Join(names, ", ")
	if len(names) > most {
		d.AlertName = strings.Join(names[:most], ", ") + fmt.Sprintf(" +%d more", len(names)-most)
	}
	return d, nil
}
