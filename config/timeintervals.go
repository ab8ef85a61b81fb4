package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/alertmanager/timeinterval"
	"gopkg.in/yaml.v3"
)

// TimeInterval is a named set of time intervals, in Alertmanager's syntax
// and with its semantics: the set contains an instant when any of its
// intervals does, and an interval without a location reads UTC. Routes
// name them in active_time_intervals and mute_time_intervals, on-call
// layers in time_intervals.
type TimeInterval struct {
	Name          string     `yaml:"name"`
	TimeIntervals []TimeSpec `yaml:"time_intervals"`
}

// TimeSpec is one Alertmanager time interval: times, weekdays,
// days_of_month, months, years and location.
type TimeSpec struct {
	timeinterval.TimeInterval
}

// Keys of a time interval and of one of its times, as Alertmanager has
// them.
var (
	timeSpecKeys  = []string{"times", "weekdays", "days_of_month", "months", "years", "location"}
	timeRangeKeys = []string{"start_time", "end_time"}
)

// UnmarshalYAML implements yaml.Unmarshaler: Alertmanager's own decoding,
// with unknown keys refused and every error at its line.
func (s *TimeSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a time interval is a mapping of %s", n.Line, strings.Join(timeSpecKeys, ", "))
	}
	if err := knownKeys(n, timeSpecKeys, "time interval"); err != nil {
		return err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "times" || n.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, tr := range n.Content[i+1].Content {
			if tr.Kind == yaml.MappingNode {
				if err := knownKeys(tr, timeRangeKeys, "time range"); err != nil {
					return err
				}
			}
		}
	}
	var ti timeinterval.TimeInterval
	if err := n.Decode(&ti); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if strings.HasPrefix(msg, "line ") {
			return fmt.Errorf("%s", msg)
		}
		return fmt.Errorf("line %d: time interval: %s", n.Line, msg)
	}
	s.TimeInterval = ti
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s TimeSpec) MarshalYAML() (any, error) { return s.TimeInterval, nil }

func knownKeys(n *yaml.Node, keys []string, what string) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(keys, k.Value) {
			return fmt.Errorf("line %d: field %s not found in a %s (it has %s)", k.Line, k.Value, what, strings.Join(keys, ", "))
		}
	}
	return nil
}

// Intervals returns the time intervals by name, for routing and the
// on-call schedules.
func (c *Config) Intervals() map[string][]timeinterval.TimeInterval {
	out := make(map[string][]timeinterval.TimeInterval, len(c.TimeIntervals))
	for _, ti := range c.TimeIntervals {
		specs := make([]timeinterval.TimeInterval, len(ti.TimeIntervals))
		for i, s := range ti.TimeIntervals {
			specs[i] = s.TimeInterval
		}
		out[ti.Name] = specs
	}
	return out
}

// validateTimeIntervals checks names: present, unique.
func (f *File) validateTimeIntervals() error {
	seen := map[string]bool{}
	for i, ti := range f.Config.TimeIntervals {
		at := fmt.Sprintf("time_intervals[%d]", i)
		switch {
		case strings.TrimSpace(ti.Name) == "":
			return f.Errorf(at, "%s: name is empty", at)
		case seen[ti.Name]:
			return f.Errorf(at+".name", "time_intervals: name %q is used twice", ti.Name)
		}
		seen[ti.Name] = true
	}
	return nil
}
