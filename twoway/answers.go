package twoway

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/templates"
)

// SourceReplies is the source of the answers the bridge sends to replies
// (confirmations, "acked by", help) in the outbox and on the status page;
// ReceiverReplies the receiver they are stored and counted under.
const (
	SourceReplies   = "replies"
	ReceiverReplies = "replies"
)

// Limits of answers to replies that are not actions (the reply-loop
// guard): two auto-responders answering each other stop here.
const (
	maxAnswers = 5
	answersPer = time.Hour
)

// answerSegments bounds an answer: they are short, and each costs.
const answerSegments = 1

// answerer queues answers through the outbox, like any SMS: durably,
// paced by the dispatcher, each once (its once key).
type answerer struct {
	store interface {
		Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error)
		Allow(ctx context.Context, key string, now time.Time, limit int, per time.Duration) (bool, error)
	}
	metrics *Metrics
}

// send queues text to numbers (each named by people, or ""), once per
// onceKey. what names the answer on the status page.
func (a answerer) send(ctx context.Context, numbers, people []string, text, what, onceKey string) error {
	if len(numbers) == 0 {
		return nil
	}
	text = templates.Fit(text, answerSegments)
	_, err := a.store.Enqueue(ctx, outbox.Notification{
		Source: SourceReplies, GroupKey: SourceReplies + ":" + numbers[0], Status: "firing", AlertName: what, OnceKey: onceKey,
		// The answer to someone's own reply: neither held by the
		// throttle nor refused by a spent budget (the reply-loop guard
		// bounds them).
		Messages: []outbox.Message{{Receiver: ReceiverReplies, Text: text, Segments: templates.Segments(text),
			Numbers: numbers, People: people, Unthrottled: true, Critical: true}},
	})
	if err != nil {
		return fmt.Errorf("queue an answer (%s): %w", what, err)
	}
	return nil
}

// limited sends an answer to a reply that is not an action, unless the
// number had its fill of those within the hour. It reports whether it
// was sent.
func (a answerer) limited(ctx context.Context, now time.Time, number, person, text, what, onceKey string) (bool, error) {
	ok, err := a.store.Allow(ctx, "answers/"+number, now, maxAnswers, answersPer)
	if err != nil {
		return false, fmt.Errorf("count answers: %w", err)
	}
	if !ok {
		a.metrics.suppressed.Inc()
		return false, nil
	}
	return true, a.send(ctx, []string{number}, []string{person}, text, what, onceKey)
}

// The texts. They name no number in full, and fit in one segment where
// they can: a group's description is cut first.

// helpText answers a reply the bridge cannot read.
const helpText = "smsbridge: reply ACK <code> (the code in the alert), ACK <code> 4h for longer, ACK ALL for everything open, or STOP."

func badCodeText(code int) string {
	c := fmt.Sprint(code)
	if code < 0 {
		c = "that"
	}
	return fmt.Sprintf("smsbridge: no alert with code %s was sent to this number in the last 24h. Reply ACK <code>, ACK ALL or STOP.", c)
}

const nothingOpenText = "smsbridge: nothing open to acknowledge: no firing alert was sent to this number in the last 24h."

const startText = "smsbridge: SMS alerts resume for this number."

func silencedText(a outbox.Ack, left time.Duration) string {
	return compose(describe(a), func(d string) string { return fmt.Sprintf("Silenced %s for %s (ACK %d)", d, human(left), a.Code) })
}

func pendingText(a outbox.Ack) string {
	return compose(describe(a), func(d string) string {
		return fmt.Sprintf("Ack recorded, silence pending (ACK %d): Alertmanager did not answer; retrying. %s", a.Code, d)
	})
}

func refusedText(a outbox.Ack, err error) string {
	return fmt.Sprintf("Ack recorded (ACK %d), but Alertmanager refused the silence of %s: %s", a.Code, describe(a), err)
}

func noSilenceText(a outbox.Ack, why string) string {
	return compose(describe(a), func(d string) string {
		return fmt.Sprintf("Acked %s for %s (ACK %d); no silence: %s", d, human(a.Until.Sub(a.At)), a.Code, why)
	})
}

