package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/sms"
)

// The on-call part of the page and the admin API: who is on call for
// every list, until when, and the overrides, which the API adds and
// deletes (writes need the admin API enabled).

// Errors the Oncall implementation reports, mapped to status codes.
var (
	// ErrUnknownList: no on-call list has the name (404).
	ErrUnknownList = errors.New("no such on-call list")
	// ErrUnknownOverride: the list has no override with the id (404).
	ErrUnknownOverride = errors.New("no such override")
	// ErrBadOverride wraps what is wrong with a requested override; its
	// text is shown to the caller (400).
	ErrBadOverride = errors.New("bad override")
)

// Oncall is the running bridge's on-call lists as the page and the API
// see them.
type Oncall interface {
	// Lists returns every on-call list at now, in configuration order.
	Lists(now time.Time) []OncallList
	// AddOverride stores an override for list.
	AddOverride(ctx context.Context, list string, req OverrideRequest) (Override, error)
	// DeleteOverride removes list's override id.
	DeleteOverride(ctx context.Context, list string, id int64) error
}

// OncallList is one on-call list at one instant. Numbers are in full;
// the page and the API mask them.
type OncallList struct {
	Name     string
	TimeZone string
	// Now is who is on call; Source says why: "rotation", "layer 1
	// (business-hours)", "override 3", "override (configuration)" or
	// "numbers".
	Now    []Person
	Source string
	// Until is the next handoff, Next who comes on then; Until is zero
	// when none comes within a year.
	Until time.Time
	Next  []Person
	// Schedule describes the list for people, such as "rotation alice,
	// bob, carol; shift 1w from 2026-01-05 09:00 CET".
	Schedule      string
	NotifyHandoff bool
	// Overrides are the configuration's and the run-time ones that have
	// not ended.
	Overrides []Override
	// Location is the list's time zone, in which times are written; nil
	// is UTC.
	Location *time.Location
}

// Person is one member on call. Number is empty for a name the
// configuration no longer knows.
type Person struct {
	Name   string
	Number string
}

func (p Person) String() string {
	switch {
	case p.Number == "":
		return p.Name + " (not in the configuration)"
	case p.Name == "":
		return sms.MaskNumber(p.Number)
	default:
		return p.Name + " (" + sms.MaskNumber(p.Number) + ")"
	}
}

// Override is an on-call override. ID is 0 for one from the
// configuration, which the API cannot delete.
type Override struct {
	ID        int64
	List      string
	Members   []Person
	Start     time.Time
	End       time.Time
	CreatedAt time.Time
}

// OverrideRequest is the body of POST /api/v1/oncall/{name}/overrides.
type OverrideRequest struct {
	// Members are people's names or numbers.
	Members []string `json:"members"`
	// Start and End are RFC 3339 times or local times in the list's zone
	// ("2026-12-24T09:00"); no start means now.
	Start string `json:"start"`
	End   string `json:"end"`
}

// registerOncall adds the on-call API when the bridge has lists to show.
func (h *Handler) registerOncall(e *echo.Echo) {
	if h.oncall == nil {
		return
	}
	e.GET("/api/v1/oncall", h.apiOncall, apiHeaders)
	e.GET("/api/v1/oncall/:name/overrides", h.apiOverrides, apiHeaders)
	e.POST("/api/v1/oncall/:name/overrides", h.apiAddOverride, apiHeaders, h.admin.Middleware)
	e.DELETE("/api/v1/oncall/:name/overrides/:id", h.apiDeleteOverride, apiHeaders, h.admin.Middleware)
}

type personJSON struct {
	Name string `json:"name,omitempty"`
	// Number is masked.
	Number string `json:"number,omitempty"`
}

type overrideJSON struct {
	ID int64 `json:"id,omitempty"`
	// Source is "config" or "api".
	Source    string       `json:"source"`
	List      string       `json:"oncall"`
	Members   []personJSON `json:"members"`
	Start     string       `json:"start"`
	End       string       `json:"end"`
	CreatedAt string       `json:"created_at,omitempty"`
}

type oncallJSON struct {
	Name      string         `json:"name"`
	TimeZone  string         `json:"time_zone"`
	OnCall    []personJSON   `json:"on_call"`
	Source    string         `json:"source"`
	Until     string         `json:"until,omitempty"`
	Next      []personJSON   `json:"next,omitempty"`
	Schedule  string         `json:"schedule"`
	Notify    bool           `json:"notify_handoff"`
	Overrides []overrideJSON `json:"overrides"`
}

func peopleJSON(ps []Person) []personJSON {
	out := make([]personJSON, len(ps))
	for i, p := range ps {
		out[i] = personJSON{Name: p.Name, Number: sms.MaskNumber(p.Number)}
		if p.Number == "" {
			out[i].Number = ""
		}
	}
	return out
}

// rfc3339 writes t in loc, or "" for zero.
func rfc3339(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(time.RFC3339)
}

func toOverrideJSON(o Override, loc *time.Location) overrideJSON {
	j := overrideJSON{ID: o.ID, Source: "api", List: o.List, Members: peopleJSON(o.Members),
		Start: rfc3339(o.Start, loc), End: rfc3339(o.End, loc), CreatedAt: rfc3339(o.CreatedAt, loc)}
	if o.ID == 0 {
		j.Source = "config"
	}
	return j
}

