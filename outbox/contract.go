package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Store is the contract every driver (outbox/sqlite, outbox/postgres)
// implements and outbox/outboxtest checks. Consumers declare the subset
// they need; main wires a driver in.
//
// Multi-process semantics hold for every driver: each open Store has an
// owner id (Owner), every lease names its owner and has a deadline, and a
// store recovers only leases whose holder is gone (their deadline passed,
// or the driver can prove the holder is dead, as the SQLite driver can
// through its directory lock).
type Store interface {
	// Owner is this process's id, recorded with every lease it takes.
	Owner() string

	// Enqueue records n durably and returns its id and the outcome the
	// store settled on: when it returns nil, the notification and its
	// deliveries are committed (fsync'd). Guards on n (DeliveryID first,
	// then OnceKey, RequireFiring, DedupWindow with Message.DedupKey,
	// Message.Alerts, CancelHeld) are evaluated atomically with the
	// write, in the order notifications are
	// recorded (ascending ids). Messages that pass their guards are
	// merged by text: a number gets each text once per notification (see
	// Message). Concurrent calls may share one commit. An error means
	// nothing was recorded (answer 503); ErrInvalid wraps a notification
	// that can never be recorded. A ctx that ends before the write starts
	// abandons the call; once the write started, the call waits for it.
	Enqueue(ctx context.Context, n Notification) (Enqueued, error)

	// Wake receives a value after a commit (by this process or, where
	// the driver can tell, another) adds work that is due now: an
	// Enqueue with deliveries, a Retry, a Complete that returns rows due
	// now, and an Open that finds due work. For this store's own calls the
	// value is sent before the call returns. It holds at most one value:
	// a reader should lease until nothing is due.
	Wake() <-chan struct{}
	// Lease takes up to maxBatches batches of due deliveries, each at most
	// maxNumbers numbers of one text, oldest due first, and marks them
	// sending, owned by Owner, until now+leaseFor, under a lease token no
	// other Lease call (in any process, before or after a restart) ever
	// returns. A number appears at most once per batch. Rows whose lease
	// lapsed are due again, whoever held them. Nothing is leased when
	// maxBatches or maxNumbers is not positive.
	Lease(ctx context.Context, now time.Time, maxBatches, maxNumbers int, leaseFor time.Duration) ([]Batch, error)
	// Complete records outcomes in one transaction. An outcome whose lease
	// token no longer matches the row (the lease lapsed and the row was
	// leased again, failed for max age, or recovered at Open) is skipped
	// and logged: the current holder decides. An outcome with a state other
	// than accepted, failed or pending is an error, and nothing is recorded.
	// An accepted row counts in its number's throttle windows from the
	// time Complete records it (whether or not Admit saw it): later than
	// the provider took it, so a slow request never shortens a window as
	// the carrier sees it. A row that ends failed or pending gives back
	// what Admit counted for it (its place in the number's throttle
	// windows, its segments in the day's budget): it was not sent. Rows a lease returns to the queue
	// otherwise (a lapsed lease taken again, recovery at Open, FailExpired)
	// give them back too.
	Complete(ctx context.Context, outcomes []Outcome) error
	// FailExpired fails every queued delivery that entered the queue
	// maxAge or more before now, and returns how many. Held deliveries
	// wait for their number, not for the provider, and do not expire.
	FailExpired(ctx context.Context, now time.Time, maxAge time.Duration) (int, error)
	// Schedule reads when the next row is due, when held deliveries are
	// next due for release, and how old the oldest waiting row is.
	Schedule(ctx context.Context, now time.Time) (Schedule, error)

	// Admit decides, for deliveries this store leased (ds, each still
	// carrying its lease token), which may be sent now under limits, and
	// records the decision in one transaction, atomically with every other
	// Admit (in any process): two Admit calls never both take a number's
	// last place in a throttle window or the budget's last segments. A
	// driver serialises the decisions per number and per budget day
	// (SQLite: the single writer; PostgreSQL: row locks on the number's
	// and the day's rows). In the order given, each delivery is:
	//   - held (Admission.Held), when limits.Throttle applies to it (not
	//     Unthrottled, not a digest) and its number already had
	//     Bucket.Count deliveries admitted within Bucket.Per of now for
	//     some bucket, or has held deliveries or a digest waiting: state
	//     held, due when the number may receive again (now when only
	//     joining the others), lease released;
	//   - deferred (Admission.Deferred), a digest whose number is still
	//     full: back to pending, due when the number may receive again;
	//   - failed with code ReasonBudgetExhausted (Admission.Failed), when
	//     limits.Budget applies, the delivery is not Critical, and its
	//     segments do not fit in what the day has left;
	//   - admitted (Admission.Send): counted in its number's windows from
	//     now (until Complete records it accepted, from then on) and,
	//     with a budget, its segments added to the day's (a Critical
	//     delivery is admitted and counted even past the limit).
	// Deliveries no longer leased under their token are in no list.
	Admit(ctx context.Context, now time.Time, ds []Delivery, limits Limits) (Admission, error)
	// Release ends the hold of every number that has a held delivery due
	// at now and no digest waiting (pending or sending), at most 100
	// numbers a call, in one transaction: a number with one held delivery
	// gets it back in the queue, due now; a number with several gets one
	// digest, the Message digest returns for them (in id order; its
	// Numbers are ignored), recorded as a notification from SourceDigest
	// with one delivery to the number, due now, Critical if any of them
	// was, to the first Person any of them names, the notification's
	// AlertName their distinct names (at most three, then "+N more");
	// each held delivery then ends bundled, pointing at the digest's
	// delivery (Record.BundledInto). Either way max age counts afresh.
	// An error from digest rolls the whole call back.
	Release(ctx context.Context, now time.Time, digest DigestFunc) ([]ReleasedHold, error)
	// BudgetUsed returns the segments Admit counted for day (0 for a day
	// never counted).
	BudgetUsed(ctx context.Context, day string) (int, error)
	// Numbers reports, for every number with deliveries admitted at or
	// after since or held now, how many were admitted since then and what
	// is held, by number.
	Numbers(ctx context.Context, since time.Time) ([]NumberStats, error)

	// Stats counts the rows not yet accepted or failed and finds the
	// oldest.
	Stats(ctx context.Context) (Stats, error)
	// Deliveries returns the rows f selects, most recently updated first.
	Deliveries(ctx context.Context, f Filter) ([]Record, error)
	// Notifications returns the notifications f selects, newest (highest
	// id) first, each with all of its deliveries in the order they were
	// recorded. Notifications without deliveries (unrouted, filtered)
	// are included unless f selects a delivery state.
	Notifications(ctx context.Context, f NotificationFilter) ([]NotificationRecord, error)
	// Counts counts what happened at or after since: the notifications
	// received, and the deliveries now accepted or failed that were last
	// updated then.
	Counts(ctx context.Context, since time.Time) (Counts, error)
	// DeliveryByProviderID returns the delivery the provider knows by id
	// (its apiMessageId); the error wraps ErrNotFound when none has it.
	DeliveryByProviderID(ctx context.Context, id string) (Record, error)
	// Retry puts a failed delivery back in the queue, due now, with its
	// attempts and max age counted afresh. Errors wrap ErrNotFound or
	// ErrNotFailed, or ErrOptedOut for a number that opted out.
	Retry(ctx context.Context, id int64) error
	// Prune deletes notifications received more than retention ago whose
	// deliveries are all finished (accepted, failed, bundled or
	// cancelled) and were last updated more than retention ago, with
	// their messages and deliveries, and returns how many notifications
	// it deleted. Unfinished work is never pruned. It also forgets
	// duplicate keys, resolved alerts and budget days older than
	// retention, deletes the on-call overrides that ended more than
	// retention ago, and forgets delivery ids (Notification.DeliveryID)
	// whose expiry has passed and escalation steps that ended more than
	// retention ago and began more than EscalationEpisode ago (none of
	// these counted).
	Prune(ctx context.Context, retention time.Duration) (int, error)

	// AddOverride stores an on-call override added at run time and
	// returns it with its id (unique, ascending in the order added) and
	// CreatedAt set. ErrInvalid wraps one without a list or members, or
	// whose End is not after its Start.
	AddOverride(ctx context.Context, o Override) (Override, error)
	// Overrides returns every stored override, in the order added
	// (ascending id). Prune removes those that ended long ago.
	Overrides(ctx context.Context) ([]Override, error)
	// DeleteOverride removes the override with id; the error wraps
	// ErrNotFound when there is none.
	DeleteOverride(ctx context.Context, id int64) error

	// GetState and PutState are a small durable key-value map for state
	// that must survive a restart and be shared by replicas (the
	// provider's pause and hold). PutState overwrites, durably; GetState
	// reports ok false for a key never put. A nil value is stored as an
	// empty one. Keys must not be empty.
	GetState(ctx context.Context, key string) (value []byte, ok bool, err error)
	PutState(ctx context.Context, key string, value []byte) error

	// TwoWay: receipts, reply codes, acknowledgements, opt-outs (see
	// twoway.go).
	TwoWay

	// Escalations: the steps of receivers' escalate lists (see
	// escalation.go).
	Escalations

	// Close stops background work after the current commit, fails calls
	// still waiting with ErrClosed, and releases the backend (and, for
	// SQLite, the directory lock). Leases this store holds are left to
	// lapse (or, for SQLite, to be recovered at the next Open): stop the
	// dispatcher first, so it records or releases what it leased. A
	// second Close returns nil.
	Close() error
}

