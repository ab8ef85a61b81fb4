package twoway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// Store is what two-way SMS needs of the outbox.
type Store interface {
	Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error)
	Deliveries(ctx context.Context, f outbox.Filter) ([]outbox.Record, error)
	RecordReceipt(ctx context.Context, now time.Time, r outbox.Receipt) (outbox.ReceiptMatch, error)
	ReplyCode(ctx context.Context, number string, code int, now time.Time) (outbox.ReplyTarget, error)
	ReplyTargets(ctx context.Context, number string, since time.Time) ([]outbox.ReplyTarget, error)
	Acknowledge(ctx context.Context, a outbox.Ack) (outbox.Ack, bool, error)
	LeaseSilences(ctx context.Context, now time.Time, max int, leaseFor time.Duration) ([]outbox.Ack, time.Time, error)
	CompleteSilence(ctx context.Context, id int64, lease string, o outbox.SilenceOutcome) error
	SetOptOut(ctx context.Context, number string, out bool, at time.Time) (bool, int, error)
	OptOuts(ctx context.Context) ([]outbox.OptOut, error)
	Claim(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error)
	Claimed(ctx context.Context, key string, now time.Time) (bool, error)
	Unclaim(ctx context.Context, key string) error
	Allow(ctx context.Context, key string, now time.Time, limit int, per time.Duration) (bool, error)
}

