package status

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

//go:embed templates/*.html templates/parts/*.html static/*
var assets embed.FS

// pageLimit is how many notifications the page lists unless asked for
// more.
const pageLimit = 25

// maxPageLimit is the most notifications the page lists, as the outbox
// caps it.
const maxPageLimit = 200

// defaultRefresh is how often the status page reloads itself.
const defaultRefresh = 30 * time.Second

// maxLimit is the most deliveries one request returns, as the outbox caps it.
const maxLimit = 1000

// states are the delivery states a filter may name, in display order.
var states = outbox.States

// Handler serves the status page and the admin API.
type Handler struct {
	store   Store
	bridge  Bridge
	started time.Time
	now     func() time.Time
	logger  *slog.Logger
	index   *template.Template
	routes  *template.Template
	css     []byte
	// noiseSrc reports the throttle and budget; nil hides them.
	noiseSrc NoiseSource
	// prefix starts every link and redirect (the external URL's path).
	prefix string
	// refresh is how often the status page reloads itself; 0 never.
	refresh time.Duration
	// admin guards every endpoint that changes state.
	admin *Gate
	// tests limits test SMS per receiver.
	tests testLimiter
	// oncall are the on-call lists (nil: none).
	oncall Oncall
	// twoway are the opt-outs and acknowledgements (nil: none).
	twoway TwoWay
	// escalations are the escalations (nil: none).
	escalations Escalations
}

// New returns a Handler; it fails only if the embedded templates do.
func New(o Options) (*Handler, error) {
	if o.Store == nil || o.Bridge == nil {
		return nil, errors.New("status: a store and a bridge are required")
	}
	h := &Handler{store: o.Store, bridge: o.Bridge, started: o.Started, now: o.Now, logger: o.Logger,
		noiseSrc: o.Noise, oncall: o.Oncall, twoway: o.TwoWay, escalations: o.Escalations, prefix: strings.TrimRight(o.PathPrefix, "/"), refresh: o.Refresh}
	switch {
	case h.refresh == 0:
		h.refresh = defaultRefresh
	case h.refresh < 0:
		h.refresh = 0
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.admin = NewGate(FlagAdminAPI, o.AdminAPI, h.logger)
	var err error
	if h.index, err = h.parse("index.html"); err != nil {
		return nil, err
	}
	if h.routes, err = h.parse("routes.html"); err != nil {
		return nil, err
	}
	if h.css, err = assets.ReadFile("static/status.css"); err != nil {
		return nil, fmt.Errorf("status: read stylesheet: %w", err)
	}
	return h, nil
}

func (h *Handler) parse(page string) (*template.Template, error) {
	t, err := template.New(page).Funcs(h.funcs()).ParseFS(assets, "templates/layout.html", "templates/parts/*.html", "templates/oncall.html",
		"templates/noise.html", "templates/escalations.html", "templates/"+page)
	if err != nil {
		return nil, fmt.Errorf("status: parse %s: %w", page, err)
	}
	return t, nil
}

// Register adds the page and the admin API to e. They sit behind whatever
// authentication serves e (the --web.config.file basic auth); every
// endpoint that changes state sits behind the admin gate too.
func (h *Handler) Register(e *echo.Echo) {
	e.GET("/", h.page)
	e.GET("/routes-test", h.routesTest)
	e.GET("/static/status.css", h.stylesheet)
	e.POST("/deliveries/:id/retry", h.retryForm, h.admin.Middleware)
	e.GET("/api/v1/status", h.apiStatus, apiHeaders)
	e.GET("/api/v1/deliveries", h.apiDeliveries, apiHeaders)
	e.POST("/api/v1/deliveries/:id/retry", h.apiRetry, apiHeaders, h.admin.Middleware)
	e.POST("/api/v1/test", h.apiTest, apiHeaders, h.admin.Middleware)
	h.registerOncall(e)
	h.registerEscalations(e)
}

// apiHeaders marks every answer of the API, errors included, as the page
// marks itself: never stored by a browser or a proxy (alert texts, masked
// numbers, on-call schedules), and never sniffed as anything but JSON.
func apiHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hd := c.Response().Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}