// HealthChecker is implemented by a Store that can tell whether it can
// write durably right now. The daemon calls Health about once a second in
// the background and caches the answer for its readiness and its intake,
// so one call may cost a small write but no more. A nil error means a
// notification enqueued now would be durable; otherwise the error says why
// not in words an operator can act on (the storage directory was removed,
// the disk is nearly full, a write failed), and never holds a secret.
type HealthChecker interface {
	Health(ctx context.Context) error
}

var (
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("outbox closed")
	// ErrInvalid marks a notification the store refuses to record.
	ErrInvalid = errors.New("invalid notification")
	// ErrNotFailed is returned by Retry for a delivery that is not in the
	// failed state.
	ErrNotFailed = errors.New("the delivery has not failed")
	// ErrNotFound is returned when no delivery has the id (Retry) or the
	// provider's message id (DeliveryByProviderID), or no override the id
	// (DeleteOverride).
	ErrNotFound = errors.New("no delivery with that id")
)

// Outcomes a notification is recorded with. The pipeline sets one; a guard
// evaluated by the store may replace it (RequireFiring: OutcomeFiltered).
// Only an accepted notification has messages and deliveries; the pipeline
// may record others (duplicate, muted...) under names of its own.
const (
	OutcomeAccepted = "accepted"
	OutcomeUnrouted = "unrouted"
	OutcomeFiltered = "filtered"
	// OutcomeDuplicate: every message was a duplicate (Message.DedupKey),
	// or some were and the rest stale; also what Enqueue reports for a
	// notification whose DeliveryID (unexpired) or OnceKey a recorded
	// notification carries already, when nothing was written.
	OutcomeDuplicate = "duplicate"
	// OutcomeStale: every message was stale (Message.Alerts).
	OutcomeStale = "stale"
)

