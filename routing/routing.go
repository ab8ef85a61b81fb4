// Package routing decides who is paged for an alert. It walks a routing tree
// with Alertmanager's semantics and label-matcher syntax, and resolves the
// receivers it reaches into normalised, de-duplicated phone numbers.
//
// A Router is built once per configuration by New, is immutable afterwards and
// is safe for concurrent use; a reload builds a new one and swaps it in.
package routing

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/common/model"

	"github.com/smsbridge/smsbridge/oncall"
)

// Route is one node of the routing tree as written in the configuration.
//
// The semantics are Alertmanager's. The root route catches every alert, so it
// must name a receiver and must not have matchers. A child route matches when
// all of its matchers match the labels; children are tried in order and the
// first one that matches wins, unless it sets Continue, in which case its
// later siblings are tried as well. When no child of a matching route
// matches, the route itself is the match. A route without a receiver inherits
// its parent's.
//
// Like Alertmanager, which routes each alert by that alert's own labels, the
// labels a route is matched against are those of one alert. Callers whose
// notifications carry group-wide common labels pass each alert's labels
// merged with the common ones, the alert's labels winning on conflict;
// alert.Notification.RouteLabels does that.
type Route struct {
	// Receiver names the receiver alerts matching this route go to. Empty
	// means the parent's receiver.
	Receiver string `yaml:"receiver"`
	// Matchers are label matchers in Alertmanager's syntax (= != =~ !~, with
	// regular expressions anchored at both ends). Each entry may hold one
	// matcher or a comma-separated list of them, optionally in braces; all
	// matchers of all entries must match.
	Matchers []string `yaml:"matchers"`
	// Continue makes later siblings be tried even after this route matched.
	Continue bool `yaml:"continue"`
	// ActiveTimeIntervals name time intervals outside which this route's
	// notifications are muted; MuteTimeIntervals those inside which they
	// are. As in Alertmanager, they are the route's own (a child does not
	// inherit them) and the root may have neither.
	ActiveTimeIntervals []string `yaml:"active_time_intervals"`
	MuteTimeIntervals   []string `yaml:"mute_time_intervals"`
	// Routes are the child routes, tried in order.
	Routes []*Route `yaml:"routes"`
}

// Receiver is a named set of phone numbers an alert can be routed to, as
// written in the configuration.
type Receiver struct {
	// Name is what routes refer to; it must be unique and not empty.
	Name string `yaml:"name"`
	// Numbers are phone numbers, or people's names, paged directly.
	Numbers []string `yaml:"numbers"`
	// Oncall names on-call lists whose numbers are paged as well.
	Oncall []string `yaml:"oncall"`
	// Template is the text template for this receiver; empty means the
	// default. It is checked by the templates package, not here.
	Template string `yaml:"template"`
	// SendResolved says whether resolved notifications are sent; nil means
	// true.
	SendResolved *bool `yaml:"send_resolved"`
	// MaxSegments caps the text length in SMS segments; 0 means the global
	// setting (Options.MaxSegments).
	MaxSegments int `yaml:"max_segments"`
	// Throttle says whether the per-number throttle applies to this
	// receiver's messages; nil means true. false is for a last resort.
	Throttle *bool `yaml:"throttle"`
	// OnUndelivered names the receiver that gets the same text, once,
	// when the provider reports that it did not reach one of this
	// receiver's numbers (a failed delivery receipt); empty for none.
	OnUndelivered string `yaml:"on_undelivered"`
	// Escalate are the steps taken when nobody acknowledges a firing
	// page to this receiver: each pages another receiver After the page,
	// unless the group was acknowledged, resolved or silenced by then.
	Escalate []EscalationStep `yaml:"escalate"`
}

// EscalationStep is one step of a receiver's escalate list, as written.
type EscalationStep struct {
	// After is how long after the page the step is due, as Alertmanager
	// writes durations ("10m", "1h30m").
	After string `yaml:"after"`
	// Receiver names the receiver the step pages.
	Receiver string `yaml:"receiver"`
}