// Options configure a Processor.
type Options struct {
	Store Store
	// Config returns the two-way configuration in force; read once per
	// callback.
	Config  func() *Config
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnAck is called after an acknowledgement is recorded (the seam
	// escalation stops on); nil for nothing. It must not block.
	OnAck func(outbox.Ack)
	// CountFailed counts deliveries an opt-out failed, under the
	// dispatcher's reason label; nil counts nothing.
	CountFailed func(reason string, n int)
}

// Processor acts on the events of the provider's callbacks: receipts,
// replies, STOP and START. It outlives configuration generations. Its
// methods are safe for concurrent use.
type Processor struct {
	store       Store
	config      func() *Config
	logger      *slog.Logger
	metrics     *Metrics
	now         func() time.Time
	onAck       func(outbox.Ack)
	countFailed func(string, int)
	answers     answerer
	// kick wakes the Silencer for a new pending silence.
	kick chan struct{}
	// optLog bounds the log lines of STOP and START (on the clock now):
	// numbers alternating them must not fill the disk.
	optLog        *rate.Limiter
	optSuppressed atomic.Int64
	// replyLog bounds the log lines of replies that are not actions
	// (unknown numbers, unknown codes, junk): one callback body can
	// carry a thousand of them. A budget of its own, so a flood of them
	// does not hide a STOP.
	replyLog        *rate.Limiter
	replySuppressed atomic.Int64
}

// NewProcessor returns a Processor for o.
func NewProcessor(o Options) *Processor {
	p := &Processor{store: o.Store, config: o.Config, logger: o.Logger, metrics: o.Metrics, now: o.Now, onAck: o.OnAck,
		countFailed: o.CountFailed, kick: make(chan struct{}, 1),
		optLog: rate.NewLimiter(1, 10), replyLog: rate.NewLimiter(1, 10)}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if p.metrics == nil {
		p.metrics = NewMetrics(nil)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.config == nil {
		p.config = func() *Config { return nil }
	}
	p.answers = answerer{store: o.Store, metrics: p.metrics}
	return p
}

// wake tells the Silencer a silence is due.
func (p *Processor) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Process acts on the events of one callback, in order. key identifies
// the callback (the hash of its body): it makes each answer queued for
// its events happen once, should the provider send the body again after
// an error. An error is the store's: the rest of the events were not
// handled, and the caller answers 503 so the provider retries.
func (p *Processor) Process(ctx context.Context, cfg *Config, key string, events []sms.Event) error {
	for i, ev := range events {
		var err error
		switch ev.Kind {
		case sms.EventStatus:
			p.metrics.events.WithLabelValues("status").Inc()
			err = p.receipt(ctx, cfg, ev)
		case sms.EventReply:
			p.metrics.events.WithLabelValues("reply").Inc()
			err = p.reply(ctx, cfg, fmt.Sprintf("reply/%s/%d", key, i), ev)
		default:
			p.metrics.events.WithLabelValues("unknown").Inc()
			p.logger.Debug("callback event ignored: a type or number the bridge cannot use", "type", truncate(ev.Type, 40))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// receipt records a delivery status on the message it belongs to, and
// sends a failed one's text to the receiver's on_undelivered.
func (p *Processor) receipt(ctx context.Context, cfg *Config, ev sms.Event) error {
	status, label := "", ReceiptOther
	switch {
	case ev.Failed:
		status, label = outbox.ReceiptFailed, ReceiptFailed
	case strings.EqualFold(ev.Status, "delivered"):
		status, label = outbox.ReceiptDelivered, ReceiptDelivered
	}
	now := p.now()
	m, err := p.store.RecordReceipt(ctx, now, outbox.Receipt{Number: ev.Number, Status: status, Word: truncate(ev.Status, 64),
		At: ev.At, Window: cfg.MatchWindow})
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		p.metrics.unmatched.Inc()
		p.logger.Debug("delivery receipt for no outstanding message; ignored", "number", sms.MaskNumber(ev.Number), "status", ev.Status)
		return nil
	case err != nil:
		return fmt.Errorf("record a delivery receipt: %w", err)
	}
	p.metrics.receipts.WithLabelValues(label).Inc()
	d := m.Delivery
	if status != outbox.ReceiptFailed {
		p.logger.Debug("delivery receipt", "delivery", d.ID, "number", sms.MaskNumber(d.Number), "status", ev.Status)
		return nil
	}
	p.logger.Warn("the provider reports an sms undelivered to the handset", "delivery", d.ID, "notification", d.NotificationID,
		"receiver", d.Receiver, "number", who(d.Person, d.Number), "status", ev.Status)
	return p.failover(ctx, cfg, m, now)
}

// failover sends the text a handset did not get, once, to the
// receiver's on_undelivered, with a reply code of its own. A failover is
// not failed over again: one hop, so two receivers naming each other do
// not ping-pong.
func (p *Processor) failover(ctx context.Context, cfg *Config, m outbox.ReceiptMatch, now time.Time) error {
	d := m.Delivery
	if d.FailoverOf != 0 || cfg.Failover == nil {
		return nil
	}
	target, members := cfg.Failover(d.Receiver, now)
	if target == "" {
		return nil
	}
	// Whoever the page reached already does not get it twice.
	had, err := p.store.Deliveries(ctx, outbox.Filter{NotificationID: d.NotificationID, Limit: 1000})
	if err != nil {
		return fmt.Errorf("read the deliveries of notification %d: %w", d.NotificationID, err)
	}
	var numbers, people []string
	for _, mb := range members {
		if !slices.ContainsFunc(had, func(r outbox.Record) bool { return r.Number == mb.Number }) {
			numbers, people = append(numbers, mb.Number), append(people, mb.Name)
		}
	}
	if len(numbers) == 0 {
		p.logger.Error("an undelivered sms has nobody to fail over to: its on_undelivered receiver pages nobody the page missed",
			"delivery", d.ID, "receiver", d.Receiver, "on_undelivered", target)
		return nil
	}
	res, err := p.store.Enqueue(ctx, outbox.Notification{
		Source: d.Source, GroupKey: d.GroupKey, Status: d.Status, AlertName: d.AlertName, AckLabels: m.AckLabels,
		OnceKey: fmt.Sprintf("failover/%d", d.ID),
		Messages: []outbox.Message{{Receiver: target, Text: m.Template, Segments: d.Segments, Numbers: numbers, People: people,
			Critical: d.Critical, ReplyCode: strings.Contains(m.Template, outbox.ReplyCodePlaceholder), FailoverOf: d.ID}},
	})
	if err != nil {
		return fmt.Errorf("queue the failover of delivery %d: %w", d.ID, err)
	}
	if res.Outcome == outbox.OutcomeDuplicate {
		return nil
	}
	p.metrics.failovers.Inc()
	p.logger.Warn("undelivered sms sent to the receiver's on_undelivered", "delivery", d.ID, "receiver", d.Receiver,
		"on_undelivered", target, "numbers", len(numbers), "notification", res.ID)
	return nil
}

// reply acts on one reply. key makes its answers happen once.
func (p *Processor) reply(ctx context.Context, cfg *Config, key string, ev sms.Event) error {
	number := ev.Number
	cmd := ParseReply(ev.Text)
	name, configured := cfg.lookup(number)
	now := p.now()
	switch cmd.Kind {
	case Stop, Start:
		// Only a number the bridge pages (the rule replies follow) can
		// opt out: a STOP from any other number is a hole in nothing,
		// and must not raise the alarm of one.
		known := configured
		if !known {
			targets, err := p.store.ReplyTargets(ctx, number, now.Add(-outbox.ReplyCodeLifetime))
			if err != nil {
				return fmt.Errorf("read what was sent to the number: %w", err)
			}
			known = len(targets) > 0
		}
		if cmd.Kind == Stop {
			return p.stop(ctx, number, name, known, now)
		}
		return p.start(ctx, number, name, configured, known, key, now)
	}
	if !cfg.Replies {
		p.metrics.replies.WithLabelValues(ResultIgnored).Inc()
		p.logger.Debug("reply ignored: replies.enabled is off", "number", who(name, number))
		return nil
	}
	known := configured
	var targets []outbox.ReplyTarget
	if !known || cmd.Kind == AckAll {
		var err error
		if targets, err = p.store.ReplyTargets(ctx, number, now.Add(-outbox.ReplyCodeLifetime)); err != nil {
			return fmt.Errorf("read what was sent to the number: %w", err)
		}
		known = known || len(targets) > 0
	}
	if !known {
		// Someone the bridge never paged: no answer, so a stranger (or a
		// spoofed sender id) cannot make it send SMS.
		p.metrics.replies.WithLabelValues(ResultUnknownNumber).Inc()
		p.replyLogged(now, "reply from a number the bridge does not page; not answered", "number", sms.MaskNumber(number))
		return nil
	}
	switch cmd.Kind {
	case Ack:
		t, err := p.store.ReplyCode(ctx, number, cmd.Code, now)
		if errors.Is(err, outbox.ErrNotFound) {
			p.metrics.replies.WithLabelValues(ResultBadCode).Inc()
			sent, err := p.answers.limited(ctx, now, number, name, badCodeText(cmd.Code), "help: unknown code", key+"/answer")
			if err != nil {
				return err
			}
			p.replyLogged(now, "reply with a code not sent to the number; "+answered(sent, "answered with help"), "number", who(name, number),
				"code", cmd.Code)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the reply code: %w", err)
		}
		return p.ack(ctx, cfg, number, name, []outbox.ReplyTarget{t}, cfg.ackFor(cmd.Duration), key, ResultAck)
	case AckAll:
		open := slices.DeleteFunc(targets, func(t outbox.ReplyTarget) bool { return !t.GroupOpen })
		if len(open) == 0 {
			p.metrics.replies.WithLabelValues(ResultNothingOpen).Inc()
			_, err := p.answers.limited(ctx, now, number, name, nothingOpenText, "answer: nothing open", key+"/answer")
			return err
		}
		return p.ack(ctx, cfg, number, name, open, cfg.ackFor(cmd.Duration), key, ResultAckAll)
	}
	p.metrics.replies.WithLabelValues(ResultJunk).Inc()
	sent, err := p.answers.limited(ctx, now, number, name, helpText, "help", key+"/answer")
	if err != nil {
		return err
	}
	p.replyLogged(now, "reply the bridge cannot read; "+answered(sent, "answered with help"), "number", who(name, number))
	return nil
}

// answered says what became of the answer to a reply: how (when it was
// queued), or that the number's limit of answers held it back.
func answered(sent bool, how string) string {
	if sent {
		return how
	}
	return "not answered: the answer limit for this number is reached"
}

// replyLogged logs an info line about a reply that is not an action,
// within a budget like optLogged's.
func (p *Processor) replyLogged(now time.Time, msg string, attrs ...any) {
	budgetLogged(p.logger, p.replyLog, &p.replySuppressed, now, slog.LevelInfo, msg, attrs...)
}

// stop opts number out, if the bridge pages it (known): nothing is sent
// to it until it replies START. Any other number's STOP is counted and
// ignored: nothing is sent to it anyway.
func (p *Processor) stop(ctx context.Context, number, name string, known bool, now time.Time) error {
	if !known {
		p.metrics.replies.WithLabelValues(ResultUnknownNumber).Inc()
		p.logger.Debug("STOP from a number the bridge does not page; ignored", "number", sms.MaskNumber(number))
		return nil
	}
	changed, failed, err := p.store.SetOptOut(ctx, number, true, now)
	if err != nil {
		return err
	}
	p.metrics.replies.WithLabelValues(ResultStop).Inc()
	if p.countFailed != nil {
		p.countFailed(outbox.CodeOptedOut, failed)
	}
	if changed {
		p.optLogged(now, slog.LevelError, "a number replied STOP: it gets no SMS, pages included, until it replies START",
			"number", who(name, number), "failed_deliveries", failed)
	}
	return nil
}

// optLogged logs a line of STOP or START within a budget: a line a second
// at most (bursts of 10), the next one saying how many were left out. The
// banner and smsbridge_opted_out_numbers still show every opt-out.
func (p *Processor) optLogged(now time.Time, level slog.Level, msg string, attrs ...any) {
	budgetLogged(p.logger, p.optLog, &p.optSuppressed, now, level, msg, attrs...)
}

// budgetLogged logs a line if lim allows one at now, with how many lines
// suppressed counted since the last one; otherwise it counts it.
func budgetLogged(logger *slog.Logger, lim *rate.Limiter, suppressed *atomic.Int64, now time.Time, level slog.Level, msg string, attrs ...any) {
	if !lim.AllowN(now, 1) {
		suppressed.Add(1)
		return
	}
	if n := suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	logger.Log(context.Background(), level, msg, attrs...)
}

// start opts number back in and, if the configuration pages it, says
// so. A number the bridge no longer pages (not known) is opted back in
// too when it had opted out, so its opt-out does not outlive it; otherwise
// its START is counted as from an unknown number and ignored.
func (p *Processor) start(ctx context.Context, number, name string, configured, known bool, key string, now time.Time) error {
	changed, _, err := p.store.SetOptOut(ctx, number, false, now)
	if err != nil {
		return err
	}
	if !known && !changed {
		p.metrics.replies.WithLabelValues(ResultUnknownNumber).Inc()
		p.logger.Debug("START from a number the bridge does not page; ignored", "number", sms.MaskNumber(number))
		return nil
	}
	p.metrics.replies.WithLabelValues(ResultStart).Inc()
	if !changed {
		return nil
	}
	p.optLogged(now, slog.LevelWarn, "a number replied START: it gets SMS again", "number", who(name, number))
	if !configured {
		return nil
	}
	// Within the limit of answers: a phone (or an auto-responder) that
	// alternates STOP and START must not make the bridge text it without
	// end. A STOP is not answered at all.
	_, err = p.answers.limited(ctx, now, number, name, startText, "answer: START", key+"/answer")
	return err
}

// ack acknowledges each target's group for d, as number (called name)
// replied, and answers: for one group, the sender (unless its silence is
// pending: the Silencer answers then) and each other recipient; for
// several (ACK ALL), one summary to the sender and one message to each
// other recipient, whatever the number of groups, so the reply meant to
// quiet a storm does not start one.
func (p *Processor) ack(ctx context.Context, cfg *Config, number, name string, targets []outbox.ReplyTarget, d time.Duration, key, result string) error {
	now := p.now()
	var already []outbox.Ack
	var done []acked
	// The Silencer is woken once every acknowledgement is recorded (and,
	// for several, marked as answered by the summary).
	pending := false
	defer func() {
		if pending {
			p.wake()
		}
	}()
	for i, t := range targets {
		person := t.Person
		if person == "" {
			person = name
		}
		silence, why := outbox.SilencePending, ""
		switch {
		case t.Source != alert.SourceAlertmanager:
			silence, why = outbox.SilenceNone, "not an Alertmanager alert"
		case cfg.Alertmanager == nil:
			silence, why = outbox.SilenceNone, "alertmanager_api is not configured"
		case len(t.AckLabels) == 0:
			silence, why = outbox.SilenceNone, "the group has no labels to match"
		}
		a, ok, err := p.store.Acknowledge(ctx, outbox.Ack{GroupKey: t.GroupKey, NotificationID: t.NotificationID, Source: t.Source,
			AlertName: t.AlertName, Number: number, Person: person, Code: t.Code, At: now, Until: now.Add(d), Labels: t.AckLabels, Silence: silence})
		if err != nil {
			return fmt.Errorf("record an acknowledgement: %w", err)
		}
		if !ok {
			already = append(already, a)
			continue
		}
		p.logger.Info("acknowledged by sms", "group_key", a.GroupKey, "alertname", a.AlertName, "code", a.Code, "by", who(person, number),
			"until", a.Until.UTC().Format(time.RFC3339), "silence", string(a.Silence), "reason", why)
		if p.onAck != nil {
			p.onAck(a)
		}
		pending = pending || silence == outbox.SilencePending
		done = append(done, acked{index: i, ack: a, why: why, numbers: t.Numbers})
	}
	switch {
	case len(done) == 1:
		if err := p.answerOne(ctx, cfg, number, name, done[0], key); err != nil {
			return err
		}
	case len(done) > 1:
		if err := p.answerMany(ctx, cfg, number, name, done, d, key, now); err != nil {
			return err
		}
	}
	if len(done) > 0 || len(already) == 0 {
		p.metrics.replies.WithLabelValues(result).Inc()
		return nil
	}
	p.metrics.replies.WithLabelValues(ResultAlreadyAcked).Inc()
	_, err := p.answers.limited(ctx, now, number, name, alreadyText(already[0], now), "answer: already acked", key+"/answer")
	return err
}

// acked is one acknowledgement a reply recorded: index is its target's
// place in the reply's targets, numbers the numbers its page was sent to.
type acked struct {
	index   int
	ack     outbox.Ack
	why     string
	numbers []string
}

// answerOne answers the acknowledgement of one group: the sender (unless
// its silence is pending: the Silencer answers once it tried) and the
// page's other recipients.
func (p *Processor) answerOne(ctx context.Context, cfg *Config, number, name string, d acked, key string) error {
	a, k := d.ack, fmt.Sprintf("%s/%d", key, d.index)
	if a.Silence != outbox.SilencePending {
		if err := p.answers.send(ctx, []string{number}, []string{name}, noSilenceText(a, d.why), fmt.Sprintf("answer: ACK %d", a.Code), k+"/answer"); err != nil {
			return err
		}
	}
	if !cfg.NotifyOthers {
		return nil
	}
	var others, people []string
	for _, n := range d.numbers {
		if n != number {
			other, _ := cfg.lookup(n)
			others = append(others, n)
			people = append(people, other)
		}
	}
	return p.answers.send(ctx, others, people, othersText(a), fmt.Sprintf("acked by %s", who(a.Person, number)), k+"/others")
}

// answerMany answers the acknowledgement of several groups by one reply
// (ACK ALL): one summary to the sender, and to each other recipient one
// message naming the groups of theirs that were acknowledged. The
// Silencer does not confirm these silences one by one (see
// batchAckKey): the summary says they are pending.
func (p *Processor) answerMany(ctx context.Context, cfg *Config, number, name string, done []acked, d time.Duration, key string, now time.Time) error {
	acks := make([]outbox.Ack, len(done))
	var whys []string
	for i, x := range done {
		acks[i] = x.ack
		if x.ack.Silence == outbox.SilencePending {
			if _, err := p.store.Claim(ctx, batchAckKey(x.ack.ID), now, d+answersPer); err != nil {
				return fmt.Errorf("mark an acknowledgement answered: %w", err)
			}
		} else if !slices.Contains(whys, x.why) {
			whys = append(whys, x.why)
		}
	}
	if err := p.answers.send(ctx, []string{number}, []string{name}, summaryText(acks, d, whys), fmt.Sprintf("answer: ACK ALL (%d groups)", len(acks)),
		key+"/answer"); err != nil {
		return err
	}
	if !cfg.NotifyOthers {
		return nil
	}
	// Each other recipient once, with the groups they were sent; those
	// sent the same groups share a message.
	var others []string
	theirs := map[string][]outbox.Ack{}
	for _, x := range done {
		for _, n := range x.numbers {
			if n == number {
				continue
			}
			if _, ok := theirs[n]; !ok {
				others = append(others, n)
			}
			theirs[n] = append(theirs[n], x.ack)
		}
	}
	var texts []string
	byText := map[string][]string{}
	for _, n := range others {
		text := othersManyText(theirs[n], who(done[0].ack.Person, number), d)
		if _, ok := byText[text]; !ok {
			texts = append(texts, text)
		}
		byText[text] = append(byText[text], n)
	}
	for i, text := range texts {
		numbers := byText[text]
		people := make([]string, len(numbers))
		for j, n := range numbers {
			people[j], _ = cfg.lookup(n)
		}
		if err := p.answers.send(ctx, numbers, people, text, fmt.Sprintf("acked by %s", who(done[0].ack.Person, number)),
			fmt.Sprintf("%s/others/%d", key, i)); err != nil {
			return err
		}
	}
	return nil
}

// batchAckKey is the claim that marks an acknowledgement as one of
// several a reply recorded: its sender was answered with a summary, so
// the Silencer does not confirm its silence on its own.
func batchAckKey(id int64) string { return fmt.Sprintf("ack-batch/%d", id) }

// truncate cuts s to n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