// Notification is one accepted notification as rendered for sending: one
// Message per receiver text.
type Notification struct {
	// Source names where it came from: "alertmanager", a webhook name, or
	// "send-test".
	Source string
	// GroupKey is Alertmanager's group key, or the webhook's equivalent.
	GroupKey string
	// Status is "firing" or "resolved".
	Status string
	// AlertName names what the notification is about, for people: the
	// alertname its alerts share, or their names joined. It may be empty.
	AlertName string
	// Outcome is what the pipeline decided. Empty means OutcomeAccepted,
	// or OutcomeUnrouted when there are no Messages. Any outcome other
	// than OutcomeAccepted must come without Messages (ErrInvalid).
	Outcome string
	// RequireFiring is the resolved rule of generic webhooks, evaluated
	// atomically with the write: unless the newest notification stored
	// with the same GroupKey (whatever its outcome) has status "firing",
	// n is recorded with OutcomeFiltered and without its messages. It
	// needs a GroupKey (ErrInvalid without one).
	RequireFiring bool
	// DeliveryID, when not empty, is the sender's id of this delivery (a
	// webhook delivery header, namespaced by source), the guard against
	// replays and retries of something already accepted. It is evaluated
	// before every other guard, atomically with the write: when the store
	// holds the same id with an expiry after its clock's now, nothing is
	// written and Enqueue returns the id of the notification recorded with
	// it and OutcomeDuplicate. Otherwise the id is recorded with n, until
	// DeliveryIDExpires (replacing an expired record of it), whatever
	// outcome n is recorded with. When Enqueue fails the id is not
	// recorded, so the sender's retry of a request answered 503 is taken.
	DeliveryID string
	// DeliveryIDExpires is when the store may forget DeliveryID. An id
	// whose expiry has passed protects nothing.
	DeliveryIDExpires time.Time
	// DedupWindow is duplicate suppression, evaluated atomically with the
	// write for each message with a DedupKey (it needs a GroupKey): a
	// message whose DedupKey equals the latest key stored for the same
	// (Receiver, GroupKey) within DedupWindow of now is dropped
	// (Enqueued.Suppressed, ReasonDuplicate); any other message that
	// passes its guards stores its key as the latest, from now. A
	// dropped message stores nothing, so a stream of duplicates does not
	// extend the window. Zero turns it off.
	DedupWindow time.Duration
	// Resolved are the alerts n reports resolved. They are remembered
	// (whatever becomes of n, duplicate or not), for Message.Alerts.
	Resolved []AlertRef
	// CancelHeld, on a resolved notification with a GroupKey, cancels
	// what it makes moot: for each number it is written for, every held
	// firing delivery of the group to that number ends cancelled ("resolved
	// before sent"), and so does the resolution's own delivery to it,
	// unless the number had been sent a firing of the group (a delivery
	// pending, sending, accepted or bundled, newer than the group's last
	// resolution it was sent), which the resolution must then follow.
	CancelHeld bool
	// OnceKey, when not empty, makes the notification happen once: if a
	// recorded notification carries the same key, nothing is written and
	// Enqueue returns that notification's id with OutcomeDuplicate. The
	// check is atomic with the write (a unique key, in a shared database
	// too), so a retry after a crash, or two replicas, cannot record it
	// twice. The key lives as long as its notification (see Prune).
	OnceKey string
	// Messages are the rendered texts; none means the notification was
	// not routed anywhere, which is still recorded.
	Messages []Message
	// AckLabels are the labels an acknowledgement of the group silences
	// (its group labels, or its common labels when it has none); stored
	// with n for ReplyTarget and ReceiptMatch. Nil for none.
	AckLabels map[string]string
	// EscalationLabels are the labels that select the group's alerts
	// (its group labels, or its common labels when it has none), stored
	// with the escalation steps n schedules (EscalationStep.Labels), for
	// the check in Alertmanager at a step's time. Nil for none.
	EscalationLabels map[string]string
	// Escalation, when its ID is set, makes n the page of that leased
	// escalation step: evaluated after OnceKey and before the other
	// guards, atomically with the write, unless the step is still pending
	// under Escalation.Lease nothing is written and Enqueue returns
	// OutcomeDuplicate with the id of the notification the step escalated
	// with (0 when it did not: it was stopped or failed, or another
	// holder leased it). Otherwise n is recorded and the step ends
	// escalated, pointing at n (EscalationStep.EscalatedTo). A
	// notification with Escalation schedules no steps of its own.
	Escalation EscalationRef
}

