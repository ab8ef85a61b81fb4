package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
)

// DefaultBodyLimit is the largest body accepted when a source sets none.
const DefaultBodyLimit = 1 << 20

// Source is one intake endpoint as the current configuration defines it.
type Source struct {
	Name string
	// Verifier authenticates requests; nil means the endpoint is open.
	Verifier *auth.Verifier
	// Mapping turns a generic JSON body into alerts; nil for Alertmanager.
	Mapping *mapping.Mapping
	// BodyLimit is the largest body accepted, in bytes.
	BodyLimit int64
	// Limiter bounds the request rate; nil means unlimited.
	Limiter *rate.Limiter
}

// State is everything the handlers need from one configuration. It is built
// whole on (re)load and swapped in at once.
type State struct {
	Alertmanager *Source
	Webhooks     map[string]*Source
}

// Metrics are the intake's metrics.
type Metrics struct {
	received     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
}

// NewMetrics registers the intake's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_notifications_received_total",
			Help: "Notifications received, by source and outcome.",
		}, []string{"source", "outcome"}),
		authFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_webhook_auth_failures_total",
			Help: "Requests refused for wrong or missing credentials, by source and reason.",
		}, []string{"source", "reason"}),
	}
}

func (m *Metrics) precreate(s *Source) {
	for _, o := range Outcomes {
		m.received.WithLabelValues(s.Name, o)
	}
	if s.Verifier != nil {
		for _, r := range auth.Reasons {
			m.authFailures.WithLabelValues(s.Name, r)
		}
	}
}

// Handler serves the intake endpoints.
type Handler struct {
	sink    Sink
	logger  *slog.Logger
	metrics *Metrics
	state   atomic.Pointer[State]
	now     func() time.Time
}

// New returns a Handler that hands notifications to sink. It answers 503
// until SetState is called.
func New(sink Sink, logger *slog.Logger, m *Metrics) *Handler {
	return &Handler{sink: sink, logger: logger.With("component", "receiver"), metrics: m, now: time.Now}
}

// SetState swaps in the sources of a new configuration.
func (h *Handler) SetState(s *State) {
	if s.Alertmanager != nil {
		h.metrics.precreate(s.Alertmanager)
	}
	for _, w := range s.Webhooks {
		h.metrics.precreate(w)
	}
	h.metrics.received.WithLabelValues("unknown", "unknown_source")
	h.state.Store(s)
}

// Register adds the intake routes to e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST("/api/v1/alertmanager", h.alertmanager)
	e.POST("/api/v1/webhooks/:source", h.webhook)
}

// accepted is the body of a 202.
type accepted struct {
	Status     string `json:"status"`
	ID         int64  `json:"id,omitempty"`
	Recipients int    `json:"recipients"`
}

// amPayload is Alertmanager's webhook body, version 4.
type amPayload struct {
	template.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts int    `json:"truncatedAlerts"`
}

func (h *Handler) alertmanager(c echo.Context) error {
	st := h.state.Load()
	if st == nil || st.Alertmanager == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "not ready: no configuration loaded")
	}
	src := st.Alertmanager
	body, err := h.intake(c, src)
	if err != nil {
		return err
	}
	n, err := DecodeAlertmanager(body, h.now())
	if err != nil {
		return h.refuse(src.Name, "invalid", http.StatusBadRequest, err.Error())
	}
	return h.accept(c, src, n)
}

// DecodeAlertmanager decodes and checks an Alertmanager webhook body
// (version 4). Its errors are written for the sender to read.
func DecodeAlertmanager(body []byte, now time.Time) (*Notification, error) {
	var p amPayload
	if err := decodeJSON(body, &p); err != nil {
		return nil, err
	}
	if err := validateAlertmanager(&p); err != nil {
		return nil, err
	}
	return &Notification{
		Source:          SourceAlertmanager,
		Data:            p.Data,
		GroupKey:        p.GroupKey,
		TruncatedAlerts: p.TruncatedAlerts,
		ReceivedAt:      now,
	}, nil
}

