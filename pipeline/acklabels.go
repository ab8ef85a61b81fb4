package pipeline

import (
	"maps"
	"strings"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/smsbridge/smsbridge/alert"
)

// alertmanagerAckLabels are the labels an acknowledgement of an
// Alertmanager group silences: the group labels (the common labels when
// there are none), plus the equality matchers of the route that made the
// group, read from the group key. Without the route's, a group by
// alertname under a route for team="db" would silence that alert for
// every team. Regex and negative matchers cannot be said with equality:
// they are left out, so a route matching by regex gets a silence broader
// than the route by those labels; so are matchers of an empty value and
// of internal ("__") labels. A group key that cannot be read falls back
// to the group labels plus the common labels.
func alertmanagerAckLabels(n *alert.Notification) map[string]string {
	l := groupLabels(n)
	route, ok := routeMatchers(n.GroupKey)
	if !ok {
		out := maps.Clone(map[string]string(n.Data.CommonLabels))
		if out == nil {
			out = map[string]string{}
		}
		maps.Copy(out, map[string]string(n.Data.GroupLabels))
		if len(out) == 0 {
			return nil
		}
		return out
	}
	for _, m := range route {
		// An empty value matches alerts without the label; a name with
		// "__" is internal to the sender (Grafana routes on
		// __grafana_receiver__), never on an alert.
		if m.Type != labels.MatchEqual || m.Value == "" || strings.HasPrefix(m.Name, "__") {
			continue
		}
		if _, set := l[m.Name]; set {
			continue
		}
		if l == nil {
			l = map[string]string{}
		}
		l[m.Name] = m.Value
	}
	return l
}

// routeMatchers reads the matchers of the route part of an Alertmanager
// group key: the route's key, one matcher set per level from the root
// ("{}"), joined by "/", then ":" and the group's labels, as in
// `{}/{team="db"}/{severity=~"crit|page"}:{alertname="DiskFull"}`. The
// sets are split outside quotes, so values may hold any of "{}/:,". It
// reports false for anything else.
func routeMatchers(key string) ([]*labels.Matcher, bool) {
	var out []*labels.Matcher
	for i := 0; ; {
		end := setEnd(key, i)
		if end < 0 {
			return nil, false
		}
		ms, err := labels.ParseMatchers(key[i : end+1])
		if err != nil {
			return nil, false
		}
		out = append(out, ms...)
		i = end + 1
		switch {
		case i < len(key) && key[i] == '/':
			i++
		case i < len(key) && key[i] == ':' && setEnd(key, i+1) == len(key)-1:
			return out, true
		default:
			return nil, false
		}
	}
}

// setEnd returns the index of the "}" that closes the matcher set opening
// at key[i], skipping quoted parts (with their \" escapes); -1 when
// key[i] opens none or nothing closes it.
func setEnd(key string, i int) int {
	if i >= len(key) || key[i] != '{' {
		return -1
	}
	quoted, escaped := false, false
	for j := i + 1; j < len(key); j++ {
		c := key[j]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == '}' && !quoted:
			return j
		}
	}
	return -1
}