// AlertRef names one alert instance: Alertmanager's fingerprint and when
// it started (compared to the millisecond). A re-fire of the same labels
// has a new start, so it is another instance.
type AlertRef struct {
	Fingerprint string
	StartsAt    time.Time
}

// Reasons a message is dropped by its guards (Enqueued.Suppressed).
const (
	ReasonDuplicate = "duplicate"
	ReasonStale     = "stale"
)

// Suppressed is one message Enqueue dropped.
type Suppressed struct {
	Receiver string
	// Reason is ReasonDuplicate or ReasonStale.
	Reason string
}

// Enqueued is what Enqueue recorded.
type Enqueued struct {
	// ID is the recorded notification's id; when nothing was written (a
	// DeliveryID or OnceKey already recorded), the id of the notification
	// first recorded with it.
	ID int64
	// Outcome is the notification's recorded outcome.
	Outcome string
	// Recipients counts the deliveries queued to send (each number once
	// per text).
	Recipients int
	// Suppressed are the messages the dedup and stale guards dropped.
	Suppressed []Suppressed
	// Cancelled counts deliveries CancelHeld ended: held ones of the
	// group and n's own.
	Cancelled int
	// ReplyCode is the reply code written into n's texts (see
	// ReplyCodePlaceholder): digits, or ReplyCodeAll; empty for none.
	ReplyCode string
	// Replayed is set when the DeliveryID guard found the id (Outcome is
	// then OutcomeDuplicate and nothing was written), so that the caller
	// can tell a replay from a duplicate the noise guards recorded.
	Replayed bool
	// EscalationsScheduled counts the escalations n's messages began
	// (Message.Escalate): one per receiver whose steps were scheduled.
	EscalationsScheduled int
	// EscalationsStopped counts the escalations a resolution stopped:
	// those of n's group with a pending step.
	EscalationsStopped int
}

