package outbox

import (
	"errors"
	"testing"
)

func TestPlanDigest(t *testing.T) {
	render := func(held []Record) (Message, error) { return Message{Text: "digest", Segments: 1}, nil }
	rec := func(name, status, person string, critical bool) Record {
		return Record{Receiver: "db", Person: person, Critical: critical, AlertName: name, Status: status}
	}
	for _, tc := range []struct {
		name   string
		held   []Record
		digest DigestFunc
		want   DigestPlan
		err    error
	}{
		{"resolved only", []Record{rec("A", "resolved", "", false)}, render,
			DigestPlan{Receiver: "db", Text: "digest", Segments: 1, Status: "resolved", AlertName: "A"}, nil},
		{"any firing, any critical, first person, distinct names", []Record{rec("A", "resolved", "", false), rec("B", "firing", "alice", true), rec("A", "firing", "bob", false)}, render,
			DigestPlan{Receiver: "db", Text: "digest", Segments: 1, Status: "firing", Critical: true, Person: "alice", AlertName: "A, B"}, nil},
		{"more than three names", []Record{rec("A", "firing", "", false), rec("B", "firing", "", false), rec("C", "firing", "", false), rec("D", "firing", "", false), rec("E", "firing", "", false)}, render,
			DigestPlan{Receiver: "db", Text: "digest", Segments: 1, Status: "firing", AlertName: "A, B, C +2 more"}, nil},
		{"the renderer's receiver wins", []Record{rec("A", "firing", "", false)}, func([]Record) (Message, error) { return Message{Receiver: "ops", Text: "x"}, nil },
			DigestPlan{Receiver: "ops", Text: "x", Status: "firing", AlertName: "A"}, nil},
		{"no renderer", []Record{rec("A", "firing", "", false)}, nil, DigestPlan{}, ErrInvalid},
		{"nothing held", nil, render, DigestPlan{}, ErrInvalid},
		{"no text", []Record{rec("A", "firing", "", false)}, func([]Record) (Message, error) { return Message{}, nil }, DigestPlan{}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanDigest(tc.held, tc.digest)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