func validateAlertmanager(p *amPayload) error {
	if p.Version != "4" {
		if p.Version == "" {
			return errors.New(`payload has no "version"; smsbridge takes Alertmanager's webhook payload, version "4"`)
		}
		return fmt.Errorf(`payload version %q is not supported; smsbridge takes Alertmanager's webhook payload, version "4"`, p.Version)
	}
	if len(p.Alerts) == 0 {
		return errors.New(`payload has no alerts: "alerts" is missing or empty`)
	}
	if p.Status != "firing" && p.Status != "resolved" {
		return fmt.Errorf(`payload status %q is neither "firing" nor "resolved"`, truncate(p.Status, 40))
	}
	if p.TruncatedAlerts < 0 {
		return errors.New(`"truncatedAlerts" is negative`)
	}
	for i, a := range p.Alerts {
		if a.Status != "firing" && a.Status != "resolved" {
			return fmt.Errorf(`alerts[%d].status %q is neither "firing" nor "resolved"`, i, truncate(a.Status, 40))
		}
		if len(a.Labels) == 0 {
			return fmt.Errorf("alerts[%d] has no labels", i)
		}
	}
	return nil
}

func (h *Handler) webhook(c echo.Context) error {
	st := h.state.Load()
	if st == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "not ready: no configuration loaded")
	}
	name := c.Param("source")
	src, ok := st.Webhooks[name]
	if !ok {
		h.metrics.received.WithLabelValues("unknown", "unknown_source").Inc()
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no webhook source named %q is configured", truncate(name, 64)))
	}
	body, err := h.intake(c, src)
	if err != nil {
		return err
	}
	res, err := src.Mapping.Apply(body, c.Request().Header)
	if err != nil {
		var be *mapping.BodyError
		if errors.As(err, &be) {
			return h.refuse(src.Name, "invalid", http.StatusBadRequest, err.Error())
		}
		// A template that fails for this body is the sender's payload not
		// fitting the mapping: 422, and never the body itself in the log.
		return h.refuse(src.Name, "invalid", http.StatusUnprocessableEntity, err.Error())
	}
	if res.Filtered {
		h.metrics.received.WithLabelValues(src.Name, "filtered").Inc()
		return c.JSON(http.StatusAccepted, accepted{Status: "filtered"})
	}
	n := &Notification{
		Source:     src.Name,
		Data:       webhookData(src.Name, res),
		GroupKey:   res.GroupKey,
		ReceivedAt: h.now(),
	}
	return h.accept(c, src, n)
}

// webhookData builds the template data of a mapped webhook the way
// Alertmanager builds it for a group.
func webhookData(source string, res *mapping.Result) template.Data {
	d := template.Data{Receiver: source, Status: res.Status}
	var labels, annotations []map[string]string
	for _, a := range res.Alerts {
		d.Alerts = append(d.Alerts, template.Alert{
			Status:       a.Status,
			Labels:       template.KV(a.Labels),
			Annotations:  template.KV(a.Annotations),
			StartsAt:     a.StartsAt,
			EndsAt:       a.EndsAt,
			GeneratorURL: a.GeneratorURL,
			Fingerprint:  a.Fingerprint,
		})
		labels = append(labels, a.Labels)
		annotations = append(annotations, a.Annotations)
	}
	d.CommonLabels = common(labels)
	d.GroupLabels = d.CommonLabels
	d.CommonAnnotations = common(annotations)
	return d
}

// common returns the pairs present with the same value in every map.
func common(ms []map[string]string) template.KV {
	kv := template.KV{}
	if len(ms) == 0 {
		return kv
	}
	for k, v := range ms[0] {
		all := true
		for _, m := range ms[1:] {
			if m[k] != v {
				all = false
				break
			}
		}
		if all {
			kv[k] = v
		}
	}
	return kv
}