// Message is one rendered text for one receiver and the numbers to send it
// to. Messages of one notification that pass their guards are merged by
// text: a number two of them reach with the same text gets one delivery,
// under the first, Unthrottled or Critical if either is, to the first
// person either names at it (People).
type Message struct {
	Receiver string
	Text     string
	// Segments is the number of SMS segments Text takes.
	Segments int
	// Numbers are E.164 numbers; duplicates are stored once.
	Numbers []string
	// DedupKey is the message's duplicate key (see
	// Notification.DedupWindow); empty for none.
	DedupKey string
	// Alerts are the alert instances the text is about. On a firing
	// notification, a message whose every one was already remembered
	// resolved (Notification.Resolved of a notification recorded before)
	// is dropped as stale (Enqueued.Suppressed, ReasonStale). Empty for
	// no check.
	Alerts []AlertRef
	// Unthrottled exempts the message's deliveries from the per-number
	// throttle (Admit); they still count in their numbers' windows.
	Unthrottled bool
	// Critical sends the message's deliveries past an exhausted budget
	// (Admit).
	Critical bool
	// Summary is one line about the message for a digest (Release).
	Summary string
	// People are, for each of Numbers, the name of the person on call at
	// that number when the notification was routed, or "". Nil or empty
	// means no names; otherwise it has one entry per number (ErrInvalid).
	People []string
	// ReplyCode asks for a reply code: on a firing notification, Enqueue
	// chooses one for the notification (see ReplyCodePlaceholder),
	// issues it to the message's numbers and writes it into Text in place
	// of every ReplyCodePlaceholder, keeping the text as given as the
	// message's template (ReceiptMatch.Template). On a notification of
	// another status the placeholder is removed.
	ReplyCode bool
	// FailoverOf is, for a message sent because the delivery with this
	// id failed at the handset (a receiver's on_undelivered), that id; 0
	// otherwise. Its deliveries record it (Record.FailoverOf).
	FailoverOf int64
	// Escalate are the escalation steps of the message's receiver, in
	// order, After increasing. On a firing notification with a GroupKey
	// (ErrInvalid without one) whose message passes its guards, Enqueue
	// schedules them, due After from now, unless the receiver already has
	// an escalation of the group in this episode (see Escalations): a
	// step pending, or one begun within EscalationEpisode and not ended
	// by a resolution. The check is atomic with the write: of pages of
	// the group to the receiver enqueued at once, in any process, one
	// schedules the steps (a shared database serialises them per group,
	// as it does the dedup guard). The steps keep the message's text (with
	// ReplyCodePlaceholder where its code goes), Summary and Critical
	// mark. Ignored on a notification of another status.
	Escalate []EscalationPlan

	// template and code are set by FillReplyCode: the text as given, and
	// the code written into it.
	template, code string
}

// State is the state of one delivery (one text to one number).
type State string

// Delivery states. A delivery starts pending, is sending while leased, and
// ends accepted (the provider took it) or failed; Retry moves a failed one
// back to pending. A delivery its number's throttle holds back (Admit) is
// held until Release bundles it into a digest (bundled) or returns it to
// the queue; a resolution can cancel a held firing (cancelled). Handset
// receipts ("delivered") are recorded beside the state, not as one.
const (
	StatePending   State = "pending"
	StateHeld      State = "held"
	StateSending   State = "sending"
	StateAccepted  State = "accepted"
	StateBundled   State = "bundled"
	StateCancelled State = "cancelled"
	StateFailed    State = "failed"
)

// States lists every state, in display order.
var States = []State{StatePending, StateHeld, StateSending, StateAccepted, StateBundled, StateCancelled, StateFailed}

