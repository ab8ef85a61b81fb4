package outbox

// Merged is one message as a driver writes it: a text, the receiver and
// summary of the first message with that text, and each number once, with
// the marks of every message that reached it.
type Merged struct {
	Receiver, Text, Summary string
	Segments                int
	Numbers                 []MergedNumber
}

// MergedNumber is one number of a Merged message and its marks.
type MergedNumber struct {
	Number                string
	Unthrottled, Critical bool
}

// MergeByText folds messages with the same text together, in order, so a
// number gets each text once; a number two messages reach keeps both
// messages' marks (see Message). Drivers call it after the guards.
func MergeByText(msgs []Message) []*Merged {
	var out []*Merged
	byText := map[string]*Merged{}
	for _, m := range msgs {
		g := byText[m.Text]
		if g == nil {
			g = &Merged{Receiver: m.Receiver, Text: m.Text, Summary: m.Summary, Segments: m.Segments}
			byText[m.Text] = g
			out = append(out, g)
		}
		g.Segments = max(g.Segments, m.Segments)
	next:
		for _, num := range m.Numbers {
			for i := range g.Numbers {
				if g.Numbers[i].Number == num {
					g.Numbers[i].Unthrottled = g.Numbers[i].Unthrottled || m.Unthrottled
					g.Numbers[i].Critical = g.Numbers[i].Critical || m.Critical
					continue next
				}
			}
			g.Numbers = append(g.Numbers, MergedNumber{Number: num, Unthrottled: m.Unthrottled, Critical: m.Critical})
		}
	}
	return out
}