// Admin is the gate of --web.enable-admin-api: every endpoint that changes
// state, wherever it is registered, takes its Middleware.
func (h *Handler) Admin() *Gate { return h.admin }

// filterFrom reads status, since, notification and limit from the query.
func (h *Handler) filterFrom(c echo.Context, defaultLimit int) (outbox.Filter, error) {
	f := outbox.Filter{Limit: defaultLimit}
	if s := c.QueryParam("notification"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return f, fmt.Errorf("notification %q is not a positive whole number", truncate(s, 20))
		}
		f.NotificationID = id
	}
	if s := c.QueryParam("status"); s != "" && s != "all" {
		st, err := parseState(s)
		if err != nil {
			return f, err
		}
		f.State = st
	}
	if s := c.QueryParam("since"); s != "" {
		t, err := parseSince(s, h.now())
		if err != nil {
			return f, err
		}
		f.Since = t
	}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return f, fmt.Errorf("limit %q is not a whole number from 1 to %d", truncate(s, 20), maxLimit)
		}
		f.Limit = n
	}
	return f, nil
}

func parseState(s string) (outbox.State, error) {
	for _, st := range states {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = string(st)
	}
	return "", fmt.Errorf("status %q is not one of %s", truncate(s, 20), strings.Join(names, ", "))
}

// parseSince takes an RFC 3339 time or a duration back from now ("90m",
// "1h30m", "2d").
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return now.Add(-time.Duration(d)), nil
	}
	return time.Time{}, fmt.Errorf("since %q is neither an RFC 3339 time (2026-11-26T03:00:00Z) nor a duration (1h, 30m, 2d)", truncate(s, 40))
}

// deliveryJSON is one delivery in the admin API.
type deliveryJSON struct {
	ID             int64     `json:"id"`
	NotificationID int64     `json:"notification_id"`
	ReceivedAt     time.Time `json:"received_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	Source         string    `json:"source"`
	GroupKey       string    `json:"group_key"`
	// AlertStatus is the notification's firing or resolved.
	AlertStatus string `json:"alert_status"`
	AlertName   string `json:"alert_name,omitempty"`
	Receiver    string `json:"receiver"`
	// Number is masked: the API is no way round the page's masking.
	Number   string `json:"number"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Segments int    `json:"segments"`
	Text     string `json:"text"`
	// Account is the provider account of the last request.
	Account           string `json:"account,omitempty"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	// DryRun is set for a delivery the dry run's fake took: nothing was
	// sent.
	DryRun    bool   `json:"dry_run,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
	// NextAttemptAt is when a pending delivery is tried next, or a held
	// one goes.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// BundledInto is the digest's delivery id of a bundled row.
	BundledInto int64 `json:"bundled_into,omitempty"`
	// Person is who was on call at the number when it was routed.
	Person string `json:"person,omitempty"`
	// Receipt is the handset's final status (delivered, failed);
	// ReceiptWord the provider's latest word, ReceiptAt its time.
	Receipt     string     `json:"receipt,omitempty"`
	ReceiptWord string     `json:"receipt_word,omitempty"`
	ReceiptAt   *time.Time `json:"receipt_at,omitempty"`
	// ReplyCode is the code its text asks the recipient to reply with.
	ReplyCode string `json:"reply_code,omitempty"`
	// FailoverOf is the delivery this one is the failover of;
	// FailedOverTo the notification that carried this one's failover.
	FailoverOf   int64 `json:"failover_of,omitempty"`
	FailedOverTo int64 `json:"failed_over_to,omitempty"`
}

// maskGroupKey masks the number in the group key of the answers to
// replies ("replies:<number>"); other group keys are the sender's.
func maskGroupKey(k string) string {
	if n, ok := strings.CutPrefix(k, "replies:"); ok && n != "" {
		return "replies:" + sms.MaskNumber(n)
	}
	return k
}

