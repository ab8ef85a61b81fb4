package receiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
)

// Metrics are the intake's metrics.
type Metrics struct {
	received     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	duration     *prometheus.HistogramVec
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
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "smsbridge_intake_duration_seconds",
			Help: "Time from a request's arrival at an intake endpoint to its answer (the durable write included), by source, whatever the answer.",
			// The fsync'd write dominates: about a millisecond on a
			// good disk, tens under load; the write gives up at 30 s.
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"source"}),
	}
}

// outcomes are the values of the outcome label a source can ever count:
// a source without authentication is never refused as unauthorized, one
// without a rate limit never as rate_limited, and only the unknown source
// counts unknown_source.
func outcomes(s *Source) []string {
	return slices.DeleteFunc(Outcomes(), func(o string) bool {
		switch o {
		case OutcomeUnauthorized:
			return s.Verifier == nil
		case OutcomeRateLimited:
			return s.Limiter == nil
		case OutcomeUnknownSource:
			return true
		}
		return false
	})
}

func (m *Metrics) precreate(s *Source) {
	for _, o := range outcomes(s) {
		m.received.WithLabelValues(s.Name, o)
	}
	m.duration.WithLabelValues(s.Name)
	if s.Verifier != nil {
		for _, r := range auth.Reasons {
			m.authFailures.WithLabelValues(s.Name, r)
		}
	}
}

// Handler serves the intake endpoints.
type Handler struct {
	current  func() Intake
	logger   *slog.Logger
	metrics  *Metrics
	now      func() time.Time
	refusals *refusalLog
}

// New returns a Handler that serves each request with what current returns
// at its start, called once per request. Until current returns Sources and
// a Sink, the handler answers 503. The logger gets no component of its own;
// the caller adds one.
func New(current func() Intake, logger *slog.Logger, m *Metrics) *Handler {
	return &Handler{current: current, logger: logger, metrics: m, now: time.Now, refusals: newRefusalLog(logger)}
}

// Precreate creates the metric series of every source in s at zero; call
// it for each generation before it serves.
func (h *Handler) Precreate(s *Sources) {
	if s.Alertmanager != nil {
		h.metrics.precreate(s.Alertmanager)
	}
	for _, w := range s.Webhooks {
		h.metrics.precreate(w)
	}
	h.metrics.received.WithLabelValues(unknownSource, OutcomeUnknownSource)
	h.metrics.duration.WithLabelValues(unknownSource)
}

