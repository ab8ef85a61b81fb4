package oncall

// Person is someone who can be on call, as configured under people. Lists,
// rotations, layers, overrides and receivers name people or numbers.
type Person struct {
	// Name is how lists refer to the person and how logs and pages show
	// them; it must not start with '+' or a digit, which mark a number.
	Name   string `yaml:"name"`
	Number string `yaml:"number"`
}

// List is one on-call list as configured: a fixed list of numbers (the
// original form), or a schedule with a rotation, layers and overrides.
type List struct {
	// Name is what receivers refer to; it must be unique and not empty.
	Name string `yaml:"name"`
	// Numbers is the fixed form: everyone on it is on call at all times.
	// Entries are numbers or people's names. It cannot go with Rotation.
	Numbers []string `yaml:"numbers"`
	// TimeZone is the IANA zone the schedule's local times are in
	// (rotation start, overrides without an offset); default UTC.
	TimeZone string `yaml:"time_zone"`
	// Rotation puts one member at a time on call, in turn.
	Rotation *Rotation `yaml:"rotation"`
	// Layers are checked in order before the rotation; the first whose
	// time intervals contain the time puts its members on call.
	Layers []Layer `yaml:"layers"`
	// Overrides put their members on call from start to end, before
	// anything else. More can be added at run time.
	Overrides []OverrideConfig `yaml:"overrides"`
	// NotifyHandoff sends each member coming on call an SMS at the
	// handoff.
	NotifyHandoff bool `yaml:"notify_handoff"`
}

// Rotation is one member at a time, each for one shift, in turn.
type Rotation struct {
	// Members take turns in this order; names or numbers.
	Members []string `yaml:"members"`
	// Shift is how long each turn lasts on the wall clock, written as
	// Alertmanager writes durations: 12h, 1d, 1w, 8h30m.
	Shift string `yaml:"shift"`
	// Start is a handoff, as a local time in the list's time zone
	// ("2026-01-05T09:00"); the first member's turn begins then. Every
	// Shift after (and before) it is a handoff too.
	Start string `yaml:"start"`
}

// Layer puts its members on call while any of its time intervals (named
// under time_intervals, Alertmanager's syntax) contains the time.
type Layer struct {
	TimeIntervals []string `yaml:"time_intervals"`
	Members       []string `yaml:"members"`
}

// OverrideConfig puts members on call from Start to End. Times are local
// in the list's time zone ("2026-12-24T00:00") or carry an offset
// ("2026-12-24T00:00:00+01:00").
type OverrideConfig struct {
	Members []string `yaml:"members"`
	Start   string   `yaml:"start"`
	End     string   `yaml:"end"`
}