func toJSON(r outbox.Record) deliveryJSON {
	return deliveryJSON{
		ID: r.ID, NotificationID: r.NotificationID, ReceivedAt: r.ReceivedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		Source: r.Source, GroupKey: maskGroupKey(r.GroupKey), AlertStatus: r.Status, AlertName: r.AlertName, Receiver: r.Receiver,
		Number: sms.MaskNumber(r.Number), Status: string(r.State), Attempts: r.Attempts, Segments: r.Segments,
		Text: r.Text, Account: r.Account, ProviderMessageID: r.APIMessageID, DryRun: isDryRun(r), ErrorCode: r.ErrorCode, Error: r.Error, Person: r.Person,
		NextAttemptAt: optTime(r.NextAttemptAt), BundledInto: r.BundledInto,
		Receipt: r.Receipt, ReceiptWord: r.ReceiptWord, ReceiptAt: optTime(r.ReceiptAt), ReplyCode: r.ReplyCode,
		FailoverOf: r.FailoverOf, FailedOverTo: r.FailedOverTo,
	}
}

// DryRunIDPrefix starts the message ids the dry run's fake provider gives:
// a delivery with one was never sent to a phone.
const DryRunIDPrefix = "dry-run-"

func isDryRun(r outbox.Record) bool { return strings.HasPrefix(r.APIMessageID, DryRunIDPrefix) }

func (h *Handler) apiDeliveries(c echo.Context) error {
	f, err := h.filterFrom(c, 100)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	recs, err := h.store.Deliveries(c.Request().Context(), f)
	if err != nil {
		return h.unavailable("list deliveries", err)
	}
	out := struct {
		Deliveries []deliveryJSON `json:"deliveries"`
	}{Deliveries: make([]deliveryJSON, 0, len(recs))}
	for _, r := range recs {
		out.Deliveries = append(out.Deliveries, toJSON(r))
	}
	return c.JSON(http.StatusOK, out)
}

func parseID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("delivery id %q is not a positive whole number", truncate(c.Param("id"), 20)))
	}
	return id, nil
}

// retry re-queues delivery id and maps the store's refusal to a status code.
// A retry is an operator's decision, so it is logged with where it came
// from.
func (h *Handler) retry(c echo.Context, id int64, via string) error {
	err := h.store.Retry(c.Request().Context(), id)
	switch {
	case err == nil:
		h.logger.Info("failed delivery queued again on request", append([]any{"delivery", id, "via", via}, Caller(c)...)...)
		return nil
	case errors.Is(err, ErrUnknownDelivery):
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no delivery with id %d", id))
	case errors.Is(err, outbox.ErrNotFailed):
		return echo.NewHTTPError(http.StatusConflict, fmt.Sprintf("delivery %d has not failed (or does not exist); only a failed delivery can be retried", id))
	case errors.Is(err, outbox.ErrOptedOut):
		return echo.NewHTTPError(http.StatusConflict, fmt.Sprintf("delivery %d goes to a number that replied STOP; it gets nothing until it replies START", id))
	default:
		return h.unavailable("retry delivery", err)
	}
}

func (h *Handler) apiRetry(c echo.Context) error {
	id, err := parseID(c)
	if err != nil {
		return err
	}
	if err := h.retry(c, id, "api"); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"status": "queued", "id": id})
}

// retryForm is the page's retry button: the same as the API, then back
// to the page.
func (h *Handler) retryForm(c echo.Context) error {
	id, err := parseID(c)
	if err != nil {
		return err
	}
	if err := h.retry(c, id, "status page"); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, h.prefix+"/?status=pending")
}

// testRequest is the body of POST /api/v1/test.
type testRequest struct {
	Receiver string `json:"receiver"`
}