// Bounds of a receiver's escalate list.
const (
	// MinEscalationAfter is the earliest a step may come: sooner, the
	// page has barely reached the phone, and nobody could have answered.
	MinEscalationAfter = 10 * time.Second
	// MaxEscalationAfter is the latest: escalation is about a page that
	// goes unanswered, not about a problem that lasts (and an episode
	// without a resolution ends after a day).
	MaxEscalationAfter = 24 * time.Hour
	// MaxEscalationSteps is the longest list.
	MaxEscalationSteps = 10
)

// Escalation is one step of a resolved receiver's escalate list.
type Escalation struct {
	After    time.Duration
	Receiver string
}

// Oncall is a named on-call list that receivers can share: a fixed list of
// numbers, or a schedule (package oncall).
type Oncall = oncall.List

// ResolvedReceiver is a receiver ready for delivery. Routers hand out shared
// pointers to it, so callers must not modify it.
type ResolvedReceiver struct {
	// Name is the receiver's name.
	Name string
	// Numbers are the receiver's own numbers, normalised and
	// de-duplicated; Members are the same, with the name of each that
	// belongs to a person. Who else is paged depends on the time: see
	// Recipients.
	Numbers []string
	Members []oncall.Member
	// Oncall are the receiver's on-call lists, in the order named.
	Oncall []*oncall.Schedule
	// Template is the receiver's template; empty means the default.
	Template string
	// SendResolved says whether resolved notifications are sent.
	SendResolved bool
	// MaxSegments caps the text length in SMS segments: the receiver's
	// own, or the global Options.MaxSegments. It is always positive.
	MaxSegments int
	// Throttle says whether the per-number throttle applies.
	Throttle bool
	// OnUndelivered is the receiver a text undelivered to one of this
	// receiver's numbers goes to; empty for none.
	OnUndelivered string
	// Escalate are its escalation steps, After increasing.
	Escalate []Escalation
}

// OverridesFunc returns the run-time overrides of the on-call list called
// list, in the order they were added; nil means none.
type OverridesFunc func(list string) []oncall.Override

// Recipients returns who the receiver pages at t: its own numbers, then
// whoever is on call at t on each of its lists in the order named, without
// repeating a number. overrides may be nil.
func (r *ResolvedReceiver) Recipients(t time.Time, overrides OverridesFunc) []oncall.Member {
	out := slices.Clone(r.Members)
	for _, s := range r.Oncall {
		var rt []oncall.Override
		if overrides != nil {
			rt = overrides(s.Name)
		}
		for _, m := range s.Who(t, rt).Members {
			if !slices.ContainsFunc(out, func(x oncall.Member) bool { return x.Number == m.Number }) {
				out = append(out, m)
			}
		}
	}
	return out
}

// Node is one route of a validated routing tree, for matching and display.
// Routers hand out shared pointers to nodes, so callers must not modify them.
type Node struct {
	// Receiver is the receiver this route sends to, inherited from the parent
	// when the route names none.
	Receiver string
	// Matchers are the route's matchers in canonical form, sorted as
	// Alertmanager sorts them.
	Matchers []string
	// Continue is the route's continue flag.
	Continue bool
	// Key identifies the route the way Alertmanager does: the matcher sets of
	// the route and its ancestors joined by "/", such as
	// `{}/{team="db"}/{severity="page"}`. It is not unique: siblings with the
	// same matchers share it.
	Key string
	// Path is the route's unique position in the configuration, such as
	// "route.routes[0].routes[1]"; validation errors use it too.
	Path string
	// ActiveTimeIntervals and MuteTimeIntervals are the route's own, by
	// name (see Route).
	ActiveTimeIntervals []string
	MuteTimeIntervals   []string
	// Children are the child routes, in order.
	Children []*Node

	matchers labels.Matchers
	recv     *ResolvedReceiver
}

// Target is one receiver to notify and the alerts routed to it.
type Target struct {
	// Receiver is the receiver to notify.
	Receiver *ResolvedReceiver
	// Alerts are indexes into the slice given to Router.Route, ascending.
	Alerts []int
	// Nodes are the distinct routes that sent these alerts to Receiver, in
	// first-seen order.
	Nodes []*Node
	// AlertNodes are, for each of Alerts, the routes that sent that alert
	// to Receiver.
	AlertNodes [][]*Node
}

