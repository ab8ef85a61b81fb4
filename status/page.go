package status

import (
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/common/version"

	pluralpkg "github.com/smsbridge/smsbridge/internal/plural"
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
	// Prefix starts every link: the external URL's path.
	Prefix string
	// DryRun shows the banner: nothing is sent.
	DryRun bool
	// Refresh is the page's reload interval in seconds; 0 for none.
	Refresh int
	// RefreshToggle links to the same page with auto-refresh switched
	// the other way; empty on pages that never refresh.
	RefreshToggle string
}

func (h *Handler) header(title, nav string, dryRun bool) pageData {
	now := h.now()
	return pageData{
		Title: title, Nav: nav, Now: now,
		Version: version.Version, Revision: version.Revision, GoVersion: runtime.Version(),
		Started: h.started, Uptime: age(h.started, now), Prefix: h.prefix, DryRun: dryRun,
	}
}

// countsPeriod is the period of the page's counts.
const countsPeriod = 24 * time.Hour

// indexData is the status page.
type indexData struct {
	pageData
	Info     Info
	Provider Provider
	Stats    outbox.Stats
	// StatsErr is set when the outbox could not be read.
	StatsErr  string
	OldestAge time.Duration
	// Counts are the last 24 hours; CountsErr is set when they could not
	// be read.
	Counts    outbox.Counts
	CountsErr string
	// Filter is the delivery state the notifications are filtered by;
	// empty for all.
	Filter  string
	Filters []filterLink
	Limit   int
	// Notifications are the latest notifications, grouped.
	Notifications []notificationView
	// NotificationsErr is set when the filter is wrong or the outbox
	// failed.
	NotificationsErr string
	// FailedHref lists the notifications with a failed delivery.
	FailedHref string
	// AdminAPI says the page may offer what changes state (retry).
	AdminAPI bool
	// OnCall are the on-call lists; nil when the bridge has none to show.
	OnCall []oncallRow
	// Noise is the throttle and budget; NoiseErr says why it is missing.
	Noise    *Noise
	NoiseErr string
	// OptOuts are the numbers that replied STOP (a banner), at most
	// maxOptOutsShown of them, the oldest first; OptOutsTotal counts them
	// all and OptOutsMore those not shown. TwoWayErr says why they or the
	// acknowledgements are missing.
	OptOuts                   []optOutView
	OptOutsTotal, OptOutsMore int
	TwoWayErr                 string
	// Escalations are the open escalations and those that ended lately;
	// nil when the bridge has none to show.
	Escalations *escalationSection
}

type filterLink struct {
	Name, Href string
	Active     bool
}

// notificationView is one notification as the page groups it: what it is
// about, where it came from, and one row per text.
type notificationView struct {
	ID         int64
	ReceivedAt time.Time
	Source     string
	AlertName  string
	Status     string
	Outcome    string
	// Receivers are the receivers of its texts, in order.
	Receivers []string
	// Messages are its texts, each with the numbers it went to.
	Messages []messageView
	// States counts its deliveries by state, in display order.
	States []stateCount
	// Acks are the acknowledgements by reply of its code.
	Acks []ackView
	// FailoverOf is, for a failover, the delivery it stands in for.
	FailoverOf int64
}

type stateCount struct {
	State string
	N     int
}

// messageView is one text of a notification and its numbers.
type messageView struct {
	Receiver string
	Text     string
	Segments int
	Chips    []chipView
}

// chipView is one number's delivery.
type chipView struct {
	ID     int64
	Number string // masked
	State  string
	// DryRun is set when the dry run's fake took it: nothing was sent.
	DryRun       bool
	Attempts     int
	UpdatedAt    time.Time
	NextAttempt  time.Time
	Account      string
	APIMessageID string
	ErrorCode    string
	Error        string
	// Waiting says why a pending number is not sent at its next attempt:
	// the account that would send it is held or paused.
	Waiting string
	// BundledInto is the digest's delivery of a bundled number.
	BundledInto int64
	// Receipt is the handset's final status (delivered, failed), or "";
	// ReceiptWord the provider's latest word and ReceiptAt its time.
	Receipt     string
	ReceiptWord string
	ReceiptAt   time.Time
	// ReplyCode is the code the number may reply with.
	ReplyCode string
	// FailedOverTo is the notification that took an undelivered text to
	// the receiver's on_undelivered.
	FailedOverTo int64
}