func (h *Handler) apiTest(c echo.Context) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "could not read the body")
	}
	var req testRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, `body must be JSON like {"receiver":"ops"}`)
	}
	if strings.TrimSpace(req.Receiver) == "" {
		return echo.NewHTTPError(http.StatusBadRequest, `"receiver" is missing: name the receiver to send a test SMS to`)
	}
	now := h.now()
	if wait, ok := h.tests.reserve(req.Receiver, now); !ok {
		h.logger.Warn("test sms refused: over the limit", append(Caller(c), "receiver", truncate(req.Receiver, 64), "retry_after", wait.Round(time.Second))...)
		c.Response().Header().Set("Retry-After", retryAfter(wait))
		return echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf(
			"test sms to %q refused: at most one per %s and %d a day per receiver; retry after %s",
			truncate(req.Receiver, 64), TestSendInterval, TestSendDailyCap, wait.Round(time.Second)))
	}
	res, err := h.bridge.SendTest(c.Request().Context(), req.Receiver)
	if err != nil {
		h.tests.release(req.Receiver, now)
	}
	switch {
	case errors.Is(err, ErrUnknownReceiver):
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no receiver named %q is configured", truncate(req.Receiver, 64)))
	case errors.Is(err, ErrNoNumbers):
		return echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf("receiver %q has no numbers", truncate(req.Receiver, 64)))
	case err != nil:
		return h.unavailable("queue test sms", err)
	}
	masked := make([]string, len(res.Numbers))
	for i, n := range res.Numbers {
		masked[i] = sms.MaskNumber(n)
	}
	h.logger.Info("test sms queued", append(Caller(c), "receiver", res.Receiver, "id", res.ID, "recipients", len(res.Numbers))...)
	out := map[string]any{
		"status": "accepted", "id": res.ID, "receiver": res.Receiver, "recipients": len(res.Numbers),
		"numbers": masked, "text": res.Text,
	}
	if h.bridge.Info().DryRun {
		out["dry_run"] = true
	}
	return c.JSON(http.StatusAccepted, out)
}

// unavailable logs err, which the caller never sees, and answers 503:
// the store is ours, not the caller's mistake.
func (h *Handler) unavailable(what string, err error) error {
	h.logger.Error(what, "err", err)
	return echo.NewHTTPError(http.StatusServiceUnavailable, what+" failed; see the bridge's log")
}

// statusJSON is GET /api/v1/status.
type statusJSON struct {
	Version       string    `json:"version"`
	Revision      string    `json:"revision"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Ready         bool      `json:"ready"`
	NotReady      string    `json:"not_ready_reason,omitempty"`
	AdminAPI      bool      `json:"admin_api"`
	// DryRun says that nothing is sent: every account goes to the
	// in-process fake of --sms.dry-run.
	DryRun      bool         `json:"dry_run"`
	Config      configJSON   `json:"config"`
	Provider    providerJSON `json:"provider"`
	Outbox      *outboxJSON  `json:"outbox,omitempty"`
	OutboxError string       `json:"outbox_error,omitempty"`
	Noise       *noiseJSON   `json:"noise,omitempty"`
	NoiseError  string       `json:"noise_error,omitempty"`
	// Last24h counts the last 24 hours; absent when the outbox failed.
	Last24h *countsJSON `json:"last_24h,omitempty"`
	// OptedOut are the numbers that replied STOP, masked; absent without
	// two-way SMS.
	OptedOut []optOutJSON `json:"opted_out,omitempty"`
}

type countsJSON struct {
	Notifications int `json:"notifications"`
	Accepted      int `json:"accepted"`
	Failed        int `json:"failed"`
}

type configJSON struct {
	File             string    `json:"file"`
	Hash             string    `json:"hash"`
	LoadedAt         time.Time `json:"loaded_at"`
	LastReloadAt     time.Time `json:"last_reload_at"`
	LastReloadResult string    `json:"last_reload_result"`
	LastReloadError  string    `json:"last_reload_error,omitempty"`
}

type providerJSON struct {
	State      string        `json:"state"`
	Until      *time.Time    `json:"until,omitempty"`
	Since      *time.Time    `json:"since,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	StatusCode int           `json:"status_code,omitempty"`
	Message    string        `json:"message,omitempty"`
	InFlight   int           `json:"in_flight"`
	Accounts   []accountJSON `json:"accounts,omitempty"`
}

