package status

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/common/model"

	"github.com/smsbridge/smsbridge/outbox"
)

// The escalation part of the page and the admin API: open escalations
// with their next step and time, the ones that ended lately and why, and
// cancelling one (a write: it needs the admin API enabled).

// Errors the Escalations implementation reports, mapped to status codes.
var (
	// ErrUnknownEscalation: no escalation has the id (404).
	ErrUnknownEscalation = errors.New("no such escalation")
	// ErrEscalationOver: the escalation has no step left to cancel (409).
	ErrEscalationOver = errors.New("the escalation has no step left")
)

// Escalations is what the page reads and the admin API changes of
// escalation. Options.Escalations is nil when the daemon has none.
type Escalations interface {
	// Escalations returns the escalations f selects, the newest first.
	Escalations(ctx context.Context, f outbox.EscalationFilter) ([]outbox.Escalation, error)
	// Cancel stops the steps left of escalation id (the id of any of its
	// steps), as by asked. Its error wraps ErrUnknownEscalation or
	// ErrEscalationOver when there is nothing to cancel.
	Cancel(ctx context.Context, id int64, by string) (outbox.Escalation, error)
}

// Limits of what the page shows.
const (
	// escalationsRecent is how far back the page lists escalations that
	// ended, and escalationsRecentMax how many.
	escalationsRecent    = 24 * time.Hour
	escalationsRecentMax = 10
)

// registerEscalations adds the escalation API.
func (h *Handler) registerEscalations(e *echo.Echo) {
	if h.escalations == nil {
		return
	}
	e.GET("/api/v1/escalations", h.apiEscalations)
	e.POST("/api/v1/escalations/:id/cancel", h.apiCancelEscalation, h.admin.Middleware)
	e.POST("/escalations/:id/cancel", h.cancelEscalationForm, h.admin.Middleware)
}

// escalationStepJSON is one step in the admin API.
type escalationStepJSON struct {
	ID       int64  `json:"id"`
	Step     int    `json:"step"`
	After    string `json:"after"`
	Receiver string `json:"receiver"`
	DueAt    string `json:"due_at"`
	// State is pending, escalated, stopped or failed.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// EndedAt is when it stopped pending; EscalatedTo the notification
	// that carried its page.
	EndedAt     string `json:"ended_at,omitempty"`
	EscalatedTo int64  `json:"escalated_to,omitempty"`
	// Attempts counts checks that could not be made (Alertmanager did
	// not answer); Error is the last one's.
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
	// LeaseOwner is the process that last took the step.
	LeaseOwner string `json:"lease_owner,omitempty"`
}

// escalationJSON is one escalation in the admin API.
type escalationJSON struct {
	ID             int64  `json:"id"`
	GroupKey       string `json:"group_key"`
	Source         string `json:"source"`
	AlertName      string `json:"alert_name,omitempty"`
	Receiver       string `json:"receiver"`
	NotificationID int64  `json:"notification_id"`
	StartedAt      string `json:"started_at"`
	Open           bool   `json:"open"`
	// Next is the next step, while one is pending.
	Next  *escalationStepJSON  `json:"next,omitempty"`
	Steps []escalationStepJSON `json:"steps"`
}

func toStepJSON(s outbox.EscalationStep) escalationStepJSON {
	return escalationStepJSON{ID: s.ID, Step: s.Step, After: model.Duration(s.After).String(), Receiver: s.StepReceiver,
		DueAt: rfc3339(s.DueAt, nil), State: string(s.State), Reason: s.Reason, Detail: s.Detail, EndedAt: rfc3339(s.EndedAt, nil),
		EscalatedTo: s.EscalatedTo, Attempts: s.Attempts, Error: s.Error, LeaseOwner: s.LeaseOwner}
}

func toEscalationJSON(e outbox.Escalation) escalationJSON {
	j := escalationJSON{ID: e.ID, GroupKey: e.GroupKey, Source: e.Source, AlertName: e.AlertName, Receiver: e.Receiver,
		NotificationID: e.NotificationID, StartedAt: rfc3339(e.StartedAt, nil), Open: e.Open(), Steps: []escalationStepJSON{}}
	for _, s := range e.Steps {
		j.Steps = append(j.Steps, toStepJSON(s))
	}
	if next, ok := e.Next(); ok {
		n := toStepJSON(next)
		j.Next = &n
	}
	return j
}

