package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

// Reasons an entry of a plan sends nothing.
const (
	SkipNoNumbers = "the receiver has no numbers"
	SkipResolved  = "its alerts are resolved and the receiver has send_resolved: false"
)

// Plan is every receiver a notification reaches, in routing order, with
// its numbers and exact text, or why it gets nothing.
type Plan struct {
	Entries []Entry
	// At is the instant the plan was made for: who was on call then, and
	// what the time-interval stages judge.
	At time.Time
}

// Entry is what one receiver gets.
type Entry struct {
	Receiver *routing.ResolvedReceiver
	// Routes are the routes that reached the receiver.
	Routes []*routing.Node
	// Alerts counts the alerts the text is about.
	Alerts   int
	Text     string
	Segments int
	// Numbers are the receiver's numbers, in full: its own, then whoever
	// was on call on its lists at the plan's time.
	Numbers []string
	// People are, for each of Numbers, the name of the person it belongs
	// to, or "".
	People []string
	// Skipped says why the receiver gets nothing; empty when it gets Text.
	Skipped string
	// Notification is the notification as the receiver sees it: only its
	// own alerts (send_resolved applied, muted ones left out), as its
	// text was rendered from; nil when the plan itself skipped the
	// receiver.
	Notification *alert.Notification
	// Marks are what the stages noted for the entry's stored message.
	Marks Marks

	// alerts are the indexes (into the notification's alerts) of the
	// alerts the text is about, and alertRoutes the routes that sent each
	// of them to the receiver, for stages that judge by route.
	alerts      []int
	alertRoutes [][]*routing.Node
}

// Marks are what the stages note about one entry for the store: the
// guards it evaluates with the write and the flags the dispatcher reads at
// send time (see outbox.Message).
type Marks struct {
	DedupKey    string
	Alerts      []outbox.AlertRef
	Unthrottled bool
	Critical    bool
	Summary     string
	// Escalate are the receiver's escalation steps, for the store to
	// schedule with the page.
	Escalate []outbox.EscalationPlan
}

// Plan routes every alert of n and renders one text per receiver, with the
// alerts that reached that receiver, as Alertmanager would notify it, to
// whoever is on call now (the pipeline's clock). Nothing is sent or
// stored.
func (p *Pipeline) Plan(n *alert.Notification) *Plan {
	return p.PlanAt(n, p.now())
}

// PlanAt is Plan as if it were at: the on-call lists are resolved then.
func (p *Pipeline) PlanAt(n *alert.Notification, at time.Time) *Plan {
	pl := &Plan{At: at}
	// Receivers that share a template, a segment limit and alerts get the
	// same text: it is rendered once (an alert routed to three receivers
	// is one render, not three).
	var done []rendered
	for _, t := range p.router.Route(n.RouteLabels()) {
		rcv := t.Receiver
		e := Entry{Receiver: rcv, Routes: t.Nodes}
		var alerts template.Alerts
		for k, i := range t.Alerts {
			a := n.Data.Alerts[i]
			if a.Status == alert.StatusResolved && !rcv.SendResolved {
				continue
			}
			alerts = append(alerts, a)
			e.alerts = append(e.alerts, i)
			e.alertRoutes = append(e.alertRoutes, t.AlertNodes[k])
		}
		recipients := rcv.Recipients(at, p.overrides)
		switch {
		case len(recipients) == 0:
			e.Skipped = SkipNoNumbers
		case len(alerts) == 0:
			e.Skipped = SkipResolved
		default:
			e.Alerts = len(alerts)
			for _, m := range recipients {
				e.Numbers = append(e.Numbers, m.Number)
				e.People = append(e.People, m.Name)
			}
			e.Notification = n.Subset(alerts)
			k := slices.IndexFunc(done, func(r rendered) bool {
				return r.tmpl == rcv.Template && r.maxSeg == rcv.MaxSegments && slices.Equal(r.alerts, e.alerts)
			})
			if k >= 0 {
				e.Text, e.Segments = done[k].text, done[k].segs
			} else {
				e.Text, e.Segments = p.render(rcv, e.Notification)
				done = append(done, rendered{rcv.Template, rcv.MaxSegments, e.alerts, e.Text, e.Segments})
			}
		}
		pl.Entries = append(pl.Entries, e)
	}
	return pl
}

// rendered is one text PlanAt rendered, by what it depends on: the
// template, the segment limit and the alerts (indexes into the
// notification's); the receiver's name only labels a failed render's log
// line and metric.
type rendered struct {
	tmpl   string
	maxSeg int
	alerts []int
	text   string
	segs   int
}

