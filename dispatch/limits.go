package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// ReasonBudgetExhausted: the day's segment budget was spent and the
// delivery was not critical.
const ReasonBudgetExhausted = outbox.ReasonBudgetExhausted

// Limits are the noise controls the dispatcher applies when it is about
// to send: the per-number throttle and the daily segment budget, decided
// by the store's Admit for each leased batch, so that what counts is what
// was sent (in flight or accepted) to the number, and what is billed. The
// zero value limits nothing.
type Limits struct {
	// Throttle are the per-number buckets.
	Throttle []outbox.Bucket
	// DailySegments is the day's budget; 0 for none.
	DailySegments int
	// Location is where the budget's day starts at midnight; nil is UTC.
	Location *time.Location
	// Digest renders the one SMS a number gets for what was held for it.
	// Held deliveries are released whatever the limits in force, so it
	// is needed even without a throttle; nil falls back to a plain text.
	Digest outbox.DigestFunc
}

// at is what Admit applies at now.
func (l Limits) at(now time.Time) outbox.Limits {
	out := outbox.Limits{Throttle: l.Throttle}
	if l.DailySegments > 0 {
		out.Budget = outbox.Budget{Day: Day(now, l.Location), Limit: l.DailySegments}
	}
	return out
}

// Day is the budget's day at now: the date at loc (UTC when nil). It
// changes at local midnight, so a day across a DST change has 23 or 25
// hours, as the people paying for it count them.
func Day(now time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return now.In(loc).Format(time.DateOnly)
}

// admit has the store decide which rows of b go now and returns b with
// only those, counting and logging the rest.
func (d *Dispatcher) admit(ctx context.Context, now time.Time, b outbox.Batch, lim outbox.Limits) (outbox.Batch, error) {
	adm, err := d.store.Admit(ctx, now, b.Deliveries, lim)
	if err != nil {
		return outbox.Batch{}, fmt.Errorf("admit a batch: %w", err)
	}
	if len(adm.Held) > 0 {
		held := setAsideRows(adm.Held)
		for _, dl := range held {
			d.m.throttled.WithLabelValues(dl.Receiver).Inc()
		}
		d.logger.Info("sms held: the number had its fill of the per-number throttle; it gets a digest when it may receive again",
			"receivers", receivers(held), "notifications", notifications(held), "numbers", mask(held),
			"until", adm.Held[0].Until.Format(time.RFC3339))
	}
	if len(adm.Deferred) > 0 {
		d.logger.Debug("digest waits: its number is still full", "numbers", mask(setAsideRows(adm.Deferred)),
			"until", adm.Deferred[0].Until.Format(time.RFC3339))
	}
	if len(adm.Failed) > 0 {
		failed := setAsideRows(adm.Failed)
		for _, dl := range failed {
			d.m.failed.WithLabelValues(ReasonBudgetExhausted).Inc()
			d.m.receiverFailed.WithLabelValues(dl.Receiver).Inc()
		}
		d.logger.Error("sms failed for good: the daily segment budget is spent and the messages are not critical",
			"receivers", receivers(failed), "notifications", notifications(failed), "numbers", mask(failed),
			"day", lim.Budget.Day, "daily_segments", lim.Budget.Limit, "used", adm.BudgetUsed)
	}
	if lim.Budget.Limit > 0 {
		d.budgetCrossed(lim.Budget, adm.BudgetUsed)
	}
	b.Deliveries = adm.Send
	return b, nil
}

func setAsideRows(sa []outbox.SetAside) []outbox.Delivery {
	out := make([]outbox.Delivery, len(sa))
	for i, s := range sa {
		out[i] = s.Delivery
	}
	return out
}

// budgetLevel is the last share of a day's budget logged, per process.
type budgetLevel struct {
	day     string
	percent int
}

// budgetCrossed logs once per day when 80% and when 100% of the budget
// are spent.
func (d *Dispatcher) budgetCrossed(b outbox.Budget, used int) {
	level := 0
	switch {
	case used >= b.Limit:
		level = 100
	case used*10 >= b.Limit*8:
		level = 80
	}
	d.mu.Lock()
	prev := d.budgetLog
	if prev.day != b.Day {
		prev = budgetLevel{day: b.Day}
	}
	crossed := level > prev.percent
	if crossed {
		d.budgetLog = budgetLevel{day: b.Day, percent: level}
	}
	d.mu.Unlock()
	if !crossed {
		return
	}
	attrs := []any{"day", b.Day, "used", used, "daily_segments", b.Limit, "remaining", max(0, b.Limit-used)}
	if level == 100 {
		d.logger.Error("the daily sms budget is spent: only critical messages are sent until midnight", attrs...)
		return
	}
	d.logger.Warn("80% of the daily sms budget is spent", attrs...)
}

// releaseBatches bounds the Release calls one step makes.
const releaseBatches = 10

// release ends the holds that are due: each number's held deliveries go
// out as one digest (or as themselves, when only one was held).
func (d *Dispatcher) release(ctx context.Context, now time.Time, lim Limits) error {
	digest := lim.Digest
	if digest == nil {
		digest = plainDigest
	}
	for range releaseBatches {
		rel, err := d.store.Release(ctx, now, digest)
		if err != nil {
			return fmt.Errorf("release held deliveries: %w", err)
		}
		for _, r := range rel {
			if r.Digest == 0 {
				d.logger.Info("held sms released: the number may receive again", "number", sms.MaskNumber(r.Number),
					"receivers", r.Receivers, "deliveries", r.Deliveries)
				continue
			}
			d.logger.Info("held sms bundled into one digest: the number may receive again", "number", sms.MaskNumber(r.Number),
				"receivers", r.Receivers, "bundled", len(r.Deliveries), "digest", r.Digest)
		}
		if len(rel) < 100 {
			return nil
		}
	}
	return nil
}

// plainDigest is the digest when no renderer is configured: the count and
// each line, in one text.
func plainDigest(held []outbox.Record) (outbox.Message, error) {
	text := fmt.Sprintf("%d held:", len(held))
	for i, r := range held {
		if i > 0 {
			text += ";"
		}
		text += " " + cmpOr(r.Summary, r.Status)
	}
	return outbox.Message{Receiver: held[0].Receiver, Text: text, Segments: 1}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// budgetCollector reads the day's budget from the store at scrape time, so
// replicas sharing a store report the same figures.
type budgetCollector struct {
	used, remaining *prometheus.Desc
	source          func(ctx context.Context) (used, limit int, ok bool)
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.used
	ch <- c.remaining
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	if c.source == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	used, limit, ok := c.source(ctx)
	if !ok {
		return // no budget configured, or the store failed (logged): a gap, not a zero
	}
	ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(used))
	ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, float64(max(0, limit-used)))
}

// budgetNow is the budget collector's source.
func (d *Dispatcher) budgetNow(ctx context.Context) (used, limit int, ok bool) {
	s := d.settings()
	lim := s.Limits.at(d.now())
	if lim.Budget.Limit <= 0 {
		return 0, 0, false
	}
	used, err := d.store.BudgetUsed(ctx, lim.Budget.Day)
	if err != nil {
		d.logger.Error("read the day's sms budget for metrics", "err", err)
		return 0, 0, false
	}
	return used, lim.Budget.Limit, true
}
