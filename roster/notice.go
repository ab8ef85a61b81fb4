package roster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/templates"
)

// NoticeSource is the source of handoff notices in the outbox and on the
// status page.
const NoticeSource = "oncall"

// NoticeReceiver is the receiver name handoff notices of list are stored
// under (and counted by in the SMS metrics).
func NoticeReceiver(list string) string { return "handoff:" + list }

// CheckHandoffs queues a notice for each member who came on call, on a
// list with notify_handoff, at the last handoff before now (within
// MaxLate).
// Each notice is stored once whatever happens: its once key is the list,
// the handoff instant and the number.
func (r *Roster) CheckHandoffs(ctx context.Context, now time.Time) error {
	v := r.view()
	var errs []error
	for _, s := range v.Lists {
		if !s.NotifyHandoff {
			continue
		}
		rt := r.For(s.Name, v.Directory)
		hs := s.Handoffs(now.Add(-r.maxLate), now, rt)
		if len(hs) == 0 {
			continue
		}
		h := hs[len(hs)-1]
		for _, m := range h.Joining() {
			if err := r.notify(ctx, s, h, m, rt, now); err != nil {
				errs = append(errs, err)
			}
		}
	}
	r.forget(now)
	return errors.Join(errs...)
}

// notify queues the notice of handoff h to m, unless it is known to be
// stored.
func (r *Roster) notify(ctx context.Context, s *oncall.Schedule, h oncall.Handoff, m oncall.Member, rt []oncall.Override, now time.Time) error {
	key := fmt.Sprintf("handoff/%s/%d/%s", s.Name, h.At.Unix(), m.Number)
	r.mu.RLock()
	_, done := r.sent[key]
	r.mu.RUnlock()
	if done {
		return nil
	}
	until := s.OnCallUntil(m, h.At, rt)
	text := templates.Fit(NoticeText(s.Name, until, now, s.Location), 1)
	segs := templates.Segments(text)
	res, err := r.store.Enqueue(ctx, outbox.Notification{
		Source: NoticeSource, GroupKey: NoticeReceiver(s.Name), Status: "firing", OnceKey: key, AlertName: "on-call handoff",
		Messages: []outbox.Message{{Receiver: NoticeReceiver(s.Name), Text: text, Segments: segs,
			Numbers: []string{m.Number}, People: []string{m.Name}}},
	})
	if err != nil {
		return fmt.Errorf("queue the handoff notice of %s to %s: %w", s.Name, m.Format(sms.MaskNumber), err)
	}
	r.mu.Lock()
	r.sent[key] = h.At
	r.mu.Unlock()
	if res.Outcome == outbox.OutcomeDuplicate {
		return nil // queued before (a restart, or another replica)
	}
	r.metrics.notice(s.Name)
	r.logger.Info("handoff notice queued", "oncall", s.Name, "member", m.Format(sms.MaskNumber),
		"handoff", h.At.In(s.Location).Format(time.RFC3339), "until", formatUntil(until, s.Location), "id", res.ID)
	return nil
}

// forget drops the memory of notices whose handoff is too old to be
// looked at again.
func (r *Roster) forget(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, at := range r.sent {
		if at.Before(now.Add(-2 * r.maxLate)) {
			delete(r.sent, k)
		}
	}
}

// NoticeText is the handoff notice: "You are on call for db-primary until
// Mon 09:00", the end in the list's zone, with its date when it is six
// days or more after now; "until further notice" when no handoff comes
// within a year.
func NoticeText(list string, until, now time.Time, loc *time.Location) string {
	if until.IsZero() {
		return fmt.Sprintf("You are on call for %s until further notice", list)
	}
	layout := "Mon 15:04"
	if until.Sub(now) >= 6*24*time.Hour {
		layout = "Mon 2 Jan 15:04"
	}
	return fmt.Sprintf("You are on call for %s until %s", list, until.In(loc).Format(layout))
}

func formatUntil(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "none within a year"
	}
	return t.In(loc).Format(time.RFC3339)
}