// waiting says why nothing pending goes out now, from the provider's
// summary: "" when the account that carries the traffic can send.
func waiting(p Provider) string {
	switch p.State {
	case ProviderHeld:
		for _, a := range p.Accounts {
			if a.Active && !a.NextProbe.IsZero() {
				return "waits: the account is held (" + reasonText(p.Reason) + "); next probe " + formatTime(a.NextProbe)
			}
		}
		return "waits: the account is held (" + reasonText(p.Reason) + ")"
	case ProviderPaused:
		return "waits for the provider's rate-limit pause to end at " + formatTime(p.Until)
	}
	return ""
}

// group turns notification records into the page's view.
func group(ns []outbox.NotificationRecord) []notificationView {
	out := make([]notificationView, 0, len(ns))
	for _, n := range ns {
		v := notificationView{ID: n.ID, ReceivedAt: n.ReceivedAt, Source: n.Source, AlertName: n.AlertName,
			Status: n.Status, Outcome: n.Outcome}
		counts := map[string]int{}
		for _, r := range n.Deliveries {
			i := slices.IndexFunc(v.Messages, func(m messageView) bool { return m.Receiver == r.Receiver && m.Text == r.Text })
			if i < 0 {
				i = len(v.Messages)
				v.Messages = append(v.Messages, messageView{Receiver: r.Receiver, Text: r.Text, Segments: r.Segments})
				if !slices.Contains(v.Receivers, r.Receiver) {
					v.Receivers = append(v.Receivers, r.Receiver)
				}
			}
			v.Messages[i].Chips = append(v.Messages[i].Chips, chipView{
				ID: r.ID, Number: Person{Name: r.Person, Number: r.Number}.String(), State: string(r.State), DryRun: isDryRun(r),
				Attempts: r.Attempts, UpdatedAt: r.UpdatedAt, NextAttempt: r.NextAttemptAt, Account: r.Account,
				APIMessageID: r.APIMessageID, ErrorCode: r.ErrorCode, Error: r.Error, BundledInto: r.BundledInto,
				Receipt: r.Receipt, ReceiptWord: r.ReceiptWord, ReceiptAt: r.ReceiptAt, ReplyCode: r.ReplyCode, FailedOverTo: r.FailedOverTo,
			})
			if r.FailoverOf != 0 {
				v.FailoverOf = r.FailoverOf
			}
			counts[string(r.State)]++
		}
		for _, st := range states {
			if n := counts[string(st)]; n > 0 {
				v.States = append(v.States, stateCount{State: string(st), N: n})
				delete(counts, string(st))
			}
		}
		// States the page does not know yet still show.
		for _, st := range slices.Sorted(maps.Keys(counts)) {
			v.States = append(v.States, stateCount{State: st, N: counts[st]})
		}
		out = append(out, v)
	}
	return out
}

