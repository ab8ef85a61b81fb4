package generation

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/pipeline"
	"github.com/smsbridge/smsbridge/templates"
)

// stages returns the given stages without the nil ones (a control that is
// not configured), in order.
func stages(all ...pipeline.Stage) []pipeline.Stage {
	var out []pipeline.Stage
	for _, s := range all {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// dedup is duplicate suppression; always on (dedup.window has a default).
func (b *builder) dedup() pipeline.Stage {
	return pipeline.Dedup{Window: time.Duration(b.c.Dedup.Window)}
}

// throttle marks messages for the per-number throttle; nil without one.
func (b *builder) throttle(g *Generation) pipeline.Stage {
	if len(b.c.Throttle.PerNumber) == 0 {
		return nil
	}
	r := g.Renderer
	return pipeline.Throttle{Summary: func(receiver string, n *alert.Notification) string {
		return r.Summary(receiver, templates.NewData(n))
	}}
}

// budget marks critical messages; nil without a budget.
func (b *builder) budget() pipeline.Stage {
	bg := b.c.Budget
	if bg.DailySegments == 0 {
		return nil
	}
	var critical labels.Matchers
	for i, e := range bg.Critical {
		at := fmt.Sprintf("budget.critical[%d]", i)
		ms, err := labels.ParseMatchers(e)
		switch {
		case err != nil:
			b.errorf(at, "%s: bad matcher %q: %w", at, e, err)
		case len(ms) == 0:
			b.errorf(at, "%s: bad matcher %q: no label matcher in it", at, e)
		default:
			critical = append(critical, ms...)
		}
	}
	return pipeline.Budget{Critical: critical}
}

// limits are the dispatcher's noise controls, with the digest renderer:
// held deliveries are released even after the throttle is configured
// away, so the renderer is set whenever there is one.
func (b *builder) limits(g *Generation) dispatch.Limits {
	var l dispatch.Limits
	for _, bk := range b.c.Throttle.PerNumber {
		l.Throttle = append(l.Throttle, outbox.Bucket{Count: bk.Count, Per: time.Duration(bk.Per)})
	}
	if bg := b.c.Budget; bg.DailySegments > 0 {
		loc, err := bg.Location()
		if err != nil {
			// config checked it; a failure here is a bug, but say where.
			b.errorf("budget.time_zone", "budget.time_zone: %w", err)
		}
		l.DailySegments, l.Location = bg.DailySegments, loc
	}
	if g.Renderer != nil && g.Router != nil {
		l.Digest = digest(g)
	}
	return l
}

// digest renders the digest of one number's held deliveries with
// sms.digest, fitted to the max segments of the first one's receiver.
func digest(g *Generation) outbox.DigestFunc {
	r, router, maxSeg := g.Renderer, g.Router, g.File.Config.SMS.MaxSegments
	return func(held []outbox.Record) (outbox.Message, error) {
		if len(held) == 0 {
			return outbox.Message{}, errors.New("digest of nothing")
		}
		rcv := held[0].Receiver
		segments := maxSeg
		if rr, ok := router.Receiver(rcv); ok {
			segments = rr.MaxSegments
		}
		items := make([]templates.DigestItem, len(held))
		for i, h := range held {
			items[i] = templates.DigestItem{Summary: h.Summary, Status: h.Status, Text: h.Text, Receiver: h.Receiver,
				Source: h.Source, ReceivedAt: h.ReceivedAt}
		}
		text, segs := r.Digest(rcv, items, segments)
		return outbox.Message{Receiver: rcv, Text: text, Segments: segs}, nil
	}
}
