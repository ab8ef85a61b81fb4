package mapping

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/template"

	amtemplate "github.com/prometheus/alertmanager/template"
)

// funcMap returns Alertmanager's template functions plus this package's own:
// header, get, default, truncate and source.
func funcMap(source string, h http.Header) template.FuncMap {
	fm := make(template.FuncMap, len(amtemplate.DefaultFuncs)+5)
	for k, v := range amtemplate.DefaultFuncs {
		fm[k] = v
	}
	// routeLabels is an Alertmanager notification placeholder with no
	// meaning for a webhook body.
	delete(fm, "routeLabels")
	fm["header"] = headerFunc(h)
	fm["get"] = get
	fm["default"] = defaultFunc
	fm["truncate"] = truncate
	fm["source"] = func() string { return source }
	return fm
}

// headerFunc returns the `header NAME` template function: the first value of
// the request header NAME, matched case-insensitively, or "".
func headerFunc(h http.Header) func(string) string {
	return func(name string) string {
		if v := h.Get(name); v != "" {
			return v
		}
		// Headers built by hand (tests, proxies) may not be canonical.
		for k, vs := range h {
			if strings.EqualFold(k, name) && len(vs) > 0 {
				return vs[0]
			}
		}
		return ""
	}
}

// get is the lenient lookup `get "a.b.0.c" .`: it follows dot-separated map
// keys and array indexes and returns "" where the path does not exist, so
// optional fields need no `if`. Scalars render as text, objects and arrays as
// JSON.
func get(path string, v any) string {
	cur := v
	if path != "" {
		for part := range strings.SplitSeq(path, ".") {
			switch c := cur.(type) {
			case map[string]any:
				next, ok := c[part]
				if !ok {
					return ""
				}
				cur = next
			case []any:
				i, err := strconv.Atoi(part)
				if err != nil || i < 0 || i >= len(c) {
					return ""
				}
				cur = c[i]
			default:
				return ""
			}
		}
	}
	return text(cur)
}

// text renders a decoded JSON value as a label would show it.
func text(v any) string {
	switch c := v.(type) {
	case nil:
		return ""
	case string:
		return c
	case json.Number:
		return c.String()
	case bool:
		return strconv.FormatBool(c)
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64)
	case map[string]any, []any:
		b, err := json.Marshal(c)
		if err != nil {
			return ""
		}
		return string(b)
	default:
		// Values computed inside a template, such as an int from len.
		return fmt.Sprint(c)
	}
}

// defaultFunc is `default FALLBACK VALUE`, pipeline style:
// `{{ get "a.b" . | default "unknown" }}`.
func defaultFunc(fallback string, v any) string {
	if s := text(v); s != "" {
		return s
	}
	return fallback
}

// truncate is `truncate N TEXT`: at most N characters (runes) of TEXT.
func truncate(n int, s string) string {
	if n <= 0 {
		return ""
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