// intake applies what every endpoint checks before decoding: rate limit,
// content type, credentials and body size. It returns the raw body.
func (h *Handler) intake(c echo.Context, src *Source) ([]byte, error) {
	req := c.Request()
	if src.Limiter != nil {
		r := src.Limiter.Reserve()
		if d := r.Delay(); d > 0 {
			r.Cancel()
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
			return nil, h.refuse(src.Name, "rate_limited", http.StatusTooManyRequests,
				fmt.Sprintf("too many requests for source %q; retry after %s", src.Name, d.Round(time.Second)))
		}
	}
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, h.refuse(src.Name, "unsupported_media_type", http.StatusUnsupportedMediaType,
				fmt.Sprintf("content type %q is not JSON; send the body as application/json", truncate(ct, 64)))
		}
	}
	// Schemes that do not sign the body are checked before it is read, so
	// an unauthenticated sender costs us nothing.
	if src.Verifier != nil && !src.Verifier.NeedsBody() {
		if err := h.authenticate(src, req.Header, nil); err != nil {
			return nil, err
		}
	}
	limit := src.BodyLimit
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, h.refuse(src.Name, "too_large", http.StatusRequestEntityTooLarge,
				fmt.Sprintf("body is larger than the limit of %d bytes for source %q", limit, src.Name))
		}
		return nil, h.refuse(src.Name, "invalid", http.StatusBadRequest, "could not read the request body: "+err.Error())
	}
	if src.Verifier != nil && src.Verifier.NeedsBody() {
		if err := h.authenticate(src, req.Header, body); err != nil {
			return nil, err
		}
	}
	return body, nil
}

func (h *Handler) authenticate(src *Source, hdr http.Header, body []byte) error {
	err := src.Verifier.Check(hdr, body, h.now())
	if err == nil {
		return nil
	}
	reason := "mismatch"
	var f *auth.Failure
	if errors.As(err, &f) {
		reason = f.Reason
	}
	h.metrics.authFailures.WithLabelValues(src.Name, reason).Inc()
	h.logger.Warn("request refused: wrong or missing credentials", "intake", src.Name, "reason", reason)
	return h.refuse(src.Name, "unauthorized", http.StatusUnauthorized, "wrong or missing credentials")
}

// accept hands n to the sink and answers the caller.
func (h *Handler) accept(c echo.Context, src *Source, n *Notification) error {
	// The write must complete even if the caller hangs up: once it starts,
	// abandoning it halfway would leave the caller unsure and retrying.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 30*time.Second)
	defer cancel()
	res, err := h.sink.Accept(ctx, n)
	if err != nil {
		h.metrics.received.WithLabelValues(src.Name, "store_error").Inc()
		if src.Verifier != nil {
			// The sender will retry this very message: it is no replay.
			src.Verifier.Release(c.Request().Header)
		}
		h.logger.Error("notification not stored; the sender will be told to retry", "intake", src.Name, "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the notification could not be stored; retry later")
	}
	outcome := "accepted"
	switch {
	case res.Filtered:
		outcome = "filtered"
	case res.Recipients == 0:
		outcome = "unrouted"
	}
	h.metrics.received.WithLabelValues(src.Name, outcome).Inc()
	status := "accepted"
	if res.Filtered {
		status = "filtered"
	}
	return c.JSON(http.StatusAccepted, accepted{Status: status, ID: res.ID, Recipients: res.Recipients})
}

func (h *Handler) refuse(source, outcome string, code int, msg string) error {
	h.metrics.received.WithLabelValues(source, outcome).Inc()
	return echo.NewHTTPError(code, msg)
}

// decodeJSON decodes body into v with messages a person can act on.
func decodeJSON(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return errors.New("body is empty; expected a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("body is not valid JSON: %s at byte %d", se.Error(), se.Offset)
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "the body"
			}
			return fmt.Errorf("field %q has the wrong type: got JSON %s, want %s", field, te.Value, te.Type)
		default:
			return fmt.Errorf("body is not valid JSON: %s", truncate(err.Error(), 200))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// errorBody is the body of every 4xx and 5xx.
type errorBody struct {
	Status string `json:"status"`
	Error  string `json:"error"`
}

// ErrorHandler answers every error as {"status":"error","error":"..."}
// and never shows an internal error's text to the caller.
func ErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := http.StatusInternalServerError
		msg := "internal error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
			switch m := he.Message.(type) {
			case string:
				msg = m
			default:
				msg = strings.ToLower(http.StatusText(code))
			}
		} else {
			logger.Error("request failed", "path", c.Path(), "err", err)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		_ = c.JSON(code, errorBody{Status: "error", Error: msg})
	}
}

// SourceNames lists the configured sources, for summaries.
func (s *State) SourceNames() []string {
	var names []string
	for n := range s.Webhooks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