func toOncallJSON(l OncallList) oncallJSON {
	j := oncallJSON{Name: l.Name, TimeZone: l.TimeZone, OnCall: peopleJSON(l.Now), Source: l.Source,
		Until: rfc3339(l.Until, l.Location), Next: peopleJSON(l.Next), Schedule: l.Schedule, Notify: l.NotifyHandoff,
		Overrides: []overrideJSON{}}
	for _, o := range l.Overrides {
		j.Overrides = append(j.Overrides, toOverrideJSON(o, l.Location))
	}
	return j
}

func (h *Handler) apiOncall(c echo.Context) error {
	out := struct {
		Oncall []oncallJSON `json:"oncall"`
	}{Oncall: []oncallJSON{}}
	for _, l := range h.oncall.Lists(h.now()) {
		out.Oncall = append(out.Oncall, toOncallJSON(l))
	}
	return c.JSON(http.StatusOK, out)
}

// list finds the list the path names.
func (h *Handler) list(c echo.Context) (OncallList, error) {
	name := c.Param("name")
	for _, l := range h.oncall.Lists(h.now()) {
		if l.Name == name {
			return l, nil
		}
	}
	return OncallList{}, echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no on-call list named %q is configured", truncate(name, 64)))
}

func (h *Handler) apiOverrides(c echo.Context) error {
	l, err := h.list(c)
	if err != nil {
		return err
	}
	out := struct {
		Overrides []overrideJSON `json:"overrides"`
	}{Overrides: []overrideJSON{}}
	for _, o := range l.Overrides {
		out.Overrides = append(out.Overrides, toOverrideJSON(o, l.Location))
	}
	return c.JSON(http.StatusOK, out)
}

func (h *Handler) apiAddOverride(c echo.Context) error {
	l, err := h.list(c)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "could not read the body")
	}
	var req OverrideRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, `body must be JSON like {"members":["erin"],"start":"2026-12-24T00:00","end":"2026-12-27T00:00"}: `+truncate(err.Error(), 120))
	}
	o, err := h.oncall.AddOverride(c.Request().Context(), l.Name, req)
	switch {
	case errors.Is(err, ErrUnknownList):
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no on-call list named %q is configured", l.Name))
	case errors.Is(err, ErrBadOverride):
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	case err != nil:
		return h.unavailable("add override", err)
	}
	// An override decides who is paged: logged with where it came from.
	h.logger.Info("on-call override added on request", append([]any{"oncall", l.Name, "id", o.ID}, Caller(c)...)...)
	return c.JSON(http.StatusCreated, toOverrideJSON(o, l.Location))
}

func (h *Handler) apiDeleteOverride(c echo.Context) error {
	l, err := h.list(c)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("override id %q is not a positive whole number", truncate(c.Param("id"), 20)))
	}
	err = h.oncall.DeleteOverride(c.Request().Context(), l.Name, id)
	switch {
	case errors.Is(err, ErrUnknownOverride):
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("on-call list %q has no override %d added at run time", l.Name, id))
	case err != nil:
		return h.unavailable("delete override", err)
	}
	h.logger.Info("on-call override deleted on request", append([]any{"oncall", l.Name, "id", id}, Caller(c)...)...)
	return c.JSON(http.StatusOK, map[string]any{"status": "deleted", "id": id, "oncall": l.Name})
}

// oncallRow is one list as the page shows it, times written in its zone.
type oncallRow struct {
	Name, TimeZone, Source, Schedule string
	Now, Next                        string
	Until                            string // "Mon 30 Mar 09:00 CEST", or ""
	In                               string // "3d 4h"
	NotifyHandoff                    bool
	Overrides                        []overrideRow
}

type overrideRow struct {
	ID                int64
	Members           string
	Start, End, State string
}

// oncallSection is the page's on-call section; nil hides it.
func (h *Handler) oncallSection() []oncallRow {
	if h.oncall == nil {
		return nil
	}
	now := h.now()
	rows := []oncallRow{}
	for _, l := range h.oncall.Lists(now) {
		loc := l.Location
		if loc == nil {
			loc = time.UTC
		}
		r := oncallRow{Name: l.Name, TimeZone: l.TimeZone, Source: l.Source, Schedule: l.Schedule, NotifyHandoff: l.NotifyHandoff,
			Now: joinPeople(l.Now), Next: joinPeople(l.Next)}
		if !l.Until.IsZero() {
			r.Until = l.Until.In(loc).Format("Mon 2 Jan 15:04 MST")
			r.In = humanDuration(age(now, l.Until))
		}
		for _, o := range l.Overrides {
			state := "upcoming"
			if !now.Before(o.Start) {
				state = "in force"
			}
			r.Overrides = append(r.Overrides, overrideRow{ID: o.ID, Members: joinPeople(o.Members), State: state,
				Start: o.Start.In(loc).Format("Mon 2 Jan 15:04 MST"), End: o.End.In(loc).Format("Mon 2 Jan 15:04 MST")})
		}
		rows = append(rows, r)
	}
	return rows
}

func joinPeople(ps []Person) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}