// apiEscalations is GET /api/v1/escalations: the open ones (state=open,
// the default), or all started since a time (state=all, since=24h by
// default).
func (h *Handler) apiEscalations(c echo.Context) error {
	f := outbox.EscalationFilter{Open: true}
	switch st := c.QueryParam("state"); st {
	case "", "open":
	case "all":
		f = outbox.EscalationFilter{Since: h.now().Add(-escalationsRecent)}
	default:
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("state %q is not open or all", truncate(st, 20)))
	}
	if s := c.QueryParam("since"); s != "" {
		if f.Open {
			return echo.NewHTTPError(http.StatusBadRequest, "since goes with state=all: open escalations are listed whenever they began")
		}
		t, err := parseSince(s, h.now())
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		f.Since = t
	}
	f.Limit = 1000
	escs, err := h.escalations.Escalations(c.Request().Context(), f)
	if err != nil {
		return h.unavailable("list escalations", err)
	}
	out := struct {
		Escalations []escalationJSON `json:"escalations"`
	}{Escalations: []escalationJSON{}}
	for _, e := range escs {
		out.Escalations = append(out.Escalations, toEscalationJSON(e))
	}
	return c.JSON(http.StatusOK, out)
}

// cancelEscalation cancels the escalation the path names and maps the
// refusals to status codes. A cancel decides that nobody else is paged,
// so it is logged with where it came from.
func (h *Handler) cancelEscalation(c echo.Context, via string) (outbox.Escalation, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return outbox.Escalation{}, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("escalation id %q is not a positive whole number", truncate(c.Param("id"), 20)))
	}
	by := via
	if host, _, err := net.SplitHostPort(c.Request().RemoteAddr); err == nil {
		by += " from " + host
	}
	esc, err := h.escalations.Cancel(c.Request().Context(), id, by)
	switch {
	case errors.Is(err, ErrUnknownEscalation):
		return esc, echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no escalation with id %d", id))
	case errors.Is(err, ErrEscalationOver):
		return esc, echo.NewHTTPError(http.StatusConflict, fmt.Sprintf("escalation %d has no step left to cancel: it escalated, or was stopped, already", id))
	case err != nil:
		return esc, h.unavailable("cancel escalation", err)
	}
	h.logger.Info("escalation cancelled on request", append([]any{"escalation", esc.ID, "group_key", esc.GroupKey, "receiver", esc.Receiver, "via", via}, Caller(c)...)...)
	return esc, nil
}

// apiCancelEscalation is POST /api/v1/escalations/{id}/cancel.
func (h *Handler) apiCancelEscalation(c echo.Context) error {
	esc, err := h.cancelEscalation(c, "the admin API")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "cancelled", "escalation": toEscalationJSON(esc)})
}

// cancelEscalationForm is the page's cancel button: the same, then back
// to the page.
func (h *Handler) cancelEscalationForm(c echo.Context) error {
	if _, err := h.cancelEscalation(c, "the status page"); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, h.prefix+"/#escalations")
}

// escalationRow is one escalation as the page shows it.
type escalationRow struct {
	ID             int64
	AlertName      string
	GroupKey       string
	Receiver       string
	NotificationID int64
	StartedAt      time.Time
	Open           bool
	// Next is the next step, while one is pending.
	Next  *outbox.EscalationStep
	Steps []stepRow
}

// stepRow is one step as the page shows it.
type stepRow struct {
	outbox.EscalationStep
	// AfterText is its delay as configured ("10m").
	AfterText string
}

func toEscalationRow(e outbox.Escalation) escalationRow {
	r := escalationRow{ID: e.ID, AlertName: e.AlertName, GroupKey: e.GroupKey, Receiver: e.Receiver, NotificationID: e.NotificationID,
		StartedAt: e.StartedAt, Open: e.Open()}
	if next, ok := e.Next(); ok {
		r.Next = &next
	}
	for _, s := range e.Steps {
		r.Steps = append(r.Steps, stepRow{EscalationStep: s, AfterText: model.Duration(s.After).String()})
	}
	return r
}

// escalationSection is the page's escalation section.
type escalationSection struct {
	Open   []escalationRow
	Recent []escalationRow
	Err    string
}

// escalationsSection reads what the page shows; nil hides the section.
func (h *Handler) escalationsSection(ctx context.Context, now time.Time) *escalationSection {
	if h.escalations == nil {
		return nil
	}
	sec := &escalationSection{}
	open, err := h.escalations.Escalations(ctx, outbox.EscalationFilter{Open: true, Limit: 1000})
	if err != nil {
		h.logger.Error("read escalations", "err", err)
		sec.Err = "the escalations could not be read; see the bridge's log"
		return sec
	}
	for _, e := range open {
		sec.Open = append(sec.Open, toEscalationRow(e))
	}
	recent, err := h.escalations.Escalations(ctx, outbox.EscalationFilter{Since: now.Add(-escalationsRecent), Limit: 200})
	if err != nil {
		h.logger.Error("read escalations", "err", err)
		sec.Err = "the escalations could not be read; see the bridge's log"
		return sec
	}
	for _, e := range recent {
		if !e.Open() && len(sec.Recent) < escalationsRecentMax {
			sec.Recent = append(sec.Recent, toEscalationRow(e))
		}
	}
	return sec
}