func alreadyText(a outbox.Ack, now time.Time) string {
	return compose(describe(a), func(d string) string {
		return fmt.Sprintf("Already acked by %s, %s left (ACK %d): %s", who(a.Person, a.Number), human(a.Until.Sub(now)), a.Code, d)
	})
}

func othersText(a outbox.Ack) string {
	return compose(describe(a), func(d string) string {
		return fmt.Sprintf("%s acked by %s for %s", d, who(a.Person, a.Number), human(a.Until.Sub(a.At)))
	})
}

// summaryText answers a reply that acknowledged several groups (acks,
// each for d): how many, whether their silences are pending (whys are
// the reasons of those without one), and as many of their names as fit.
func summaryText(acks []outbox.Ack, d time.Duration, whys []string) string {
	pending := 0
	for _, a := range acks {
		if a.Silence == outbox.SilencePending {
			pending++
		}
	}
	head := fmt.Sprintf("Acked %d groups for %s", len(acks), human(d))
	switch {
	case pending == len(acks):
		head += " (silences pending)"
	case pending > 0:
		head += fmt.Sprintf(" (%d silences pending, %d without)", pending, len(acks)-pending)
	case len(whys) == 1:
		head += " (no silence: " + whys[0] + ")"
	default:
		head += " (no silences)"
	}
	return listText(head+": ", acks)
}

// othersManyText tells another recipient that by acknowledged acks, the
// groups of theirs one reply acknowledged, for d.
func othersManyText(acks []outbox.Ack, by string, d time.Duration) string {
	if len(acks) == 1 {
		return othersText(acks[0])
	}
	return listText(fmt.Sprintf("%d groups acked by %s for %s: ", len(acks), by, human(d)), acks)
}

// listText is head followed by the names of acks' groups, as many as fit
// in an answer's segments, then how many more there are: "DiskFull x2,
// OpsDown +17 more". A name repeated (one alert in several groups) is
// written once, with its count.
func listText(head string, acks []outbox.Ack) string {
	var names []string
	count := map[string]int{}
	for _, a := range acks {
		n := a.Labels["alertname"]
		if n == "" {
			n = a.AlertName
		}
		if n == "" {
			n = describe(a)
		}
		if count[n] == 0 {
			names = append(names, n)
		}
		count[n]++
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n
		if count[n] > 1 {
			parts[i] = fmt.Sprintf("%s x%d", n, count[n])
		}
	}
	for k := len(parts); k >= 0; k-- {
		text := head + strings.Join(parts[:k], ", ")
		if k < len(parts) {
			left := 0
			for _, n := range names[k:] {
				left += count[n]
			}
			if k > 0 {
				text += " "
			}
			text += fmt.Sprintf("+%d more", left)
		}
		if templates.Segments(text) <= answerSegments {
			return text
		}
	}
	return head + fmt.Sprintf("+%d more", len(acks))
}

// compose builds a text around a group's description, cutting the
// description (never the rest: the code, the duration) until the text
// fits in an answer's segments.
func compose(desc string, build func(string) string) string {
	text := build(desc)
	r := []rune(desc)
	for n := len(r) - 1; templates.Segments(text) > answerSegments && n > 0; n-- {
		text = build(strings.TrimSpace(string(r[:n])) + "...")
	}
	return text
}

// describe names an acknowledged group for a phone: its alert name, then
// its other labels, "DiskFull team=db".
func describe(a outbox.Ack) string {
	name := a.Labels["alertname"]
	if name == "" {
		name = a.AlertName
	}
	parts := []string{}
	if name != "" {
		parts = append(parts, name)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		if k != "alertname" {
			parts = append(parts, k+"="+a.Labels[k])
		}
	}
	if len(parts) == 0 {
		return "the group"
	}
	return strings.Join(parts, " ")
}

// who names the person who acknowledged: their name, or the number
// masked.
func who(person, number string) string {
	if person != "" {
		return person
	}
	return sms.MaskNumber(number)
}

// human writes a duration as people read it: "1h", "40m", "1h30m".
func human(d time.Duration) string {
	d = d.Round(time.Minute)
	if d < time.Minute {
		return "less than a minute"
	}
	return model.Duration(d).String()
}