// Router matches label sets against a validated routing tree.
type Router struct {
	root      *Node
	receivers []*ResolvedReceiver
	byName    map[string]*ResolvedReceiver
	lists     []*oncall.Schedule
	dir       *oncall.Directory
	intervals map[string][]timeinterval.TimeInterval
}

// Options are what New needs besides the routing configuration itself.
type Options struct {
	// Normalize turns a configured phone number into its canonical form, or
	// says why it is not a valid number; numbers are de-duplicated after
	// it. Nil uses the numbers as written.
	Normalize func(string) (string, error)
	// MaxSegments is the global cap on a text's length in SMS segments,
	// for receivers that set none; it must be positive.
	MaxSegments int
	// People are the configured people, whom lists and receivers may name.
	People []oncall.Person
	// TimeIntervals are the named time intervals routes and layers may
	// name.
	TimeIntervals map[string][]timeinterval.TimeInterval
}

// Error is one problem New found in the routing configuration.
//
// Path is where it is, in the configuration's own dotted and indexed
// syntax: "route.routes[1].receiver", "receivers[2].numbers[0]",
// "oncall[1].numbers[0]", "receivers[0].oncall[1]". A caller holding the
// YAML maps it to a line. Msg says what is wrong the way a person reads it,
// naming a receiver or on-call list by its name and a route by its path;
// Err is the underlying cause, if any (the normaliser's or the matcher
// parser's error).
type Error struct {
	Path string
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// problems collects New's errors in the order they are found.
type problems []error

func (p *problems) add(path string, cause error, format string, args ...any) {
	*p = append(*p, &Error{Path: path, Msg: fmt.Sprintf(format, args...), Err: cause})
}

// New validates the routing configuration and builds a Router from it.
//
// All problems found are reported together: the error is errors.Join of
// one *Error per problem, lists first, then receivers, then routes, so its
// text has one problem a line.
func New(root *Route, receivers []Receiver, lists []Oncall, opts Options) (*Router, error) {
	normalize := opts.Normalize
	if normalize == nil {
		normalize = func(s string) (string, error) { return s, nil }
	}
	if opts.MaxSegments < 1 {
		return nil, &Error{Path: "sms.max_segments", Msg: fmt.Sprintf("max segments %d must be positive", opts.MaxSegments)}
	}
	var errs problems
	dir, perrs := oncall.NewDirectory(opts.People, normalize)
	for _, e := range perrs {
		errs = append(errs, &Error{Path: e.Path, Msg: e.Msg, Err: e.Err})
	}
	r := &Router{byName: make(map[string]*ResolvedReceiver, len(receivers)), dir: dir, intervals: opts.TimeIntervals}
	known := r.resolveOncall(lists, &errs)
	for i := range receivers {
		rr := resolveReceiver(&receivers[i], i, known, dir, &errs)
		if rr == nil {
			continue
		}
		if rr.MaxSegments == 0 {
			rr.MaxSegments = opts.MaxSegments
		}
		if _, dup := r.byName[rr.Name]; dup {
			errs.add(fmt.Sprintf("receivers[%d].name", i), nil, "duplicate receiver name %q", rr.Name)
			continue
		}
		r.byName[rr.Name] = rr
		r.receivers = append(r.receivers, rr)
	}
	for i := range receivers {
		rc := &receivers[i]
		switch name := rc.OnUndelivered; {
		case name == "":
		case name == rc.Name:
			errs.add(fmt.Sprintf("receivers[%d].on_undelivered", i), nil, "receiver %q: on_undelivered names the receiver itself; name another", rc.Name)
		case r.byName[name] == nil:
			errs.add(fmt.Sprintf("receivers[%d].on_undelivered", i), nil, "receiver %q: on_undelivered names unknown receiver %q", rc.Name, name)
		}
		if rr := r.byName[rc.Name]; rr != nil && len(rc.Escalate) > 0 {
			rr.Escalate = r.escalation(rc, i, &errs)
		}
	}
	r.root = r.buildRoot(root, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// escalation checks receiver i's escalate list: at most
// MaxEscalationSteps steps, each after the one before it within the
// bounds, to another receiver that pages someone.
func (r *Router) escalation(rc *Receiver, i int, errs *problems) []Escalation {
	at := fmt.Sprintf("receivers[%d].escalate", i)
	if len(rc.Escalate) > MaxEscalationSteps {
		errs.add(at, nil, "receiver %q: escalate has %d steps; at most %d", rc.Name, len(rc.Escalate), MaxEscalationSteps)
		return nil
	}
	var out []Escalation
	var prev time.Duration
	for k, st := range rc.Escalate {
		path := fmt.Sprintf("%s[%d]", at, k)
		what := fmt.Sprintf("receiver %q: escalate[%d]", rc.Name, k)
		d, err := model.ParseDuration(strings.TrimSpace(st.After))
		after := time.Duration(d)
		switch {
		case strings.TrimSpace(st.After) == "":
			errs.add(path+".after", nil, "%s: after is missing; say how long after the page the step is due, such as 10m", what)
		case err != nil:
			errs.add(path+".after", nil, "%s: after %q is not a duration such as 10m, 30m or 1h", what, st.After)
		case after < MinEscalationAfter:
			errs.add(path+".after", nil, "%s: after %s is too soon; at least %s (nobody can answer a page sooner)", what, st.After, model.Duration(MinEscalationAfter))
		case after > MaxEscalationAfter:
			errs.add(path+".after", nil, "%s: after %s is too late; at most %s", what, st.After, model.Duration(MaxEscalationAfter))
		case after <= prev:
			errs.add(path+".after", nil, "%s: after %s is not after the step before it (%s); steps come in order, each later", what, st.After, model.Duration(prev))
		default:
			prev = after
		}
		target := r.byName[st.Receiver]
		switch name := st.Receiver; {
		case strings.TrimSpace(name) == "":
			errs.add(path+".receiver", nil, "%s: receiver is missing; name the receiver the step pages", what)
		case name == rc.Name:
			errs.add(path+".receiver", nil, "%s: names the receiver itself; a step pages someone else", what)
		case target == nil:
			errs.add(path+".receiver", nil, "%s: unknown receiver %q", what, name)
		case len(target.Numbers) == 0 && len(target.Oncall) == 0:
			errs.add(path+".receiver", nil, "%s: receiver %q has no numbers and no on-call lists: the step would page nobody", what, name)
		}
		out = append(out, Escalation{After: after, Receiver: st.Receiver})
	}
	return out
}

// resolveOncall compiles every on-call list, referenced or not, so that a
// bad list is caught when the configuration is loaded rather than when a
// receiver starts using it.
func (r *Router) resolveOncall(lists []Oncall, errs *problems) map[string]oncallList {
	compiled, bad, cerrs := oncall.Compile(lists, oncall.Options{Directory: r.dir, TimeIntervals: r.intervals})
	for _, e := range cerrs {
		*errs = append(*errs, &Error{Path: e.Path, Msg: e.Msg, Err: e.Err})
	}
	out := make(map[string]oncallList, len(lists))
	// A bad list stays known, marked bad, so that receivers using it are
	// not also reported as referring to an unknown list or having no
	// numbers: the list's own error says it all.
	for name := range bad {
		out[name] = oncallList{bad: true}
	}
	for _, s := range compiled {
		out[s.Name] = oncallList{schedule: s}
	}
	r.lists = compiled
	return out
}

// oncallList is an on-call list after compiling.
type oncallList struct {
	schedule *oncall.Schedule
	bad      bool // it has problems, reported already
}

// empty reports whether the list never has anyone on call: a fixed list
// without numbers.
func (l oncallList) empty() bool {
	if l.schedule == nil {
		return true
	}
	_, rot := l.schedule.Rotation()
	return !rot && len(l.schedule.Fixed()) == 0
}

// resolveReceiver validates one receiver and returns it resolved, or nil when
// it has no usable name; its other problems are appended to errs.
func resolveReceiver(rc *Receiver, i int, lists map[string]oncallList, dir *oncall.Directory, errs *problems) *ResolvedReceiver {
	path := fmt.Sprintf("receivers[%d]", i)
	if strings.TrimSpace(rc.Name) == "" {
		errs.add(path+".name", nil, "%s: empty name", path)
		return nil
	}
	what := "receiver " + strconv.Quote(rc.Name)
	before := len(*errs)
	members := resolveMembers(what, path, rc.Numbers, dir, errs)
	var schedules []*oncall.Schedule
	usesBadList, nonEmpty := false, len(members) > 0
	for k, name := range rc.Oncall {
		list, known := lists[name]
		at := fmt.Sprintf("%s.oncall[%d]", path, k)
		switch {
		case strings.TrimSpace(name) == "":
			errs.add(at, nil, "%s: empty oncall list name", what)
		case !known:
			errs.add(at, nil, "%s: unknown oncall list %q", what, name)
		case list.bad:
			usesBadList = true
		default:
			nonEmpty = nonEmpty || !list.empty()
			if !slices.Contains(schedules, list.schedule) {
				schedules = append(schedules, list.schedule)
			}
		}
	}
	if rc.MaxSegments < 0 {
		errs.add(path+".max_segments", nil, "%s: max_segments must not be negative, got %d", what, rc.MaxSegments)
	}
	// A receiver with no numbers and no lists is a deliberate black hole,
	// like Alertmanager's "null" receiver (for Watchdog, say): its
	// notifications are counted as unrouted. One whose lists are all empty
	// is a mistake. An empty union is only worth reporting when no other
	// error explains it.
	if !nonEmpty && len(rc.Oncall) > 0 && !usesBadList && len(*errs) == before {
		errs.add(path+".oncall", nil, "%s has no numbers", what)
	}
	sendResolved := true
	if rc.SendResolved != nil {
		sendResolved = *rc.SendResolved
	}
	nums := make([]string, len(members))
	for k, m := range members {
		nums[k] = m.Number
	}
	return &ResolvedReceiver{
		Name:          rc.Name,
		Numbers:       nums,
		Members:       members,
		Oncall:        schedules,
		Template:      rc.Template,
		SendResolved:  sendResolved,
		MaxSegments:   rc.MaxSegments,
		Throttle:      rc.Throttle == nil || *rc.Throttle,
		OnUndelivered: rc.OnUndelivered,
	}
}

// resolveMembers resolves a receiver's numbers (or people's names) and
// drops repeats, reporting each bad one against what, at path.numbers[i].
func resolveMembers(what, path string, refs []string, dir *oncall.Directory, errs *problems) []oncall.Member {
	var out []oncall.Member
	for i, raw := range refs {
		at := fmt.Sprintf("%s.numbers[%d]", path, i)
		if strings.TrimSpace(raw) == "" {
			errs.add(at, nil, "%s: empty number", what)
			continue
		}
		m, err := dir.Lookup(raw)
		if err != nil {
			// The number is the configuration author's own, so naming it
			// here discloses nothing; this error is never logged per alert.
			var le *oncall.LookupError
			if errors.As(err, &le) {
				errs.add(at, le.Err, "%s: %s", what, le.Msg())
			} else {
				errs.add(at, err, "%s", what)
			}
			continue
		}
		if !slices.ContainsFunc(out, func(x oncall.Member) bool { return x.Number == m.Number }) {
			out = append(out, m)
		}
	}
	return out
}

func (r *Router) buildRoot(root *Route, errs *problems) *Node {
	const path = "route"
	if root == nil {
		errs.add(path, nil, "%s: no root route", path)
		return nil
	}
	if root.Receiver == "" {
		errs.add(path, nil, "%s: root route must specify a receiver", path)
	}
	if len(root.Matchers) > 0 {
		// The root is the fallback for every alert; Alertmanager refuses
		// matchers on it for the same reason.
		errs.add(path+".matchers", nil, "%s: root route must not have matchers", path)
	}
	// As in Alertmanager: the root catches what nothing else does, and a
	// muted root would drop it.
	if len(root.ActiveTimeIntervals) > 0 {
		errs.add(path+".active_time_intervals", nil, "%s: the root route must not have active_time_intervals; put them on a child route", path)
	}
	if len(root.MuteTimeIntervals) > 0 {
		errs.add(path+".mute_time_intervals", nil, "%s: the root route must not have mute_time_intervals; put them on a child route", path)
	}
	return r.build(root, nil, path, errs)
}

func (r *Router) build(rt *Route, parent *Node, path string, errs *problems) *Node {
	n := &Node{Receiver: rt.Receiver, Continue: rt.Continue, Path: path}
	if parent != nil {
		n.ActiveTimeIntervals = r.intervalNames(path+".active_time_intervals", rt.ActiveTimeIntervals, errs)
		n.MuteTimeIntervals = r.intervalNames(path+".mute_time_intervals", rt.MuteTimeIntervals, errs)
	}
	if n.Receiver == "" && parent != nil {
		n.Receiver = parent.Receiver
	}
	if rt.Receiver != "" {
		if rr, ok := r.byName[rt.Receiver]; ok {
			n.recv = rr
		} else {
			errs.add(path+".receiver", nil, "%s: unknown receiver %q", path, rt.Receiver)
		}
	} else if parent != nil {
		n.recv = parent.recv
	}

	if parent == nil || len(rt.Matchers) == 0 {
		// The root's matchers were already reported; it matches everything.
		n.matchers = labels.Matchers{}
	} else {
		n.matchers = parseMatchers(path, rt.Matchers, errs)
	}
	n.Matchers = make([]string, len(n.matchers))
	for i, m := range n.matchers {
		n.Matchers[i] = m.String()
	}
	n.Key = n.matchers.String()
	if parent != nil {
		n.Key = parent.Key + "/" + n.Key
	}

	for i, child := range rt.Routes {
		childPath := fmt.Sprintf("%s.routes[%d]", path, i)
		if child == nil {
			errs.add(childPath, nil, "%s: empty route", childPath)
			continue
		}
		n.Children = append(n.Children, r.build(child, n, childPath, errs))
	}
	return n
}

// intervalNames checks that every name is a configured time interval.
func (r *Router) intervalNames(path string, names []string, errs *problems) []string {
	for i, name := range names {
		if _, ok := r.intervals[name]; !ok {
			errs.add(fmt.Sprintf("%s[%d]", path, i), nil, "%s: unknown time interval %q", path[:strings.LastIndex(path, ".")], name)
		}
	}
	return slices.Clone(names)
}

// parseMatchers parses every entry of a route's matchers into one sorted set.
func parseMatchers(path string, entries []string, errs *problems) labels.Matchers {
	ms := labels.Matchers{}
	for i, e := range entries {
		at := fmt.Sprintf("%s.matchers[%d]", path, i)
		parsed, err := labels.ParseMatchers(e)
		switch {
		case err != nil:
			errs.add(at, err, "%s: bad matcher %q", path, e)
		case len(parsed) == 0:
			// ParseMatchers accepts "" and "{}" as an empty set, which would
			// silently match everything; that is never what a route means.
			errs.add(at, nil, "%s: bad matcher %q: no label matcher in it", path, e)
		default:
			ms = append(ms, parsed...)
		}
	}
	// Sorted like Alertmanager sorts them, so Key and the printed tree read
	// the same as amtool's.
	slices.SortStableFunc(ms, cmpMatcher)
	return ms
}

func cmpMatcher(a, b *labels.Matcher) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := strings.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	return int(a.Type) - int(b.Type)
}

// Receiver returns the resolved receiver called name.
func (r *Router) Receiver(name string) (*ResolvedReceiver, bool) {
	rr, ok := r.byName[name]
	return rr, ok
}

// Receivers returns every configured receiver, used by a route or not, in
// configuration order.
func (r *Router) Receivers() []*ResolvedReceiver {
	return slices.Clone(r.receivers)
}

// Tree returns the root of the routing tree.
func (r *Router) Tree() *Node {
	return r.root
}

// Lists returns every on-call list, used or not, in configuration order.
func (r *Router) Lists() []*oncall.Schedule {
	return slices.Clone(r.lists)
}

// List returns the on-call list called name.
func (r *Router) List(name string) (*oncall.Schedule, bool) {
	for _, s := range r.lists {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Directory resolves people's names and numbers as the configuration does.
func (r *Router) Directory() *oncall.Directory {
	return r.dir
}
