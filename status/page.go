package status

import (
	"fmt"
	"html/template"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/common/version"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// pageData is what every page shows in its header.
type pageData struct {
	Title     string
	Nav       string
	Now       time.Time
	Version   string
	Revision  string
	GoVersion string
	Started   time.Time
	Uptime    time.Duration
}

func (h *Handler) header(title, nav string) pageData {
	now := h.now()
	return pageData{
		Title: title, Nav: nav, Now: now,
		Version: version.Version, Revision: version.Revision, GoVersion: runtime.Version(),
		Started: h.started, Uptime: age(h.started, now),
	}
}

// indexData is the status page.
type indexData struct {
	pageData
	Info     Info
	Provider Provider
	Stats    outbox.Stats
	// StatsErr is set when the outbox could not be read.
	StatsErr  string
	OldestAge time.Duration
	// Filter is the status the deliveries are filtered by; empty for all.
	Filter     string
	Filters    []filterLink
	Limit      int
	Deliveries []outbox.Record
	// DeliveriesErr is set when the filter is wrong or the outbox failed.
	DeliveriesErr string
	// Noise is the throttle and budget; NoiseErr says why it is missing.
	Noise    *Noise
	NoiseErr string
}

type filterLink struct {
	Name, Href string
	Active     bool
}

func (h *Handler) page(c echo.Context) error {
	ctx := c.Request().Context()
	d := indexData{pageData: h.header("smsbridge status", "status"), Info: h.bridge.Info(), Provider: h.bridge.Provider()}
	code := http.StatusOK
	if st, err := h.store.Stats(ctx); err != nil {
		h.logger.Error("read outbox stats", "err", err)
		d.StatsErr = "the outbox could not be read; see the bridge's log"
	} else {
		d.Stats, d.OldestAge = st, age(st.Oldest, d.Now)
	}
	f, err := h.filterFrom(c, pageLimit)
	d.Filter, d.Limit = string(f.State), f.Limit
	switch {
	case err != nil:
		code, d.DeliveriesErr = http.StatusBadRequest, err.Error()
	default:
		if d.Deliveries, err = h.store.Deliveries(ctx, f); err != nil {
			h.logger.Error("list deliveries", "err", err)
			d.DeliveriesErr = "the deliveries could not be read; see the bridge's log"
		}
	}
	d.Noise, d.NoiseErr = h.noise(ctx)
	d.Filters = append(d.Filters, filterLink{Name: "all", Href: "/", Active: d.Filter == "" && err == nil})
	for _, st := range states {
		d.Filters = append(d.Filters, filterLink{Name: string(st), Href: "/?status=" + string(st), Active: d.Filter == string(st)})
	}
	return h.render(c, code, h.index, d)
}

// routesData is the routes test page.
type routesData struct {
	pageData
	Labels string
	// Parsed are the labels the test ran with, sorted.
	Parsed []string
	Result *RouteTest
	Err    string
	Tree   string
}

func (h *Handler) routesTest(c echo.Context) error {
	d := routesData{pageData: h.header("smsbridge routes test", "routes"), Labels: c.QueryParam("labels"), Tree: h.bridge.Info().Tree}
	if strings.TrimSpace(d.Labels) == "" {
		return h.render(c, http.StatusOK, h.routes, d)
	}
	labels, err := ParseLabelString(d.Labels)
	if err != nil {
		d.Err = err.Error()
		return h.render(c, http.StatusBadRequest, h.routes, d)
	}
	d.Parsed = FormatLabels(labels)
	res, err := h.bridge.RoutesTest(labels)
	if err != nil {
		h.logger.Error("routes test", "err", err)
		d.Err = "the routes test failed: " + err.Error()
		return h.render(c, http.StatusInternalServerError, h.routes, d)
	}
	d.Result = &res
	return h.render(c, http.StatusOK, h.routes, d)
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"mask":     sms.MaskNumber,
		"masks":    maskAll,
		"short":    func(s string) string { return s[:min(len(s), 12)] },
		"ts":       formatTime,
		"ago":      func(t time.Time) string { return humanDuration(age(t, h.now())) + " ago" },
		"until":    func(t time.Time) string { return humanDuration(age(h.now(), t)) },
		"duration": humanDuration,
		"plural":   plural,
		"reason":   reasonText,
		"join":     strings.Join,
	}
}

func maskAll(numbers []string) string {
	m := make([]string, len(numbers))
	for i, n := range numbers {
		m[i] = sms.MaskNumber(n)
	}
	return strings.Join(m, ", ")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// humanDuration writes d the way people say it: "3d 4h", "12m 5s", "4s".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	hours := d / time.Hour
	d -= hours * time.Hour
	mins := d / time.Minute
	secs := (d - mins*time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, secs)
	default:
		return fmt.Sprintf("%ds", secs)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// reasonText says what an account problem means for the operator.
func reasonText(reason string) string {
	switch reason {
	case "unauthorized":
		return "the API key is invalid"
	case "suspended":
		return "the account is suspended"
	case "no_credits":
		return "the account has no credits"
	case "":
		return "an account problem"
	}
	return reason
}