type accountJSON struct {
	Name         string     `json:"name"`
	Mode         string     `json:"mode"`
	Active       bool       `json:"active"`
	PausedUntil  *time.Time `json:"paused_until,omitempty"`
	HeldSince    *time.Time `json:"held_since,omitempty"`
	HeldReason   string     `json:"held_reason,omitempty"`
	HeldStatus   int        `json:"held_status_code,omitempty"`
	HeldMessage  string     `json:"held_message,omitempty"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
	NextProbe    *time.Time `json:"next_probe,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	LastErrorAt  *time.Time `json:"last_error_at,omitempty"`
	Requests15m  int        `json:"requests_15m"`
	Errors15m    int        `json:"errors_15m"`
	InFlight     int        `json:"in_flight"`
}

type outboxJSON struct {
	Pending                 int     `json:"pending"`
	InFlight                int     `json:"in_flight"`
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	// Held counts deliveries the throttle holds (not part of Pending).
	Held int `json:"held,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (h *Handler) apiStatus(c echo.Context) error {
	now := h.now()
	info, prov := h.bridge.Info(), h.bridge.Provider()
	out := statusJSON{
		Version: version.Version, Revision: version.Revision,
		StartedAt: h.started.UTC(), UptimeSeconds: now.Sub(h.started).Seconds(),
		Ready: info.NotReady == "", NotReady: info.NotReady, AdminAPI: h.admin.Enabled(),
		Config: configJSON{
			File: info.ConfigFile, Hash: info.ConfigHash, LoadedAt: info.LoadedAt.UTC(),
			LastReloadAt: info.LastReload.At.UTC(), LastReloadResult: "success", LastReloadError: info.LastReload.Err,
		},
		Provider: providerJSON{State: prov.State, Until: optTime(prov.Until), Since: optTime(prov.Since),
			Reason: prov.Reason, StatusCode: prov.StatusCode, Message: prov.Message, InFlight: prov.InFlight},
		DryRun: info.DryRun,
	}
	for _, a := range prov.Accounts {
		out.Provider.Accounts = append(out.Provider.Accounts, accountJSON{
			Name: a.Name, Mode: a.Mode, Active: a.Active, PausedUntil: optTime(a.PausedUntil),
			HeldSince: optTime(a.HeldSince), HeldReason: a.HeldReason, HeldStatus: a.HeldStatus, HeldMessage: a.HeldMessage,
			FailingSince: optTime(a.FailingSince), NextProbe: optTime(a.NextProbe),
			LastError: a.LastError, LastErrorAt: optTime(a.LastErrorAt),
			Requests15m: a.Requests, Errors15m: a.Errors, InFlight: a.InFlight,
		})
	}
	if info.LastReload.Err != "" {
		out.Config.LastReloadResult = "failure"
	}
	st, err := h.store.Stats(c.Request().Context())
	if err != nil {
		h.logger.Error("read outbox stats", "err", err)
		out.OutboxError = "the outbox could not be read; see the bridge's log"
	} else {
		out.Outbox = &outboxJSON{Pending: st.Pending, InFlight: st.InFlight, Held: st.Held, OldestPendingAgeSeconds: age(st.Oldest, now).Seconds()}
	}
	if n, msg := h.noise(c.Request().Context()); n != nil {
		out.Noise = toNoiseJSON(n)
	} else {
		out.NoiseError = msg
	}
	if cs, err := h.store.Counts(c.Request().Context(), now.Add(-countsPeriod)); err != nil {
		h.logger.Error("count the outbox", "err", err)
	} else {
		out.Last24h = &countsJSON{Notifications: cs.Notifications, Accepted: cs.Accepted, Failed: cs.Failed}
	}
	out.OptedOut = h.optOutsJSON(c.Request().Context())
	return c.JSON(http.StatusOK, out)
}

func age(t, now time.Time) time.Duration {
	if t.IsZero() || now.Before(t) {
		return 0
	}
	return now.Sub(t)
}

func (h *Handler) stylesheet(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", h.css)
}

// render executes t into a buffer first, so a failing template answers
// 500 instead of half a page.
func (h *Handler) render(c echo.Context, code int, t *template.Template, data any) error {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		h.logger.Error("render status page", "err", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "the page could not be rendered; see the bridge's log")
	}
	hd := c.Response().Header()
	hd.Set("Cache-Control", "no-store")
	// Nothing but our own stylesheet runs on the page; no framing.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	return c.HTMLBlob(code, buf.Bytes())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
