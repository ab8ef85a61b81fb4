package routing

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// match is what one matched route is expected to be: its path and the
// receiver it sends to.
type match struct {
	path     string
	receiver string
}

// matchRoutes returns the routes the labels of one alert match, in tree
// order, as Route walks them.
func matchRoutes(r *Router, labels map[string]string) []*Node {
	return r.root.collect(labels, nil)
}

func TestMatch(t *testing.T) {
	t.Parallel()
	r := loadRouter(t, "testdata/routes.yaml")

	tests := []struct {
		name   string
		labels map[string]string
		want   []match
	}{
		{
			name: "no labels falls to the root",
			want: []match{{"route", "ops"}},
		},
		{
			name:   "nil labels fall to the root",
			labels: nil,
			want:   []match{{"route", "ops"}},
		},
		{
			name:   "nested child under a continue route",
			labels: map[string]string{"team": "db", "severity": "page", "env": "prod"},
			want:   []match{{"route.routes[0].routes[0]", "db-page"}},
		},
		{
			// routes[0] continues, so routes[1] is tried and matches, and
			// being the first match without continue it stops the walk
			// before routes[2].
			name:   "continue then first match wins",
			labels: map[string]string{"team": "db", "severity": "critical", "env": "prod"},
			want: []match{
				{"route.routes[0].routes[0]", "db-page"},
				{"route.routes[1]", "managers"},
			},
		},
		{
			name:   "first matching child wins over a later one",
			labels: map[string]string{"team": "web", "severity": "critical"},
			want:   []match{{"route.routes[1]", "managers"}},
		},
		{
			name:   "child without receiver inherits the parent's",
			labels: map[string]string{"team": "db", "severity": "warning", "env": "staging"},
			want:   []match{{"route.routes[0].routes[1]", "db"}},
		},
		{
			name:   "!= matches a missing label",
			labels: map[string]string{"team": "db", "severity": "warning"},
			want:   []match{{"route.routes[0].routes[1]", "db"}},
		},
		{
			name:   "no child matches, the node itself does",
			labels: map[string]string{"team": "db", "severity": "warning", "env": "prod"},
			want:   []match{{"route.routes[0]", "db"}},
		},
		{
			name:   "!~ does not match a matching value",
			labels: map[string]string{"team": "web", "service": "frontend-api"},
			want:   []match{{"route.routes[2]", "web"}},
		},
		{
			name:   "!~ matches another value",
			labels: map[string]string{"team": "web", "service": "api"},
			want:   []match{{"route.routes[2].routes[0]", "web-backend"}},
		},
		{
			name:   "!~ matches a missing label",
			labels: map[string]string{"team": "web"},
			want:   []match{{"route.routes[2].routes[0]", "web-backend"}},
		},
		{
			name:   "regexp is anchored at the end",
			labels: map[string]string{"region": "eu-west"},
			want:   []match{{"route.routes[4]", "eu-wide"}},
		},
		{
			name:   "continue on a leaf reaches the next sibling",
			labels: map[string]string{"region": "eu"},
			want: []match{
				{"route.routes[3]", "eu"},
				{"route.routes[4]", "eu-wide"},
			},
		},
		{
			name:   "regexp is anchored at the start",
			labels: map[string]string{"region": "xeu"},
			want:   []match{{"route", "ops"}},
		},
		{
			name:   "alternation is anchored as a whole",
			labels: map[string]string{"team": "webdb", "severity": "critical"},
			want:   []match{{"route", "ops"}},
		},
		{
			name:   "equality is case-sensitive",
			labels: map[string]string{"team": "DB"},
			want:   []match{{"route", "ops"}},
		},
		{
			name:   "comma inside a quoted value",
			labels: map[string]string{"app": "x,y", "tier": "bronze"},
			want:   []match{{"route.routes[5]", "commas"}},
		},
		{
			name:   "all matchers of all entries must match",
			labels: map[string]string{"app": "x,y", "tier": "gold"},
			want:   []match{{"route", "ops"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []match
			for _, n := range matchRoutes(r, tt.labels) {
				got = append(got, match{n.Path, n.Receiver})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Match(%v):\n got %v\nwant %v", tt.labels, got, tt.want)
			}
		})
	}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	r := loadRouter(t, "testdata/routes.yaml")
	alerts := []map[string]string{
		0: {"team": "db", "severity": "critical", "env": "prod"},   // db-page, managers
		1: {},                                                      // ops
		2: {"team": "db", "severity": "page"},                      // db-page
		3: {"region": "eu"},                                        // eu, eu-wide
		4: {"team": "db", "severity": "warning", "env": "staging"}, // db via routes[0].routes[1]
		5: {"team": "db", "severity": "warning", "env": "prod"},    // db via routes[0]
		6: {"team": "db", "severity": "warning"},                   // db via routes[0].routes[1] again
	}
	type target struct {
		receiver string
		alerts   []int
		paths    []string
	}
	want := []target{
		{"db-page", []int{0, 2}, []string{"route.routes[0].routes[0]"}},
		{"managers", []int{0}, []string{"route.routes[1]"}},
		{"ops", []int{1}, []string{"route"}},
		{"eu", []int{3}, []string{"route.routes[3]"}},
		{"eu-wide", []int{3}, []string{"route.routes[4]"}},
		{"db", []int{4, 5, 6}, []string{"route.routes[0].routes[1]", "route.routes[0]"}},
	}
	got := r.Route(alerts)
	if len(got) != len(want) {
		t.Fatalf("Route returned %d targets, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		var paths []string
		for _, n := range g.Nodes {
			paths = append(paths, n.Path)
		}
		if g.Receiver.Name != w.receiver || !slices.Equal(g.Alerts, w.alerts) || !slices.Equal(paths, w.paths) {
			t.Errorf("target %d = {%s %v %q}, want {%s %v %q}", i, g.Receiver.Name, g.Alerts, paths, w.receiver, w.alerts, w.paths)
		}
		if want, _ := r.Receiver(w.receiver); g.Receiver != want {
			t.Errorf("target %d receiver is not the router's %q", i, w.receiver)
		}
	}

	if got := r.Route(nil); len(got) != 0 {
		t.Errorf("Route(nil) = %+v, want nothing", got)
	}
}

// One alert reaching one receiver through two routes is one alert for it:
// the receiver gets one SMS, not two.
func TestRouteSameReceiverTwice(t *testing.T) {
	t.Parallel()
	r, err := New(&Route{Receiver: "ops", Routes: []*Route{
		{Matchers: []string{`a="1"`}, Receiver: "x", Continue: true},
		{Matchers: []string{`b="1"`}, Receiver: "x"},
	}}, []Receiver{
		{Name: "ops", Numbers: []string{"+27830000001"}},
		{Name: "x", Numbers: []string{"+27830000002"}},
	}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Route([]map[string]string{{"a": "1", "b": "1"}, {"b": "1"}})
	if len(got) != 1 {
		t.Fatalf("Route returned %d targets, want 1: %+v", len(got), got)
	}
	if !slices.Equal(got[0].Alerts, []int{0, 1}) {
		t.Errorf("Alerts = %v, want [0 1]", got[0].Alerts)
	}
	if len(got[0].Nodes) != 2 || got[0].Nodes[0].Path != "route.routes[0]" || got[0].Nodes[1].Path != "route.routes[1]" {
		t.Errorf("Nodes = %+v, want routes[0] and routes[1]", got[0].Nodes)
	}
}

func TestTree(t *testing.T) {
	t.Parallel()
	r, err := New(&Route{Receiver: "ops", Routes: []*Route{
		// Matchers are sorted the way Alertmanager sorts them, so the
		// order written does not change the key.
		{Matchers: []string{`team="db"`, `env=~"prod|staging"`}, Receiver: "db", Continue: true, Routes: []*Route{
			{Matchers: []string{`severity = page`}},
		}},
		{Matchers: []string{`{msg="say \"hi\""}`}},
	}}, []Receiver{
		{Name: "ops", Numbers: []string{"+27830000001"}},
		{Name: "db", Numbers: []string{"+27830000002"}},
	}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		depth    int
		path     string
		key      string
		receiver string
		matchers []string
		cont     bool
	}
	want := []row{
		{0, "route", "{}", "ops", []string{}, false},
		{1, "route.routes[0]", `{}/{env=~"prod|staging",team="db"}`, "db", []string{`env=~"prod|staging"`, `team="db"`}, true},
		{2, "route.routes[0].routes[0]", `{}/{env=~"prod|staging",team="db"}/{severity="page"}`, "db", []string{`severity="page"`}, false},
		{1, "route.routes[1]", `{}/{msg="say \"hi\""}`, "ops", []string{`msg="say \"hi\""`}, false},
	}
	var got []row
	r.Tree().Walk(func(n *Node, depth int) {
		got = append(got, row{depth, n.Path, n.Key, n.Receiver, n.Matchers, n.Continue})
	})
	if len(got) != len(want) {
		t.Fatalf("Walk visited %d nodes, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.depth != w.depth || g.path != w.path || g.key != w.key || g.receiver != w.receiver ||
			!slices.Equal(g.matchers, w.matchers) || g.cont != w.cont {
			t.Errorf("node %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestMatchAfterMutatingConfig(t *testing.T) {
	t.Parallel()
	// The router keeps no reference into the configuration it was built
	// from, so a config struct reused by a failed reload cannot change it.
	root := &Route{Receiver: "ops", Routes: []*Route{{Matchers: []string{`a="1"`}, Receiver: "x"}}}
	recv := []Receiver{
		{Name: "ops", Numbers: []string{"+27830000001"}},
		{Name: "x", Numbers: []string{"+27830000002"}},
	}
	r, err := New(root, recv, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	root.Routes[0].Matchers[0] = `a="2"`
	root.Routes[0].Receiver = "ops"
	recv[1].Numbers[0] = "+27839999999"
	got := matchRoutes(r, map[string]string{"a": "1"})
	if len(got) != 1 || got[0].Receiver != "x" {
		t.Fatalf("Match after mutating config = %+v, want receiver x", got)
	}
	if rr, _ := r.Receiver("x"); rr.Numbers[0] != "+27830000002" {
		t.Errorf("receiver x numbers = %q after mutating config", rr.Numbers)
	}
}

// benchRouter builds a tree of 51 routes: ten teams under the root, each
// with four children using every kind of matcher.
func benchRouter(b *testing.B) *Router {
	b.Helper()
	root := &Route{Receiver: "ops"}
	receivers := []Receiver{{Name: "ops", Numbers: []string{"+27830000001"}}}
	for i := range 10 {
		team := fmt.Sprintf("team%d", i)
		receivers = append(receivers, Receiver{Name: team, Numbers: []string{fmt.Sprintf("+2783000%04d", i+10)}})
		root.Routes = append(root.Routes, &Route{
			Matchers: []string{fmt.Sprintf(`team=%q`, team)},
			Receiver: team,
			Continue: i%3 == 0,
			Routes: []*Route{
				{Matchers: []string{`severity="critical"`}},
				{Matchers: []string{`severity="warning", service=~"api|web|db-.*"`}},
				{Matchers: []string{`env!="prod"`}},
				{Matchers: []string{`service!~"batch.*"`, `instance=~".+:9100"`}},
			},
		})
	}
	r, err := New(root, receivers, nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	r.Tree().Walk(func(*Node, int) { n++ })
	if n != 51 {
		b.Fatalf("tree has %d routes, want 51", n)
	}
	return r
}

func BenchmarkMatch(b *testing.B) {
	r := benchRouter(b)
	sets := []map[string]string{
		{"alertname": "HighLatency", "team": "team9", "severity": "warning", "service": "db-main", "env": "prod"},
		{"alertname": "NodeDown", "team": "team5", "severity": "info", "service": "node", "env": "prod", "instance": "10.0.0.1:9100"},
		{"alertname": "Unowned", "severity": "critical"},
		{"alertname": "Disk", "team": "team0", "severity": "critical", "env": "prod"},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if len(matchRoutes(r, sets[i%len(sets)])) == 0 {
			b.Fatal("no match")
		}
	}
}

// FuzzMatchers checks that any matcher string is either refused by New or
// gives a route that matches exactly when Alertmanager's parser says it
// should, without panicking, and that the canonical form shown for it parses
// back to the same matchers.
func FuzzMatchers(f *testing.F) {
	for _, seed := range []struct{ matcher, name, value string }{
		{`team="db"`, "team", "db"},
		{`team!="db"`, "other", ""},
		{`team=~"db|web"`, "team", "dbx"},
		{`team!~"db.*"`, "team", "web"},
		{`{a="1", b=~"x,y"}`, "a", "1"},
		{`foo=bar,dings!=bums,`, "foo", "bar"},
		{`quote="She said: \"Hi, ladies!\""`, "quote", `She said: "Hi, ladies!"`},
		{`a=~"("`, "a", "("},
		{`a="\n\\"`, "a", "\n\\"},
		{``, "", ""},
		{`{}`, "a", ""},
		{`a=~".*"`, "missing", ""},
		{"a=\"\xff\"", "a", "\xff"},
	} {
		f.Add(seed.matcher, seed.name, seed.value)
	}
	recv := []Receiver{
		{Name: "all", Numbers: []string{"+27830000001"}},
		{Name: "hit", Numbers: []string{"+27830000002"}},
	}
	f.Fuzz(func(t *testing.T, matcher, name, value string) {
		r, err := New(&Route{Receiver: "all", Routes: []*Route{{Receiver: "hit", Matchers: []string{matcher}}}}, recv, nil, opts)
		parsed, perr := labels.ParseMatchers(matcher)
		if valid := perr == nil && len(parsed) > 0; (err == nil) != valid {
			t.Fatalf("New error %v, but ParseMatchers gave %d matchers and error %v", err, len(parsed), perr)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "route.routes[0]: bad matcher ") {
				t.Fatalf("error does not name the route and matcher: %v", err)
			}
			return
		}

		lbls := map[string]string{name: value}
		want := true
		for _, m := range parsed {
			if !m.Matches(lbls[m.Name]) {
				want = false
			}
		}
		got := matchRoutes(r, lbls)
		if len(got) != 1 {
			t.Fatalf("Match returned %d routes, want 1", len(got))
		}
		if hit := got[0].Receiver == "hit"; hit != want {
			t.Fatalf("route matched = %v, Alertmanager's matchers say %v", hit, want)
		}

		child := r.Tree().Children[0]
		again, err := labels.ParseMatchers(strings.Join(child.Matchers, ","))
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", child.Matchers, err)
		}
		if len(again) != len(child.matchers) {
			t.Fatalf("canonical form %q parses to %d matchers, want %d", child.Matchers, len(again), len(child.matchers))
		}
		for i, m := range child.matchers {
			a := again[i]
			if a.Name != m.Name || a.Type != m.Type || a.Value != m.Value {
				t.Fatalf("canonical form %q parses to %v, want %v", child.Matchers[i], a, m)
			}
		}
	})
}