// Batch is one request's worth of leased work: one text and the numbers to
// send it to, none of them twice.
type Batch struct {
	Text     string
	Segments int
	// LeaseUntil is when the lease lapses and the rows become due again;
	// a result recorded after that is ignored if the rows were re-leased.
	LeaseUntil time.Time
	Deliveries []Delivery
}

// Numbers returns the batch's numbers in delivery order.
func (b Batch) Numbers() []string {
	nums := make([]string, len(b.Deliveries))
	for i, d := range b.Deliveries {
		nums[i] = d.Number
	}
	return nums
}

// Delivery is one leased row.
type Delivery struct {
	ID             int64
	NotificationID int64
	MessageID      int64
	Receiver       string
	Number         string
	// Attempts counts the requests already made for this row.
	Attempts int
	// QueuedAt is when the row entered the queue (receipt, a manual
	// Retry, or a release from hold); max age counts from it.
	QueuedAt time.Time
	// Lease is the lease token (unique across processes and restarts);
	// Complete records a result only while the row still carries it.
	Lease string
	// Digest is true for a digest of held deliveries (Release).
	Digest bool
	// Person is who was on call at Number when the notification was
	// routed (Message.People), or "".
	Person string
}

// Outcome is what became of one leased delivery. Build it with Accepted,
// Failed, Rescheduled, Deferred or Released.
type Outcome struct {
	Delivery Delivery
	// State is StateAccepted, StateFailed or StatePending.
	State State
	// Account names the provider account the request went through
	// ("primary", "fallback"); empty when no request was made.
	Account      string
	APIMessageID string
	ErrorCode    string
	Error        string
	// NextAttempt is when a pending outcome is due again; zero means now.
	NextAttempt time.Time
	// Attempted says a request was made for the row (counted in attempts).
	Attempted bool
}

// Accepted records that the provider, through account, accepted the
// message for d.
func Accepted(d Delivery, account, apiMessageID string) Outcome {
	return Outcome{Delivery: d, State: StateAccepted, Account: account, APIMessageID: apiMessageID, Attempted: true}
}

// Failed records that d will never be delivered, with a short code and the
// reason for a person. account is empty when no request was made.
func Failed(d Delivery, account, code, reason string) Outcome {
	return Outcome{Delivery: d, State: StateFailed, Account: account, ErrorCode: code, Error: reason, Attempted: account != ""}
}

// Rescheduled returns d to the queue after a failed attempt through
// account, due at at.
func Rescheduled(d Delivery, account string, at time.Time, code, reason string) Outcome {
	return Outcome{Delivery: d, State: StatePending, Account: account, NextAttempt: at, ErrorCode: code, Error: reason, Attempted: true}
}

// Deferred returns d to the queue, due at at, without counting an attempt:
// the wait was not the row's fault (a 429 pause, a hold).
func Deferred(d Delivery, at time.Time, code, reason string) Outcome {
	return Outcome{Delivery: d, State: StatePending, NextAttempt: at, ErrorCode: code, Error: reason}
}

// Released returns d to the queue, due now, untouched: it was never sent
// (shutdown).
func Released(d Delivery) Outcome {
	return Outcome{Delivery: d, State: StatePending}
}

// Schedule tells the dispatcher when it next has work.
type Schedule struct {
	// NextDue is the earliest time a queued row is due or a lease lapses;
	// zero when nothing is queued or leased.
	NextDue time.Time
	// NextHeld is the earliest time a held delivery of a number with no
	// digest waiting is due for Release; zero when there is none.
	NextHeld time.Time
	// OldestQueued is the earliest QueuedAt among rows waiting in the queue
	// or held by a lapsed lease, i.e. the rows FailExpired would fail; zero
	// when there are none.
	OldestQueued time.Time
}

// Stats is a snapshot of the queue.
type Stats struct {
	// Pending counts deliveries not yet accepted or failed: waiting in the
	// queue or in flight.
	Pending int
	// InFlight counts the leased (sending) part of Pending.
	InFlight int
	// Held counts held deliveries (not part of Pending: they wait for
	// their number, not for the provider).
	Held int
	// Oldest is the earliest QueuedAt among Pending; zero when none.
	Oldest time.Time
}

