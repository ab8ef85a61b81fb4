package outbox

import (
	"slices"
	"strings"
)

// Merged is one message as a driver writes it: a text, the receiver and
// summary of the first message with that text, and each number once, with
// the marks of every message that reached it and the first name on call
// at it.
type Merged struct {
	Receiver, Text, Summary string
	Segments                int
	Numbers                 []MergedNumber
	// Template, ReplyCode and FailoverOf are the first message's: its
	// text before the reply code was written (empty when it has none),
	// the code, and the delivery it is the failover of.
	Template, ReplyCode string
	FailoverOf          int64
}

// MergedNumber is one number of a Merged message, its marks, and who was
// on call at it (Message.People), or "".
type MergedNumber struct {
	Number                string
	Unthrottled, Critical bool
	Person                string
}

// MergeByText folds messages with the same text together, in order, so a
// number gets each text once; a number two messages reach keeps both
// messages' marks (see Message) and the first name either gives it.
// Drivers call it after the guards (and after dropping duplicate numbers,
// so People has one entry per number or none).
func MergeByText(msgs []Message) []*Merged {
	var out []*Merged
	byText := map[string]*Merged{}
	for _, m := range msgs {
		g := byText[m.Text]
		if g == nil {
			g = &Merged{Receiver: m.Receiver, Text: m.Text, Summary: m.Summary, Segments: m.Segments,
				Template: m.template, ReplyCode: m.code, FailoverOf: m.FailoverOf}
			byText[m.Text] = g
			out = append(out, g)
		}
		g.Segments = max(g.Segments, m.Segments)
	next:
		for k, num := range m.Numbers {
			person := ""
			if k < len(m.People) {
				person = m.People[k]
			}
			for i := range g.Numbers {
				if g.Numbers[i].Number == num {
					g.Numbers[i].Unthrottled = g.Numbers[i].Unthrottled || m.Unthrottled
					g.Numbers[i].Critical = g.Numbers[i].Critical || m.Critical
					if g.Numbers[i].Person == "" {
						g.Numbers[i].Person = person
					}
					continue next
				}
			}
			g.Numbers = append(g.Numbers, MergedNumber{Number: num, Unthrottled: m.Unthrottled, Critical: m.Critical, Person: person})
		}
	}
	return out
}

// ReplyNumbers returns the numbers of the messages that ask for a reply
// code (Message.ReplyCode) and have a place for it in their text, each
// once, in order: the numbers a code is issued to.
func ReplyNumbers(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		if !m.ReplyCode || !strings.Contains(m.Text, ReplyCodePlaceholder) {
			continue
		}
		for _, n := range m.Numbers {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// FillReplyCode writes code into the text of every message that asks for
// a reply code, in place of each ReplyCodePlaceholder, and returns the
// messages. MergeByText then gives each merged text its template (the
// text as written) and code. An empty code removes the placeholder.
// Drivers call it before MergeByText.
func FillReplyCode(msgs []Message, code string) []Message {
	out := slices.Clone(msgs)
	for i, m := range out {
		if !m.ReplyCode || !strings.Contains(m.Text, ReplyCodePlaceholder) {
			continue
		}
		out[i].template = m.Text
		out[i].code = code
		out[i].Text = strings.ReplaceAll(m.Text, ReplyCodePlaceholder, code)
	}
	return out
}
