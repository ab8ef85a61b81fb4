package routing

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// errNotE164 is what the test normaliser wraps, so tests can check that New
// keeps the normaliser's error in the chain.
var errNotE164 = errors.New("not an e.164 number")

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

// normalize stands in for sms.NormalizeNumber, which routing must not import:
// it drops spaces and dashes, turns a leading 00 into +, and insists on E.164.
func normalize(s string) (string, error) {
	n := strings.NewReplacer(" ", "", "-", "").Replace(s)
	if rest, ok := strings.CutPrefix(n, "00"); ok {
		n = "+" + rest
	}
	if !e164.MatchString(n) {
		return "", errNotE164
	}
	return n, nil
}

// opts are the options of every router built in these tests: the test
// normaliser, and a global cap of three segments.
var opts = Options{Normalize: normalize, MaxSegments: 3}

// config is the part of the daemon's configuration routing owns, decoded the
// way config/ decodes it: strictly.
type config struct {
	Route     *Route     `yaml:"route"`
	Receivers []Receiver `yaml:"receivers"`
	Oncall    []Oncall   `yaml:"oncall"`
}

func loadRouter(t testing.TB, file string) *Router {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var c config
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	r, err := New(c.Route, c.Receivers, c.Oncall, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func TestResolvedReceivers(t *testing.T) {
	t.Parallel()
	r := loadRouter(t, "testdata/routes.yaml")

	tests := []struct {
		name         string
		numbers      []string
		template     string
		sendResolved bool
		maxSegments  int
	}{
		{
			// Own numbers first, then the list; the list repeats one of
			// them in another spelling.
			name:         "ops",
			numbers:      []string{"+27830000001", "+27830000002"},
			sendResolved: true,
			maxSegments:  3, // the global cap
		},
		{
			// Duplicates across own numbers and two lists, each spelled
			// differently, collapse after normalisation.
			name:         "db",
			numbers:      []string{"+27830000010", "+27830000002", "+27830000011", "+27830000001"},
			template:     "{{ .Status }}",
			sendResolved: true,
			maxSegments:  2,
		},
		{
			name:         "db-page",
			numbers:      []string{"+27830000010", "+27830000011"},
			sendResolved: false,
			maxSegments:  3,
		},
		{
			name:         "unused",
			numbers:      []string{"+27830000060"},
			sendResolved: true,
			maxSegments:  3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr, ok := r.Receiver(tt.name)
			if !ok {
				t.Fatalf("receiver %q not found", tt.name)
			}
			if rr.Name != tt.name {
				t.Errorf("Name = %q, want %q", rr.Name, tt.name)
			}
			if got := recipientNumbers(rr); !slices.Equal(got, tt.numbers) {
				t.Errorf("recipients = %q, want %q", got, tt.numbers)
			}
			if rr.Template != tt.template {
				t.Errorf("Template = %q, want %q", rr.Template, tt.template)
			}
			if rr.SendResolved != tt.sendResolved {
				t.Errorf("SendResolved = %v, want %v", rr.SendResolved, tt.sendResolved)
			}
			if rr.MaxSegments != tt.maxSegments {
				t.Errorf("MaxSegments = %d, want %d", rr.MaxSegments, tt.maxSegments)
			}
		})
	}

	if _, ok := r.Receiver("nope"); ok {
		t.Error(`Receiver("nope") found a receiver`)
	}

	var names []string
	for _, rr := range r.Receivers() {
		names = append(names, rr.Name)
	}
	want := []string{"ops", "db", "db-page", "managers", "web", "web-backend", "eu", "eu-wide", "commas", "unused"}
	if !slices.Equal(names, want) {
		t.Errorf("Receivers() = %q, want %q", names, want)
	}
	// The returned slice is the caller's to reorder.
	all := r.Receivers()
	all[0] = nil
	if r.Receivers()[0] == nil {
		t.Error("Receivers() shares its slice with the router")
	}
}

// recipientNumbers are the numbers rr pages (its lists here are fixed, so
// the time does not matter).
func recipientNumbers(rr *ResolvedReceiver) []string {
	var out []string
	for _, m := range rr.Recipients(time.Now(), nil) {
		out = append(out, m.Number)
	}
	return out
}

func TestNilNormalizeKeepsNumbers(t *testing.T) {
	t.Parallel()
	r, err := New(&Route{Receiver: "a"},
		[]Receiver{{Name: "a", Numbers: []string{"123", "123", " 9 "}, Oncall: []string{"l"}}},
		[]Oncall{{Name: "l", Numbers: []string{"9", "456"}}}, Options{MaxSegments: 1})
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := r.Receiver("a")
	if want := []string{"123", " 9 "}; !slices.Equal(rr.Numbers, want) {
		t.Errorf("Numbers = %q, want %q", rr.Numbers, want)
	}
	if got, want := recipientNumbers(rr), []string{"123", " 9 ", "9", "456"}; !slices.Equal(got, want) {
		t.Errorf("recipients = %q, want %q", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func TestNewErrors(t *testing.T) {
	t.Parallel()
	ok := []Receiver{{Name: "ops", Numbers: []string{"+27830000001"}}}
	tests := []struct {
		name      string
		root      *Route
		receivers []Receiver
		oncall    []Oncall
		want      []string // each is one line of the error, in order
		paths     []string // the *Error.Path of each line
	}{
		{
			name:      "no root",
			receivers: ok,
			want:      []string{"route: no root route"},
			paths:     []string{"route"},
		},
		{
			name:      "root without receiver",
			root:      &Route{},
			receivers: ok,
			want:      []string{"route: root route must specify a receiver"},
			paths:     []string{"route"},
		},
		{
			name:      "root with matchers",
			root:      &Route{Receiver: "ops", Matchers: []string{`team="db"`}},
			receivers: ok,
			want:      []string{"route: root route must not have matchers"},
			paths:     []string{"route.matchers"},
		},
		{
			name:      "root with unknown receiver",
			root:      &Route{Receiver: "nope"},
			receivers: ok,
			want:      []string{`route: unknown receiver "nope"`},
			paths:     []string{"route.receiver"},
		},
		{
			name: "nested unknown receiver",
			root: &Route{Receiver: "ops", Routes: []*Route{
				{Matchers: []string{`a="1"`}},
				{Matchers: []string{`a="2"`}, Routes: []*Route{
					{Matchers: []string{`b="1"`}, Receiver: "nope"},
				}},
			}},
			receivers: ok,
			want:      []string{`route.routes[1].routes[0]: unknown receiver "nope"`},
			paths:     []string{"route.routes[1].routes[0].receiver"},
		},
		{
			name:      "bad matcher syntax",
			root:      &Route{Receiver: "ops", Routes: []*Route{{Matchers: []string{"team"}}}},
			receivers: ok,
			want:      []string{`route.routes[0]: bad matcher "team": bad matcher format: team`},
			paths:     []string{"route.routes[0].matchers[0]"},
		},
		{
			name:      "bad regexp",
			root:      &Route{Receiver: "ops", Routes: []*Route{{Matchers: []string{`team=~"("`}}}},
			receivers: ok,
			want:      []string{`route.routes[0]: bad matcher "team=~\"(\"": error parsing regexp: missing closing ): ` + "`^(?:()$`"},
			paths:     []string{"route.routes[0].matchers[0]"},
		},
		{
			name:      "bad matcher in comma list",
			root:      &Route{Receiver: "ops", Routes: []*Route{{Matchers: []string{`a="1", b~"2"`}}}},
			receivers: ok,
			want:      []string{`route.routes[0]: bad matcher "a=\"1\", b~\"2\"": bad matcher format: b~"2"`},
			paths:     []string{"route.routes[0].matchers[0]"},
		},
		{
			name:      "empty matcher",
			root:      &Route{Receiver: "ops", Routes: []*Route{{Matchers: []string{""}}}},
			receivers: ok,
			want:      []string{`route.routes[0]: bad matcher "": no label matcher in it`},
			paths:     []string{"route.routes[0].matchers[0]"},
		},
		{
			name:      "empty braces",
			root:      &Route{Receiver: "ops", Routes: []*Route{{Matchers: []string{"{}"}}}},
			receivers: ok,
			want:      []string{`route.routes[0]: bad matcher "{}": no label matcher in it`},
			paths:     []string{"route.routes[0].matchers[0]"},
		},
		{
			name:      "nil child route",
			root:      &Route{Receiver: "ops", Routes: []*Route{nil}},
			receivers: ok,
			want:      []string{"route.routes[0]: empty route"},
			paths:     []string{"route.routes[0]"},
		},
		{
			name:      "duplicate receiver",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{ok[0], ok[0]},
			want:      []string{`duplicate receiver name "ops"`},
			paths:     []string{"receivers[1].name"},
		},
		{
			name:      "duplicate oncall list",
			root:      &Route{Receiver: "ops"},
			receivers: ok,
			oncall:    []Oncall{{Name: "p", Numbers: []string{"+27830000001"}}, {Name: "p"}},
			want:      []string{`duplicate oncall list name "p"`},
			paths:     []string{"oncall[1].name"},
		},
		{
			name:      "unknown oncall list",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{{Name: "ops", Numbers: []string{"+27830000001"}, Oncall: []string{"nope"}}},
			want:      []string{`receiver "ops": unknown oncall list "nope"`},
			paths:     []string{"receivers[0].oncall[0]"},
		},
		{
			name:      "empty oncall list name in receiver",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{{Name: "ops", Numbers: []string{"+27830000001"}, Oncall: []string{""}}},
			want:      []string{`receiver "ops": empty oncall list name`},
			paths:     []string{"receivers[0].oncall[0]"},
		},
		{
			name:      "bad number in receiver",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{{Name: "ops", Numbers: []string{"+27830000001", "12ab"}}},
			want:      []string{`receiver "ops": bad number "12ab": not an e.164 number`},
			paths:     []string{"receivers[0].numbers[1]"},
		},
		{
			name:      "empty number in receiver",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{{Name: "ops", Numbers: []string{" "}}},
			want:      []string{`receiver "ops": empty number`},
			paths:     []string{"receivers[0].numbers[0]"},
		},
		{
			// The list's own error explains it all: the receiver using it
			// is neither "unknown oncall list" nor "no numbers".
			name:      "bad number in oncall list",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{{Name: "ops", Oncall: []string{"p"}}},
			oncall:    []Oncall{{Name: "p", Numbers: []string{"0800 CALL ME"}}},
			want:      []string{`oncall list "p": bad number "0800 CALL ME": not an e.164 number`},
			paths:     []string{"oncall[0].numbers[0]"},
		},
		{
			name:      "receiver with only an empty oncall list",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{{Name: "ops", Oncall: []string{"p"}}},
			oncall:    []Oncall{{Name: "p"}},
			want:      []string{`receiver "ops" has no numbers`},
			paths:     []string{"receivers[0].oncall"},
		},
		{
			name:      "empty receiver name",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{ok[0], {Name: " ", Numbers: []string{"+27830000001"}}},
			want:      []string{"receivers[1]: empty name"},
			paths:     []string{"receivers[1].name"},
		},
		{
			name:      "empty oncall name",
			root:      &Route{Receiver: "ops"},
			receivers: ok,
			oncall:    []Oncall{{Numbers: []string{"+27830000001"}}},
			want:      []string{"oncall[0]: empty name"},
			paths:     []string{"oncall[0].name"},
		},
		{
			name:      "negative max_segments",
			root:      &Route{Receiver: "ops"},
			receivers: []Receiver{{Name: "ops", Numbers: []string{"+27830000001"}, MaxSegments: -1}},
			want:      []string{`receiver "ops": max_segments must not be negative, got -1`},
			paths:     []string{"receivers[0].max_segments"},
		},
		{
			// Everything wrong is reported at once, lists, then
			// receivers, then routes.
			name: "several problems",
			root: &Route{Routes: []*Route{
				{Matchers: []string{`a=~"["`}, Receiver: "ghost"},
			}},
			receivers: []Receiver{
				{Name: "ops", Numbers: []string{"12ab"}, Oncall: []string{"missing"}},
				{Name: "ops", Numbers: []string{"+27830000001"}},
			},
			oncall: []Oncall{{Name: "", Numbers: []string{"+27830000001"}}},
			want: []string{
				"oncall[0]: empty name",
				`receiver "ops": bad number "12ab": not an e.164 number`,
				`receiver "ops": unknown oncall list "missing"`,
				`duplicate receiver name "ops"`,
				"route: root route must specify a receiver",
				`route.routes[0]: unknown receiver "ghost"`,
				`route.routes[0]: bad matcher "a=~\"[\"": error parsing regexp: missing closing ]: ` + "`[)$`",
			},
			paths: []string{"oncall[0].name", "receivers[0].numbers[0]", "receivers[0].oncall[0]", "receivers[1].name", "route", "route.routes[0].receiver", "route.routes[0].matchers[0]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.root, tt.receivers, tt.oncall, opts)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			if r != nil {
				t.Error("New returned a router along with an error")
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, tt.want) {
				t.Errorf("error lines:\n got %q\nwant %q", got, tt.want)
			}
			var gotPaths []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var re *Error
				if !errors.As(e, &re) {
					t.Fatalf("%v is %T, want *routing.Error", e, e)
				}
				gotPaths = append(gotPaths, re.Path)
			}
			if !slices.Equal(gotPaths, tt.paths) {
				t.Errorf("paths:\n got %q\nwant %q", gotPaths, tt.paths)
			}
			for _, line := range got {
				if first := line[:1]; first != strings.ToLower(first) {
					t.Errorf("error line %q does not start lower-case", line)
				}
			}
		})
	}
}

func TestNewRefusesNoMaxSegments(t *testing.T) {
	t.Parallel()
	_, err := New(&Route{Receiver: "ops"}, []Receiver{{Name: "ops"}}, nil, Options{})
	var re *Error
	if !errors.As(err, &re) || re.Path != "sms.max_segments" {
		t.Errorf("New without MaxSegments: %v", err)
	}
}

func TestNewKeepsNormalizeErrorInChain(t *testing.T) {
	t.Parallel()
	_, err := New(&Route{Receiver: "ops"}, []Receiver{{Name: "ops", Numbers: []string{"1x"}}}, nil, opts)
	if !errors.Is(err, errNotE164) {
		t.Errorf("errors.Is(%v, errNotE164) = false, want true", err)
	}
}

func TestNullReceiverIsAllowed(t *testing.T) {
	t.Parallel()
	r, err := New(&Route{Receiver: "null", Routes: []*Route{{Matchers: []string{`team="db"`}, Receiver: "db"}}},
		[]Receiver{{Name: "null"}, {Name: "db", Numbers: []string{"+27830000001"}}}, nil, Options{MaxSegments: 1})
	if err != nil {
		t.Fatalf("a receiver without numbers (a black hole) was refused: %v", err)
	}
	rcv, ok := r.Receiver("null")
	if !ok || len(rcv.Numbers) != 0 {
		t.Fatalf("null receiver = %+v, %v", rcv, ok)
	}
	if got := r.Route([]map[string]string{{"alertname": "Watchdog"}}); len(got) != 1 || got[0].Receiver.Name != "null" {
		t.Errorf("Watchdog routed to %+v", got)
	}
}

func TestOnUndelivered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, target string
		wantErr      string // "" for none
		wantPath     string
	}{
		{"another receiver", "backup", "", ""},
		{"none", "", "", ""},
		{"itself", "db", `receiver "db": on_undelivered names the receiver itself; name another`, "receivers[0].on_undelivered"},
		{"unknown", "nobody", `receiver "db": on_undelivered names unknown receiver "nobody"`, "receivers[0].on_undelivered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(&Route{Receiver: "db"}, []Receiver{
				{Name: "db", Numbers: []string{"+27830000001"}, OnUndelivered: tc.target},
				{Name: "backup", Numbers: []string{"+27830000002"}},
			}, nil, opts)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if rcv, _ := r.Receiver("db"); rcv.OnUndelivered != tc.target {
					t.Errorf("OnUndelivered %q, want %q", rcv.OnUndelivered, tc.target)
				}
				return
			}
			var re *Error
			if err == nil || !errors.As(err, &re) || err.Error() != tc.wantErr || re.Path != tc.wantPath {
				t.Errorf("error %v (path %v), want %q at %s", err, re, tc.wantErr, tc.wantPath)
			}
		})
	}
}

