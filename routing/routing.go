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

	"github.com/prometheus/alertmanager/pkg/labels"
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
	// Routes are the child routes, tried in order.
	Routes []*Route `yaml:"routes"`
}

// Receiver is a named set of phone numbers an alert can be routed to, as
// written in the configuration.
type Receiver struct {
	// Name is what routes refer to; it must be unique and not empty.
	Name string `yaml:"name"`
	// Numbers are phone numbers paged directly.
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
}

// Oncall is a named list of phone numbers that receivers can share.
type Oncall struct {
	// Name is what receivers refer to; it must be unique and not empty.
	Name string `yaml:"name"`
	// Numbers are the list's phone numbers.
	Numbers []string `yaml:"numbers"`
}

// ResolvedReceiver is a receiver ready for delivery. Routers hand out shared
// pointers to it, so callers must not modify it.
type ResolvedReceiver struct {
	// Name is the receiver's name.
	Name string
	// Numbers is the union of the receiver's own numbers and those of its
	// on-call lists, normalised and de-duplicated, in first-seen order: the
	// receiver's own numbers, then each list in the order named.
	Numbers []string
	// Template is the receiver's template; empty means the default.
	Template string
	// SendResolved says whether resolved notifications are sent.
	SendResolved bool
	// MaxSegments caps the text length in SMS segments: the receiver's
	// own, or the global Options.MaxSegments. It is always positive.
	MaxSegments int
	// Throttle says whether the per-number throttle applies.
	Throttle bool
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
}

// Router matches label sets against a validated routing tree.
type Router struct {
	root      *Node
	receivers []*ResolvedReceiver
	byName    map[string]*ResolvedReceiver
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
func New(root *Route, receivers []Receiver, oncall []Oncall, opts Options) (*Router, error) {
	normalize := opts.Normalize
	if normalize == nil {
		normalize = func(s string) (string, error) { return s, nil }
	}
	if opts.MaxSegments < 1 {
		return nil, &Error{Path: "sms.max_segments", Msg: fmt.Sprintf("max segments %d must be positive", opts.MaxSegments)}
	}
	var errs problems
	lists := resolveOncall(oncall, normalize, &errs)
	r := &Router{byName: make(map[string]*ResolvedReceiver, len(receivers))}
	for i := range receivers {
		rr := resolveReceiver(&receivers[i], i, lists, normalize, &errs)
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
	r.root = r.buildRoot(root, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// resolveOncall normalises every on-call list, referenced or not, so that a
// bad number is caught when the configuration is loaded rather than when a
// receiver starts using the list.
func resolveOncall(oncall []Oncall, normalize func(string) (string, error), errs *problems) map[string]oncallList {
	lists := make(map[string]oncallList, len(oncall))
	for i, o := range oncall {
		path := fmt.Sprintf("oncall[%d]", i)
		if strings.TrimSpace(o.Name) == "" {
			errs.add(path+".name", nil, "%s: empty name", path)
			continue
		}
		if _, dup := lists[o.Name]; dup {
			errs.add(path+".name", nil, "duplicate oncall list name %q", o.Name)
			continue
		}
		what := "oncall list " + strconv.Quote(o.Name)
		// A bad list stays known, marked bad, so that receivers using it are
		// not also reported as referring to an unknown list or having no
		// numbers: the list's own error says it all.
		nums, ok := normalizeAll(what, path, o.Numbers, normalize, errs)
		lists[o.Name] = oncallList{numbers: nums, bad: !ok}
	}
	return lists
}

// oncallList is an on-call list after normalisation.
type oncallList struct {
	numbers []string
	bad     bool // some of its numbers were refused
}

// resolveReceiver validates one receiver and returns it resolved, or nil when
// it has no usable name; its other problems are appended to errs.
func resolveReceiver(rc *Receiver, i int, lists map[string]oncallList, normalize func(string) (string, error), errs *problems) *ResolvedReceiver {
	path := fmt.Sprintf("receivers[%d]", i)
	if strings.TrimSpace(rc.Name) == "" {
		errs.add(path+".name", nil, "%s: empty name", path)
		return nil
	}
	what := "receiver " + strconv.Quote(rc.Name)
	before := len(*errs)
	nums, _ := normalizeAll(what, path, rc.Numbers, normalize, errs)
	usesBadList := false
	for k, name := range rc.Oncall {
		list, known := lists[name]
		at := fmt.Sprintf("%s.oncall[%d]", path, k)
		switch {
		case strings.TrimSpace(name) == "":
			errs.add(at, nil, "%s: empty oncall list name", what)
		case !known:
			errs.add(at, nil, "%s: unknown oncall list %q", what, name)
		default:
			usesBadList = usesBadList || list.bad
			for _, n := range list.numbers {
				if !slices.Contains(nums, n) {
					nums = append(nums, n)
				}
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
	if len(nums) == 0 && len(rc.Oncall) > 0 && !usesBadList && len(*errs) == before {
		errs.add(path+".oncall", nil, "%s has no numbers", what)
	}
	sendResolved := true
	if rc.SendResolved != nil {
		sendResolved = *rc.SendResolved
	}
	return &ResolvedReceiver{
		Name:         rc.Name,
		Numbers:      nums,
		Template:     rc.Template,
		SendResolved: sendResolved,
		MaxSegments:  rc.MaxSegments,
		Throttle:     rc.Throttle == nil || *rc.Throttle,
	}
}

// normalizeAll normalises numbers and drops repeats, reporting each bad
// number against what, at path.numbers[i]. ok is false when any number
// was bad.
func normalizeAll(what, path string, numbers []string, normalize func(string) (string, error), errs *problems) (out []string, ok bool) {
	ok = true
	for i, raw := range numbers {
		at := fmt.Sprintf("%s.numbers[%d]", path, i)
		if strings.TrimSpace(raw) == "" {
			errs.add(at, nil, "%s: empty number", what)
			ok = false
			continue
		}
		n, err := normalize(raw)
		if err != nil {
			// The number is the configuration author's own, so naming it
			// here discloses nothing; this error is never logged per alert.
			errs.add(at, err, "%s: bad number %q", what, raw)
			ok = false
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, ok
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
	return r.build(root, nil, path, errs)
}

func (r *Router) build(rt *Route, parent *Node, path string, errs *problems) *Node {
	n := &Node{Receiver: rt.Receiver, Continue: rt.Continue, Path: path}
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
