package status

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/smsbridge/smsbridge/pipeline"
	"github.com/smsbridge/smsbridge/sms"
)

// ParseLabels reads command-line arguments of the form name=value or
// name="quoted value", as `amtool config routes test` takes them.
func ParseLabels(args []string) (map[string]string, error) {
	labels := make(map[string]string, len(args))
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("label %q is not of the form name=value", truncate(a, 60))
		}
		name = strings.TrimSpace(name)
		if !validLabelName(name) {
			return nil, fmt.Errorf("label name %q is not valid: use letters, digits and _, not starting with a digit", truncate(name, 60))
		}
		if strings.HasPrefix(value, `"`) {
			v, err := strconv.Unquote(value)
			if err != nil {
				return nil, fmt.Errorf("label %s: value %s is not a properly quoted string", name, truncate(value, 60))
			}
			value = v
		}
		if _, dup := labels[name]; dup {
			return nil, fmt.Errorf("label %s is given twice", name)
		}
		labels[name] = value
	}
	return labels, nil
}

// ParseLabelString reads labels typed into one line, separated by spaces
// or commas, optionally in braces as Alertmanager prints them:
// `team=db severity="critical"` or `{team="db", severity="critical"}`.
func ParseLabelString(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	var args []string
	var cur strings.Builder
	quoted, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case quoted && r == '\\':
			escaped = true
		case r == '"':
			quoted = !quoted
		case !quoted && (r == ',' || unicode.IsSpace(r)):
			if cur.Len() > 0 {
				args = append(args, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if quoted {
		return nil, errors.New("a quoted value is not closed")
	}
	if cur.Len() > 0 {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("no labels given: type them as name=value, such as team=db severity=critical")
	}
	return ParseLabels(args)
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// FormatLabels lists labels as name="value", sorted by name.
func FormatLabels(labels map[string]string) []string {
	out := make([]string, 0, len(labels))
	for k, v := range labels {
		out = append(out, k+"="+strconv.Quote(v))
	}
	slices.Sort(out)
	return out
}

// WriteRouteTest writes what a routes test found, for people. Numbers are
// masked unless showNumbers.
func WriteRouteTest(w io.Writer, rt RouteTest, showNumbers bool) error {
	var b strings.Builder
	show := sms.MaskNumber
	if showNumbers {
		show = func(s string) string { return s }
	}
	for i, p := range rt.Plans {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "receiver: %s\n", p.Receiver)
		for _, r := range p.Routes {
			fmt.Fprintf(&b, "  route:    %s  %s\n", r.Path, r.Key)
		}
		if p.Skipped != "" {
			fmt.Fprintf(&b, "  nothing sent: %s\n", p.Skipped)
			continue
		}
		nums := make([]string, len(p.Numbers))
		for j, n := range p.Numbers {
			nums[j] = show(n)
			if j < len(p.People) && p.People[j] != "" {
				nums[j] = p.People[j] + " (" + nums[j] + ")"
			}
		}
		fmt.Fprintf(&b, "  alerts:   %d\n", p.Alerts)
		fmt.Fprintf(&b, "  numbers:  %s\n", strings.Join(nums, ", "))
		fmt.Fprintf(&b, "  segments: %d\n", p.Segments)
		b.WriteString("  text:\n")
		for _, line := range strings.Split(p.Text, "\n") {
			b.WriteString("    | " + line + "\n")
		}
	}
	if len(rt.Plans) > 0 {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "would queue %s to %s\n", plural(rt.Messages, "message", "messages"), plural(rt.Recipients, "number", "numbers"))
	_, err := io.WriteString(w, b.String())
	return err
}

// FromPlan is what a plan would send, as the page and `smsbridge routes
// test` show it.
func FromPlan(pl *pipeline.Plan) RouteTest {
	res := RouteTest{Recipients: pl.Recipients(), Messages: len(pl.Messages())}
	for _, e := range pl.Entries {
		sp := Plan{Receiver: e.Receiver.Name, Alerts: e.Alerts, Numbers: e.Numbers, People: e.People, Text: e.Text, Segments: e.Segments, Skipped: e.Skipped}
		for _, n := range e.Routes {
			sp.Routes = append(sp.Routes, Route{Path: n.Path, Key: n.Key})
		}
		res.Plans = append(res.Plans, sp)
	}
	return res
}
