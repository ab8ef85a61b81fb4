package templates

import (
	"fmt"
	"strings"
	"time"
)

// Names of the digest templates.
const (
	DigestTemplate     = "sms.digest"
	DigestItemTemplate = "sms.digest.item"
)

// DigestData is what sms.digest executes against: the deliveries held for
// one number, as many listed as fit.
type DigestData struct {
	// Count is how many deliveries the digest stands for.
	Count int
	// Items are those listed, oldest first.
	Items []DigestItem
	// More is how many are not listed.
	More int
}

// DigestItem is one held delivery.
type DigestItem struct {
	// Summary is its sms.digest.item line, rendered when it arrived.
	Summary string
	// Status is "firing" or "resolved".
	Status     string
	Text       string
	Receiver   string
	Source     string
	ReceivedAt time.Time
}

// Summary renders the sms.digest.item line of one receiver's view of a
// notification, on one line. A failing template is counted for receiver
// and logged, and the built-in one's line is used.
func (r *Renderer) Summary(receiver string, d *Data) string {
	tmpl := invoke(DigestItemTemplate)
	text, err := r.user(tmpl, d)
	if err != nil {
		r.failed(receiver, d.Source, d.GroupKey, err)
		if text, err = r.builtin(tmpl, d); err != nil {
			text = strings.ToUpper(d.Status)
		}
	}
	return strings.Join(strings.Fields(text), " ")
}

// Digest renders sms.digest for items, listing as many (oldest first) as
// fit in maxSegments (DefaultMaxSegments when 0 or less) and counting the
// rest as "+N more", and returns the text and its segments. A failing
// template is counted for receiver and logged, and the built-in one is
// used; if even that fails, a plain "N held" is.
func (r *Renderer) Digest(receiver string, items []DigestItem, maxSegments int) (string, int) {
	if maxSegments <= 0 {
		maxSegments = DefaultMaxSegments
	}
	execute := r.user
	render := func(k int) (string, error) {
		return execute(invoke(DigestTemplate), &DigestData{Count: len(items), Items: items[:k], More: len(items) - k})
	}
	if _, err := render(0); err != nil {
		r.failed(receiver, "digest", "", err)
		execute = r.builtin
		if _, err := render(0); err != nil {
			return r.Plain(fmt.Sprintf("%d held", len(items)), maxSegments)
		}
	}
	// The largest k whose text fits: texts grow with k, so search.
	lo, hi := 0, len(items)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if text, err := render(mid); err == nil && Segments(text) <= maxSegments {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	text, err := render(lo)
	if err != nil {
		text = fmt.Sprintf("%d held", len(items))
	}
	return r.Plain(text, maxSegments)
}

// failed counts and logs a template failure for receiver, with its
// reason (an error, or a render limit).
func (r *Renderer) failed(receiver, source, groupKey string, err error) {
	reason := reasonOf(err)
	if r.metrics != nil {
		r.metrics.errors.WithLabelValues(receiver, reason).Inc()
	}
	r.logger.Warn("template failed, using the built-in one instead", "receiver", receiver, "intake_source", source, "group_key", groupKey, "reason", reason, "err", err)
}

// checkDigest executes the digest templates against sample data, so a
// redefinition that fails is a configuration error at load.
func (r *Renderer) checkDigest(am *Data) error {
	if _, err := r.all.execute(invoke(DigestItemTemplate), am, r.limits, &r.runaway); err != nil {
		return fmt.Errorf("template %s: %w", DigestItemTemplate, err)
	}
	sample := &DigestData{Count: 3, More: 1, Items: []DigestItem{
		{Summary: "FIRING HighDiskUsage db-01", Status: "firing", Text: "FIRING:1 HighDiskUsage", Receiver: "ops", Source: "alertmanager", ReceivedAt: am.ReceivedAt},
		{Summary: "RESOLVED NodeDown n3", Status: "resolved", Text: "RESOLVED:1 NodeDown", Receiver: "ops", Source: "alertmanager", ReceivedAt: am.ReceivedAt},
	}}
	if _, err := r.all.execute(invoke(DigestTemplate), sample, r.limits, &r.runaway); err != nil {
		return fmt.Errorf("template %s: %w", DigestTemplate, err)
	}
	return nil
}