func (h *Handler) page(c echo.Context) error {
	ctx := c.Request().Context()
	info := h.bridge.Info()
	d := indexData{pageData: h.header("smsbridge status", "status", info.DryRun), Info: info, Provider: h.bridge.Provider(),
		AdminAPI: h.admin.Enabled(), OnCall: h.oncallSection()}
	code := http.StatusOK
	if st, err := h.store.Stats(ctx); err != nil {
		h.logger.Error("read outbox stats", "err", err)
		d.StatsErr = "the outbox could not be read; see the bridge's log"
	} else {
		d.Stats, d.OldestAge = st, age(st.Oldest, d.Now)
	}
	if cs, err := h.store.Counts(ctx, d.Now.Add(-countsPeriod)); err != nil {
		h.logger.Error("count the outbox", "err", err)
		d.CountsErr = "the counts could not be read; see the bridge's log"
	} else {
		d.Counts = cs
	}
	// The page reloads itself unless asked not to (refresh=off), and
	// every link keeps that choice.
	refreshOff := c.QueryParam("refresh") == "off"
	keep := url.Values{}
	if refreshOff {
		keep.Set("refresh", "off")
	}
	link := func(state string) string {
		q := url.Values{}
		for k, v := range keep {
			q[k] = v
		}
		if state != "" {
			q.Set("status", state)
		}
		if len(q) == 0 {
			return h.prefix + "/"
		}
		return h.prefix + "/?" + q.Encode()
	}
	f, err := h.filterFrom(c, pageLimit)
	d.Filter, d.Limit = string(f.State), min(f.Limit, maxPageLimit)
	switch {
	case err != nil:
		code, d.NotificationsErr = http.StatusBadRequest, err.Error()
	default:
		ns, err := h.store.Notifications(ctx, outbox.NotificationFilter{State: f.State, Since: f.Since, Limit: d.Limit})
		if err != nil {
			h.logger.Error("list notifications", "err", err)
			d.NotificationsErr = "the notifications could not be read; see the bridge's log"
		}
		d.Notifications = group(ns)
		if why := waiting(d.Provider); why != "" {
			for i := range d.Notifications {
				for j := range d.Notifications[i].Messages {
					for k, ch := range d.Notifications[i].Messages[j].Chips {
						if ch.State == string(outbox.StatePending) {
							d.Notifications[i].Messages[j].Chips[k].Waiting = why
						}
					}
				}
			}
		}
	}
	d.Noise, d.NoiseErr = h.noise(ctx)
	d.Escalations = h.escalationsSection(ctx, d.Now)
	var acks map[int64][]ackView
	d.OptOuts, acks, d.TwoWayErr = h.twoWay(ctx, d.Now)
	d.OptOutsTotal = len(d.OptOuts)
	d.OptOuts = d.OptOuts[:min(len(d.OptOuts), maxOptOutsShown)]
	d.OptOutsMore = d.OptOutsTotal - len(d.OptOuts)
	for i := range d.Notifications {
		d.Notifications[i].Acks = acks[d.Notifications[i].ID]
	}
	d.Filters = append(d.Filters, filterLink{Name: "all", Href: link(""), Active: d.Filter == "" && err == nil})
	for _, st := range states {
		d.Filters = append(d.Filters, filterLink{Name: string(st), Href: link(string(st)), Active: d.Filter == string(st)})
	}
	d.FailedHref = link(string(outbox.StateFailed))
	if h.refresh > 0 {
		toggle := c.Request().URL.Query()
		if refreshOff {
			toggle.Del("refresh")
		} else {
			toggle.Set("refresh", "off")
			d.Refresh = int(h.refresh / time.Second)
		}
		d.RefreshToggle = h.prefix + "/"
		if len(toggle) > 0 {
			d.RefreshToggle += "?" + toggle.Encode()
		}
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
	info := h.bridge.Info()
	d := routesData{pageData: h.header("smsbridge routes test", "routes", info.DryRun), Labels: c.QueryParam("labels"), Tree: info.Tree}
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
		"mask":   sms.MaskNumber,
		"who":    func(person, number string) string { return Person{Name: person, Number: number}.String() },
		"people": maskPeople,
		"masks":  maskAll,
		"short":  func(s string) string { return s[:min(len(s), 12)] },
		"ts":     formatTime,
		"ago":    func(t time.Time) string { return humanDuration(age(t, h.now())) + " ago" },
		"until":  func(t time.Time) string { return humanDuration(age(h.now(), t)) },
		"in": func(t time.Time) string {
			if !t.After(h.now()) {
				return "due now"
			}
			return "in " + humanDuration(t.Sub(h.now()))
		},
		"duration": humanDuration,
		"plural":   plural,
		"reason":   reasonText,
		"join":     strings.Join,
		"path":     func(p string) string { return h.prefix + p },
		// admin says whether the page may offer what changes state.
		"admin":   func() bool { return h.admin.Enabled() },
		"percent": percent,
		"mode":    modeText,
	}
}

// maskPeople writes numbers masked, each after the name of the person on
// call there when people names one: "alice (+2783****001), +2783****005".
func maskPeople(numbers, people []string) string {
	m := make([]string, len(numbers))
	for i, n := range numbers {
		p := Person{Number: n}
		if i < len(people) {
			p.Name = people[i]
		}
		m[i] = p.String()
	}
	return strings.Join(m, ", ")
}

// percent says how many of n requests failed: "3 of 40 requests failed
// (7.5%)".
func percent(part, n int) string {
	if n == 0 {
		return "no requests"
	}
	return fmt.Sprintf("%d of %s failed (%.3g%%)", part, plural(n, "request", "requests"), 100*float64(part)/float64(n))
}

// modeText says what an account's mode means.
func modeText(mode string) string {
	switch mode {
	case ModeOK:
		return "sending"
	case ModePaused:
		return "by the provider's rate limit (429)"
	case ModeFailing:
		return "every recent request failed"
	case ModeHeld:
		return "the provider refuses the account"
	}
	return mode
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

func plural(n int, one, many string) string { return pluralpkg.Count(n, one, many) }

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