func TestEscalate(t *testing.T) {
	t.Parallel()
	receivers := func(steps ...EscalationStep) []Receiver {
		return []Receiver{
			{Name: "db", Numbers: []string{"+27830000001"}, Escalate: steps},
			{Name: "db2", Numbers: []string{"+27830000002"}},
			{Name: "managers", Oncall: []string{"mgmt"}},
		}
	}
	lists := []Oncall{{Name: "mgmt", Numbers: []string{"+27830000003"}}}
	r, err := New(&Route{Receiver: "db"}, receivers(EscalationStep{After: "10m", Receiver: "db2"}, EscalationStep{After: " 1h30m ", Receiver: "managers"}), lists, opts)
	if err != nil {
		t.Fatal(err)
	}
	rcv, _ := r.Receiver("db")
	want := []Escalation{{After: 10 * time.Minute, Receiver: "db2"}, {After: 90 * time.Minute, Receiver: "managers"}}
	if !slices.Equal(rcv.Escalate, want) {
		t.Errorf("steps %+v, want %+v", rcv.Escalate, want)
	}
	if other, _ := r.Receiver("db2"); other.Escalate != nil {
		t.Errorf("db2 has steps %+v", other.Escalate)
	}
	// Bounds at their edges: 10s and a day pass, the eleventh step not.
	if _, err := New(&Route{Receiver: "db"}, receivers(EscalationStep{After: "10s", Receiver: "db2"}, EscalationStep{After: "1d", Receiver: "managers"}), lists, opts); err != nil {
		t.Errorf("10s and 1d: %v", err)
	}
	var many []EscalationStep
	for i := range MaxEscalationSteps + 1 {
		many = append(many, EscalationStep{After: fmt.Sprintf("%dm", i+1), Receiver: "db2"})
	}
	_, err = New(&Route{Receiver: "db"}, receivers(many...), lists, opts)
	var re *Error
	if !errors.As(err, &re) || re.Path != "receivers[0].escalate" || err.Error() != `receiver "db": escalate has 11 steps; at most 10` {
		t.Errorf("eleven steps: %v", err)
	}
}
