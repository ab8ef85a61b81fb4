package routing

import "slices"

// Route matches every alert and groups the alerts by receiver. Each element
// of alerts is the label set of one alert (see Route for merging in common
// labels); alert.Notification.RouteLabels gives them. A label an alert
// lacks counts as the empty string, as in Alertmanager: `team!="db"` and
// `team!~"db|web"` match an alert without a team label, `team=~".*"` does
// too. Targets come in the order their receiver was first reached,
// walking the alerts in order and each alert's matches in tree order. An
// alert reached by several routes with the same receiver is listed once for
// it: one SMS per receiver and notification, not per route.
func (r *Router) Route(alerts []map[string]string) []Target {
	var (
		targets []Target
		index   = make(map[*ResolvedReceiver]int)
		nodes   []*Node
	)
	for i, lbls := range alerts {
		nodes = r.root.collect(lbls, nodes[:0])
		for _, n := range nodes {
			ti, ok := index[n.recv]
			if !ok {
				ti = len(targets)
				index[n.recv] = ti
				targets = append(targets, Target{Receiver: n.recv})
			}
			t := &targets[ti]
			if k := len(t.Alerts); k == 0 || t.Alerts[k-1] != i {
				t.Alerts = append(t.Alerts, i)
				t.AlertNodes = append(t.AlertNodes, nil)
			}
			if k := len(t.AlertNodes) - 1; !slices.Contains(t.AlertNodes[k], n) {
				t.AlertNodes[k] = append(t.AlertNodes[k], n)
			}
			if !slices.Contains(t.Nodes, n) {
				t.Nodes = append(t.Nodes, n)
			}
		}
	}
	return targets
}

// matches reports whether every matcher of the route matches the labels.
func (n *Node) matches(labels map[string]string) bool {
	for _, m := range n.matchers {
		if !m.Matches(labels[m.Name]) {
			return false
		}
	}
	return true
}

// collect appends to out the routes below n, n included, that the labels
// match, assuming n itself matches, in depth-first, left-to-right order;
// the result is never empty. Appending to a caller's buffer lets Route
// reuse one slice for all its alerts.
func (n *Node) collect(labels map[string]string, out []*Node) []*Node {
	start := len(out)
	for _, c := range n.Children {
		if !c.matches(labels) {
			continue
		}
		// A matching child always contributes at least itself, so reaching
		// here is exactly Alertmanager's "the child had matches".
		out = c.collect(labels, out)
		if !c.Continue {
			break
		}
	}
	if len(out) == start {
		out = append(out, n)
	}
	return out
}