// observe records how long the request to source took, from start.
func (h *Handler) observe(source string, start time.Time) {
	h.metrics.duration.WithLabelValues(source).Observe(h.now().Sub(start).Seconds())
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

// load reads the generation this request is served with.
func (h *Handler) load() (Intake, error) {
	in := h.current()
	if in.Sources == nil || in.Sink == nil {
		return Intake{}, echo.NewHTTPError(http.StatusServiceUnavailable, "not ready: no configuration loaded")
	}
	return in, nil
}

func (h *Handler) alertmanager(c echo.Context) error {
	now := h.now()
	in, err := h.load()
	if err != nil {
		return err
	}
	src := in.Sources.Alertmanager
	defer h.observe(src.Name, now)
	body, err := h.intake(c, src, now)
	if err != nil {
		return err
	}
	n, err := DecodeAlertmanager(body, now)
	if err != nil {
		return h.refuse(c, src.Name, OutcomeInvalid, http.StatusBadRequest, err.Error())
	}
	return h.accept(c, in, src, n)
}

// DecodeAlertmanager decodes and checks an Alertmanager webhook body
// (version 4) received at now. Its errors are written for the sender to
// read.
func DecodeAlertmanager(body []byte, now time.Time) (*alert.Notification, error) {
	var p amPayload
	if err := decodeJSON(body, &p); err != nil {
		return nil, err
	}
	if err := validateAlertmanager(&p); err != nil {
		return nil, err
	}
	return &alert.Notification{
		Source:          alert.SourceAlertmanager,
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
	if p.Status != alert.StatusFiring && p.Status != alert.StatusResolved {
		return fmt.Errorf(`payload status %q is neither "firing" nor "resolved"`, truncate(p.Status, 40))
	}
	if p.TruncatedAlerts < 0 {
		return errors.New(`"truncatedAlerts" is negative`)
	}
	for i, a := range p.Alerts {
		if a.Status != alert.StatusFiring && a.Status != alert.StatusResolved {
			return fmt.Errorf(`alerts[%d].status %q is neither "firing" nor "resolved"`, i, truncate(a.Status, 40))
		}
		if len(a.Labels) == 0 {
			return fmt.Errorf("alerts[%d] has no labels", i)
		}
	}
	return nil
}

func (h *Handler) webhook(c echo.Context) error {
	now := h.now()
	in, err := h.load()
	if err != nil {
		return err
	}
	name := c.Param("source")
	src, ok := in.Sources.Webhooks[name]
	if !ok {
		defer h.observe(unknownSource, now)
		return h.refuse(c, unknownSource, OutcomeUnknownSource, http.StatusNotFound,
			fmt.Sprintf("no webhook source named %q is configured", truncate(name, 64)))
	}
	defer h.observe(src.Name, now)
	body, err := h.intake(c, src, now)
	if err != nil {
		return err
	}
	n, err := src.Mapping.Apply(body, c.Request().Header, now)
	if err != nil {
		var be *mapping.BodyError
		switch {
		case errors.Is(err, mapping.ErrFiltered):
			h.metrics.received.WithLabelValues(src.Name, OutcomeFiltered).Inc()
			// Most events of a CI source are filtered by design (pushes,
			// green builds): worth a line only when debugging.
			h.logger.Debug("notification filtered by the mapping; nothing sent", "intake_source", src.Name)
			return c.JSON(http.StatusAccepted, accepted{Status: OutcomeFiltered})
		case errors.As(err, &be):
			return h.refuse(c, src.Name, OutcomeInvalid, http.StatusBadRequest, err.Error())
		}
		// A template that fails for this body is the sender's payload not
		// fitting the mapping: 422. The caller is told what failed; the log
		// names the field only, since the error may quote the body.
		field := "the mapping"
		var fe *mapping.FieldError
		if errors.As(err, &fe) {
			field = fe.Field
		}
		return h.refuseLogging(c, src.Name, OutcomeInvalid, http.StatusUnprocessableEntity, err.Error(),
			"the mapping's template failed for this body", "field", field)
	}
	return h.accept(c, in, src, n)
}

// intake applies what every endpoint checks before decoding: content
// type, credentials, rate limit and body size. It returns the raw body.
// Only an authenticated request spends the source's rate limit, so that
// unauthenticated ones cannot use up the tokens of the real sender.
func (h *Handler) intake(c echo.Context, src *Source, now time.Time) ([]byte, error) {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, h.refuse(c, src.Name, OutcomeUnsupportedMediaType, http.StatusUnsupportedMediaType,
				fmt.Sprintf("content type %q is not JSON; send the body as application/json", truncate(ct, 64)))
		}
	}
	// Schemes that do not sign the body are checked before it is read, so
	// an unauthenticated sender costs us nothing.
	if src.Verifier != nil && !src.Verifier.NeedsBody() {
		if err := h.authenticate(c, src, nil, now); err != nil {
			return nil, err
		}
	}
	if src.Verifier == nil || !src.Verifier.NeedsBody() {
		if err := h.limit(c, src, now); err != nil {
			return nil, err
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, src.BodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, h.refuse(c, src.Name, OutcomeTooLarge, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("body is larger than the limit of %d bytes for source %q", src.BodyLimit, src.Name))
		}
		return nil, h.refuse(c, src.Name, OutcomeInvalid, http.StatusBadRequest, "could not read the request body: "+err.Error())
	}
	if src.Verifier != nil && src.Verifier.NeedsBody() {
		if err := h.authenticate(c, src, body, now); err != nil {
			return nil, err
		}
		if err := h.limit(c, src, now); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// limit takes a token from the source's rate limit, or refuses the
// request with Retry-After: 503 for Alertmanager, which retries 5xx and
// never 429 (a 429 would lose the notification), 429 for the rest.
func (h *Handler) limit(c echo.Context, src *Source, now time.Time) error {
	if src.Limiter == nil {
		return nil
	}
	r := src.Limiter.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	r.CancelAt(now)
	code := http.StatusTooManyRequests
	if src.Mapping == nil { // the Alertmanager source, the only one without a mapping
		code = http.StatusServiceUnavailable
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	return h.refuse(c, src.Name, OutcomeRateLimited, code,
		fmt.Sprintf("too many requests for source %q; retry after %s", src.Name, d.Round(time.Second)))
}

func (h *Handler) authenticate(c echo.Context, src *Source, body []byte, now time.Time) error {
	err := src.Verifier.Check(c.Request().Header, body, now)
	if err == nil {
		return nil
	}
	reason := auth.ReasonMismatch
	var f *auth.Failure
	if errors.As(err, &f) {
		reason = f.Reason
	}
	h.metrics.authFailures.WithLabelValues(src.Name, reason).Inc()
	return h.refuse(c, src.Name, OutcomeUnauthorized, http.StatusUnauthorized, "wrong or missing credentials", "auth_failure", reason)
}

// accept hands n to the sink and answers the caller.
func (h *Handler) accept(c echo.Context, in Intake, src *Source, n *alert.Notification) error {
	if in.Health != nil {
		if err := in.Health(); err != nil {
			return h.refuse(c, src.Name, OutcomeStoreError, http.StatusServiceUnavailable, "not ready: "+err.Error()+"; retry later")
		}
	}
	header := ""
	n.DeliveryID, n.DeliveryIDExpires, header = deliveryID(src, c.Request().Header, n.ReceivedAt)
	// The write must complete even if the caller hangs up: once it starts,
	// abandoning it halfway would leave the caller unsure and retrying.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 30*time.Second)
	defer cancel()
	res, err := in.Sink.Accept(ctx, n)
	if err != nil {
		h.metrics.received.WithLabelValues(src.Name, OutcomeStoreError).Inc()
		h.logger.Error("notification not stored; the sender will be told to retry", "intake_source", src.Name, "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the notification could not be stored; retry later")
	}
	outcome := res.Outcome
	if !slices.Contains(sinkOutcomes, outcome) {
		// A label value nobody declared would be a series nobody
		// pre-created or alerts on; the notification is stored all the same.
		h.logger.Error("the sink reported an outcome the intake does not know; counted as accepted",
			"intake_source", src.Name, "outcome", truncate(outcome, 40), "id", res.ID)
		outcome = OutcomeAccepted
	}
	h.metrics.received.WithLabelValues(src.Name, outcome).Inc()
	if res.Replayed {
		h.logger.Info("delivery already accepted; nothing sent", "intake_source", src.Name, "header", header, "notification", res.ID)
	} else {
		attrs := []any{"id", res.ID, "intake_source", src.Name, "outcome", outcome, "alertname", res.AlertName,
			"receivers", res.Receivers, "recipients", res.Recipients}
		if outcome == OutcomeUnrouted {
			h.logger.Warn("notification accepted, but it reached no receiver with numbers: nobody is paged", attrs...)
		} else {
			h.logger.Info("notification accepted", attrs...)
		}
	}
	// An unrouted notification was still accepted; recipients 0 says the
	// rest.
	status := outcome
	if outcome == OutcomeUnrouted {
		status = OutcomeAccepted
	}
	return c.JSON(http.StatusAccepted, accepted{Status: status, ID: res.ID, Recipients: res.Recipients})
}

// deliveryID returns the request's delivery id, namespaced by the source,
// when it is remembered until, and the header it came from. A Standard
// Webhooks id signed under the source's auth comes first and lasts its
// tolerance window; then the source's own header and the well-known ones,
// remembered for the source's TTL. The id is stored hashed: a header can
// be long, and what it says is the sender's business.
func deliveryID(src *Source, hdr http.Header, now time.Time) (id string, until time.Time, header string) {
	if src.Verifier != nil {
		if v, exp, ok := src.Verifier.DeliveryID(hdr); ok {
			return namespaced(src.Name, v), exp, auth.HeaderWebhookID
		}
	}
	if src.DeliveryIDTTL <= 0 {
		return "", time.Time{}, ""
	}
	names := DeliveryIDHeaders
	if src.DeliveryIDHeader != "" {
		names = append([]string{src.DeliveryIDHeader}, names...)
	}
	for _, name := range names {
		if v := strings.TrimSpace(hdr.Get(name)); v != "" {
			return namespaced(src.Name, v), now.Add(src.DeliveryIDTTL), http.CanonicalHeaderKey(name)
		}
	}
	return "", time.Time{}, ""
}

func namespaced(source, id string) string {
	sum := sha256.Sum256([]byte(id))
	return source + ":" + hex.EncodeToString(sum[:])
}

// refuse counts a refused request, logs it (within the refusal log's
// budget) and returns the error the caller is answered with: msg, which
// the log line repeats, with attrs.
func (h *Handler) refuse(c echo.Context, source, outcome string, code int, msg string, attrs ...any) error {
	return h.refuseLogging(c, source, outcome, code, msg, msg, attrs...)
}

// refuseLogging is refuse with a log reason of its own, for an answer that
// may quote the request's body.
func (h *Handler) refuseLogging(c echo.Context, source, outcome string, code int, msg, reason string, attrs ...any) error {
	h.metrics.received.WithLabelValues(source, outcome).Inc()
	h.refusals.log(h.now(), append(append([]any{"intake_source", source, "outcome", outcome, "status", code, "reason", reason},
		caller(c)...), attrs...))
	return echo.NewHTTPError(code, msg)
}

// caller is where a request came from, for the log: the peer's address
// and, when present, what X-Forwarded-For claims (set by a proxy, or
// forged by anyone: logged, never trusted), as the status package logs it.
func caller(c echo.Context) []any {
	attrs := []any{"remote_addr", c.Request().RemoteAddr}
	if fwd := c.Request().Header.Get(echo.HeaderXForwardedFor); fwd != "" {
		attrs = append(attrs, "forwarded_for", truncate(fwd, 200))
	}
	return attrs
}

// decodeJSON decodes body into v with messages a person can act on.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("body is empty; expected a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("body is not valid JSON: %s at byte %d", se.Error(), se.Offset)
		case errors.As(err, &te):
			// The path names amPayload's embedded template.Data by its Go
			// name; the sender's JSON has no such level.
			field := strings.TrimPrefix(te.Field, "Data.")
			if field == "" {
				field = "the body"
			}
			return fmt.Errorf("field %q has the wrong type: got JSON %s, want %s", field, te.Value, jsonKind(te.Type))
		default:
			return fmt.Errorf("body is not valid JSON: %s", truncate(err.Error(), 200))
		}
	}
	return nil
}

// jsonKind names what JSON a Go type is decoded from, for a sender who
// never saw our Go types.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
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
