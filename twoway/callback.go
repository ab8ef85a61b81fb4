package twoway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/internal/secret"
)

// CallbackPath is the route of the provider's callbacks; the last part is
// the secret token.
const CallbackPath = "/api/v1/sms/callback/"

// claimFor is how long a callback body is remembered once handled, so
// that the provider's retry of it does nothing.
const claimFor = 24 * time.Hour

// workFor is how long a body is held while it is handled: a retry of it
// meanwhile is told to come back later. Should the process die while
// handling it, the hold lapses and the provider's retry handles it again
// (every event's effect happens once, however often it is handled).
const workFor = 2 * time.Minute

// Handler serves POST /api/v1/sms/callback/{token}: the provider's
// delivery receipts and replies. The token is the only secret (the
// provider signs nothing): it is compared in constant time, a wrong one
// gets the same 404 as a path that does not exist, and it is never logged,
// counted or shown. The body is bounded, parsed by the provider's
// sms.Inbound, and handled once: its hash is claimed in the store first,
// so a repeated body (the provider's retry) does nothing twice.
type Handler struct {
	config  func() *Config
	store   Store
	proc    *Processor
	metrics *Metrics
	logger  *slog.Logger
	now     func() time.Time
	// refusals bounds the log lines of wrong tokens: a scanner must not
	// fill the disk.
	refusals   *rate.Limiter
	suppressed atomic.Int64
}

// NewHandler returns the callback handler of p, reading its
// configuration once per request.
func NewHandler(p *Processor) *Handler {
	return &Handler{config: p.config, store: p.store, proc: p, metrics: p.metrics, logger: p.logger, now: p.now,
		refusals: rate.NewLimiter(1, 10)}
}

// Register adds the callback route to e. Route logs name the route
// (c.Path(), ".../:token"), never the path the request asked for.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(CallbackPath+":token", h.callback)
}

// callbackAnswer is the body of a 200.
type callbackAnswer struct {
	Status string `json:"status"`
	Events int    `json:"events"`
}

func (h *Handler) callback(c echo.Context) error {
	cfg := h.config()
	if !cfg.enabled() || !TokenEqual(c.Param("token"), cfg.Token) {
		h.metrics.callbacks.WithLabelValues(CallbackNotFound).Inc()
		h.refused(c)
		// As for any path that does not exist: the answer says nothing
		// about the token or whether callbacks are on.
		return echo.ErrNotFound
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, cfg.BodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.metrics.callbacks.WithLabelValues(CallbackTooLarge).Inc()
			h.logger.Warn("callback refused: body too large", append([]any{"limit", cfg.BodyLimit}, caller(c)...)...)
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "body is larger than sms.callback.body_limit")
		}
		h.metrics.callbacks.WithLabelValues(CallbackInvalid).Inc()
		return echo.NewHTTPError(http.StatusBadRequest, "could not read the request body")
	}
	events, err := cfg.Inbound.ParseCallback(c.Request().Header, body)
	if err != nil {
		h.metrics.callbacks.WithLabelValues(CallbackInvalid).Inc()
		// The parser's errors never quote the body.
		h.logger.Warn("callback refused: not the provider's format", append([]any{"err", err}, caller(c)...)...)
		return echo.NewHTTPError(http.StatusBadRequest, "callback body is not the provider's format: "+err.Error())
	}
	// The provider may hang up; what was started is finished.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 30*time.Second)
	defer cancel()
	sum := sha256.Sum256(body)
	key := hex.EncodeToString(sum[:])
	// A body is marked handled only once it was: a process that dies
	// while handling it leaves a hold that lapses, not a mark that would
	// answer the provider's retry "duplicate" with events left undone.
	done, working := "callback/"+key, "callback-working/"+key
	handled, err := h.store.Claimed(ctx, done, h.now())
	if err != nil {
		return h.storeError(err)
	}
	if handled {
		h.metrics.callbacks.WithLabelValues(CallbackDuplicate).Inc()
		h.logger.Info("callback body already handled; ignored", "events", len(events))
		return c.JSON(http.StatusOK, callbackAnswer{Status: CallbackDuplicate, Events: len(events)})
	}
	first, err := h.store.Claim(ctx, working, h.now(), workFor)
	if err != nil {
		return h.storeError(err)
	}
	if !first {
		h.metrics.callbacks.WithLabelValues(CallbackInProgress).Inc()
		h.logger.Info("callback body is being handled by another request; the provider is told to retry", "events", len(events))
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(workFor/time.Second)))
		return echo.NewHTTPError(http.StatusServiceUnavailable, "this callback body is being handled; retry later")
	}
	release := func() {
		if uerr := h.store.Unclaim(ctx, working); uerr != nil {
			h.logger.Warn("cannot release a callback body's hold; it lapses by itself", "err", uerr, "after", workFor)
		}
	}
	if err := h.proc.Process(ctx, cfg, key[:16], events); err != nil {
		// The provider retries: the body must be handled then.
		release()
		return h.storeError(err)
	}
	if _, err := h.store.Claim(ctx, done, h.now(), claimFor); err != nil {
		// Handled, but not marked: a retry handles it again, which
		// changes nothing (each event's effect happens once).
		h.logger.Warn("a handled callback body could not be marked handled; a retry of it is handled again, harmlessly", "err", err)
	}
	release()
	h.metrics.callbacks.WithLabelValues(CallbackAccepted).Inc()
	return c.JSON(http.StatusOK, callbackAnswer{Status: CallbackAccepted, Events: len(events)})
}

func (h *Handler) storeError(err error) error {
	h.metrics.callbacks.WithLabelValues(CallbackStoreError).Inc()
	h.logger.Error("callback not handled; the provider is told to retry", "err", err)
	return echo.NewHTTPError(http.StatusServiceUnavailable, "the callback could not be stored; retry later")
}

// refused logs a request with a wrong token, within a budget: a line a
// second at most, the next one saying how many were left out.
func (h *Handler) refused(c echo.Context) {
	if !h.refusals.Allow() {
		h.suppressed.Add(1)
		return
	}
	attrs := caller(c)
	if n := h.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	h.logger.Warn("callback refused: wrong token, or callbacks are not configured", attrs...)
}

// caller is where a request came from, for the log: the peer's address
// (remote) and, when present, what X-Forwarded-For claims (forwarded_for:
// set by a proxy, or forged by anyone, so logged and never trusted).
// c.RealIP would believe the header, and a scanner could hide behind it.
func caller(c echo.Context) []any {
	attrs := []any{"remote", c.Request().RemoteAddr}
	if fwd := c.Request().Header.Get(echo.HeaderXForwardedFor); fwd != "" {
		attrs = append(attrs, "forwarded_for", truncate(fwd, 200))
	}
	return attrs
}

// TokenEqual compares a token from a URL with the configured one in
// constant time: both are hashed first, so neither their contents nor
// their lengths leak through timing.
func TokenEqual(got string, want secret.Secret) bool {
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// RedactPath returns path with a callback token replaced by "<secret>",
// for anything that logs request paths.
func RedactPath(path string) string {
	i := strings.Index(path, CallbackPath)
	if i < 0 {
		return path
	}
	rest := path[i+len(CallbackPath):]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		return path[:i+len(CallbackPath)] + secret.Mask + rest[j:]
	}
	return path[:i+len(CallbackPath)] + secret.Mask
}