// Filter selects deliveries for Deliveries.
type Filter struct {
	// State selects one state; empty selects all.
	State State
	// Since selects rows updated at or after it; zero selects all.
	Since time.Time
	// NotificationID selects one notification's rows; zero selects all.
	NotificationID int64
	// Limit caps the rows returned; default 100, at most 1000.
	Limit int
}

// Record is one delivery as the status page shows it. Number is the full
// number: mask it before showing it anywhere.
type Record struct {
	ID             int64
	NotificationID int64
	ReceivedAt     time.Time
	UpdatedAt      time.Time
	Source         string
	GroupKey       string
	Status         string
	// AlertName is the notification's AlertName.
	AlertName string
	Receiver  string
	Number    string
	Text      string
	Segments  int
	State     State
	Attempts  int
	// Account is the provider account of the last request; empty before
	// any.
	Account      string
	APIMessageID string
	ErrorCode    string
	Error        string
	// NextAttemptAt is when a pending row is next due, or a held one
	// due for release; zero for rows in other states.
	NextAttemptAt time.Time
	// BundledInto is, for a bundled row, the id of the digest's
	// delivery; 0 otherwise.
	BundledInto int64
	// Summary is the message's line for a digest.
	Summary string
	// Critical is true for a delivery that goes past an exhausted
	// budget.
	Critical bool
	// LeaseOwner is the Owner of the store that leased the row last
	// (holding it while State is sending); empty before any lease.
	LeaseOwner string
	// Person is who was on call at Number when the notification was
	// routed, or "".
	Person string
	// Receipt is the handset's final status, ReceiptDelivered or
	// ReceiptFailed, or "" while none came; ReceiptWord is the provider's
	// latest word for it (a final one, or information such as
	// "Enroute") and ReceiptAt its time; zero without any.
	Receipt     string
	ReceiptWord string
	ReceiptAt   time.Time
	// ReplyCode is the reply code the text carries, or "".
	ReplyCode string
	// FailoverOf is the delivery this one is the failover of (the
	// receiver's on_undelivered); 0 otherwise. FailedOverTo is, for a
	// delivery that failed at the handset, the notification that carried
	// its failover; 0 for none.
	FailoverOf   int64
	FailedOverTo int64
}

// Override is an on-call override added at run time: Members are on call
// for List from Start (inclusive) to End (exclusive). Members are as the
// operator wrote them, people's names or numbers; they are resolved
// against the configuration in force whenever the list is read.
type Override struct {
	ID        int64
	List      string
	Members   []string
	Start     time.Time
	End       time.Time
	CreatedAt time.Time
}

// Check refuses an override that can never apply; the error wraps
// ErrInvalid.
func (o Override) Check() error {
	switch {
	case strings.TrimSpace(o.List) == "":
		return fmt.Errorf("%w: an override needs a list", ErrInvalid)
	case len(o.Members) == 0:
		return fmt.Errorf("%w: an override needs members", ErrInvalid)
	case !o.End.After(o.Start):
		return fmt.Errorf("%w: an override must end after it starts", ErrInvalid)
	}
	for _, m := range o.Members {
		if strings.TrimSpace(m) == "" {
			return fmt.Errorf("%w: an override member is empty", ErrInvalid)
		}
	}
	return nil
}

// NotificationFilter selects notifications for Notifications.
type NotificationFilter struct {
	// State selects the notifications with at least one delivery in that
	// state; empty selects all, those without deliveries included.
	State State
	// Since selects notifications received at or after it; zero selects
	// all.
	Since time.Time
	// Limit caps the notifications returned; default 25, at most 200.
	Limit int
}

// NotificationRecord is one notification with its deliveries, as the
// status page groups them.
type NotificationRecord struct {
	ID         int64
	ReceivedAt time.Time
	Source     string
	GroupKey   string
	Status     string
	AlertName  string
	// Outcome is the recorded outcome (accepted, unrouted, filtered...).
	Outcome string
	// Deliveries are all of the notification's rows, in the order they
	// were recorded (by message, then number). Numbers are full.
	Deliveries []Record
}

// Counts is what happened over a period (see Store.Counts).
type Counts struct {
	// Notifications counts the notifications received, whatever their
	// outcome.
	Notifications int
	// Accepted and Failed count deliveries in those states whose last
	// update falls in the period.
	Accepted, Failed int
}
