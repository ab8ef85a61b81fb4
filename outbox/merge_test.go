package outbox

import (
	"fmt"
	"testing"
)

func TestMergeByText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []Message
		want string
	}{
		{"nothing", nil, "[]"},
		{"different texts stay apart", []Message{
			{Receiver: "a", Text: "x", Segments: 1, Numbers: []string{"+1"}},
			{Receiver: "b", Text: "y", Segments: 2, Numbers: []string{"+1"}},
		}, "[a x 1 [{+1 false false }] b y 2 [{+1 false false }]]"},
		{"equal texts merge, first receiver, marks of both", []Message{
			{Receiver: "a", Text: "x", Segments: 1, Numbers: []string{"+1", "+2"}, Summary: "sa"},
			{Receiver: "b", Text: "x", Segments: 1, Numbers: []string{"+2", "+3"}, Critical: true, Unthrottled: true, Summary: "sb"},
		}, "[a x 1 [{+1 false false } {+2 true true } {+3 true true }]]"},
		{"people survive the merge, the first name per number", []Message{
			{Receiver: "a", Text: "x", Segments: 1, Numbers: []string{"+1", "+2"}, People: []string{"alice", ""}},
			{Receiver: "b", Text: "x", Segments: 1, Numbers: []string{"+2", "+1", "+3"}, People: []string{"bob", "carol", "dave"}},
			{Receiver: "c", Text: "y", Segments: 1, Numbers: []string{"+1"}},
		}, "[a x 1 [{+1 false false alice} {+2 false false bob} {+3 false false dave}] c y 1 [{+1 false false }]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var parts []string
			for _, m := range MergeByText(tc.in) {
				parts = append(parts, fmt.Sprint(m.Receiver, " ", m.Text, " ", m.Segments, " ", m.Numbers))
				if m.Receiver == "a" && m.Text == "x" && len(tc.in) == 2 && tc.in[0].Summary != "" && m.Summary != "sa" {
					t.Errorf("summary %q, want the first message's", m.Summary)
				}
			}
			if got := fmt.Sprint(parts); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