// narrow renders entry i again with only the alerts whose positions (in
// the entry's alerts) are keep, for a stage that drops some of them. The
// marks an earlier stage derived from the alerts (the duplicate key, the
// instances for the stale check) are derived again from those kept, so
// they describe what is sent.
func (p *Pipeline) narrow(n *alert.Notification, e *Entry, keep []int) {
	var alerts template.Alerts
	var idx []int
	var routes [][]*routing.Node
	for _, k := range keep {
		alerts = append(alerts, n.Data.Alerts[e.alerts[k]])
		idx = append(idx, e.alerts[k])
		routes = append(routes, e.alertRoutes[k])
	}
	e.alerts, e.alertRoutes, e.Alerts = idx, routes, len(alerts)
	e.Notification = n.Subset(alerts)
	e.Text, e.Segments = p.render(e.Receiver, e.Notification)
	if e.Marks.DedupKey != "" {
		e.Marks.DedupKey = DedupKey(e.Receiver.Name, n.GroupKey, e.Notification.Data.Status, alerts)
	}
	if e.Marks.Alerts != nil {
		e.Marks.Alerts = nil
		if e.Notification.Data.Status == alert.StatusFiring {
			e.Marks.Alerts = refs(alerts)
		}
	}
}

func (p *Pipeline) render(rcv *routing.ResolvedReceiver, n *alert.Notification) (string, int) {
	maxSeg := rcv.MaxSegments
	data := templates.NewData(n)
	if p.replies != nil && n.Data.Status == alert.StatusFiring {
		// The store writes the code in place of the placeholder.
		data.Reply = templates.Reply{Code: outbox.ReplyCodePlaceholder}
		if n.Source == alert.SourceAlertmanager {
			data.Reply.Silence = p.replies.Silence
		}
	}
	text, segs, err := p.renderer.Render(rcv.Name, rcv.Template, data, maxSeg)
	if err != nil {
		// Even the default template failed: the page still goes out, plainly.
		p.logger.Error("render failed, sending a plain text", "receiver", rcv.Name, "intake_source", n.Source, "err", err)
		return p.renderer.Plain(fmt.Sprintf("%s: %s from %s", n.Data.Status, plural.Count(len(n.Data.Alerts), "alert", "alerts"), n.Source), maxSeg)
	}
	return text, segs
}

// Messages folds the entries that send something into outbox messages.
// Receivers that render the same text have their numbers merged, so no one
// gets the same page twice; a number that two receivers reach with
// different texts gets both, since they say different things.
func (pl *Plan) Messages() []outbox.Message {
	var out []outbox.Message
	byText := map[string]int{}
	for _, e := range pl.Entries {
		if e.Skipped != "" {
			continue
		}
		i, ok := byText[e.Text]
		if !ok {
			byText[e.Text] = len(out)
			out = append(out, outbox.Message{Receiver: e.Receiver.Name, Text: e.Text, Segments: e.Segments})
			i = len(out) - 1
		}
		for k, num := range e.Numbers {
			if slices.Contains(out[i].Numbers, num) {
				continue
			}
			out[i].Numbers = append(out[i].Numbers, num)
			person := ""
			if k < len(e.People) {
				person = e.People[k]
			}
			out[i].People = append(out[i].People, person)
		}
	}
	return out
}

// stored returns the messages Accept writes: one per entry that sends,
// with its marks. The store merges equal texts after evaluating each
// one's guards, since a guard may drop one receiver and keep another.
func (pl *Plan) stored() []outbox.Message {
	var out []outbox.Message
	for _, e := range pl.Entries {
		if e.Skipped != "" {
			continue
		}
		out = append(out, outbox.Message{
			Receiver: e.Receiver.Name, Text: e.Text, Segments: e.Segments, Numbers: slices.Clone(e.Numbers),
			People: slices.Clone(e.People), DedupKey: e.Marks.DedupKey, Alerts: e.Marks.Alerts, Unthrottled: e.Marks.Unthrottled,
			Critical: e.Marks.Critical, Summary: e.Marks.Summary, Escalate: slices.Clone(e.Marks.Escalate),
			ReplyCode: strings.Contains(e.Text, outbox.ReplyCodePlaceholder),
		})
	}
	return out
}

// Recipients counts the deliveries Messages would write.
func (pl *Plan) Recipients() int {
	n := 0
	for _, m := range pl.Messages() {
		n += len(m.Numbers)
	}
	return n
}
