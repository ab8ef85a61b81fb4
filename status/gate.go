package status

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Flags that open endpoints which change state, as Prometheus names its
// own. Without them those endpoints answer 403 naming the flag.
const (
	// FlagAdminAPI opens every state-changing endpoint of the admin API:
	// retrying a delivery, sending a test SMS, and whatever writes comes
	// after (on-call overrides, acknowledgements, cancelling escalations).
	FlagAdminAPI = "--web.enable-admin-api"
	// FlagLifecycle opens POST /-/reload (SIGHUP reloads regardless).
	FlagLifecycle = "--web.enable-lifecycle"
)

// Gate guards the endpoints that change state. Every such endpoint takes
// one as middleware:
//
//	e.POST("/api/v1/oncall/overrides", h.apiOverride, h.Admin().Middleware)
//
// It refuses requests a browser sends from another site (with basic auth
// from --web.config.file, the browser would attach the credentials by
// itself), and, unless its flag was given, every request, with 403 and a
// message naming the flag. Each refusal is logged with the caller's
// address.
type Gate struct {
	flag    string
	enabled bool
	logger  *slog.Logger
	csrf    *http.CrossOriginProtection
}

// NewGate returns the gate of flag; enabled says whether the flag was
// given. logger may be nil.
func NewGate(flag string, enabled bool, logger *slog.Logger) *Gate {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Gate{flag: flag, enabled: enabled, logger: logger, csrf: http.NewCrossOriginProtection()}
}

// Enabled reports whether the gate's flag was given, for pages that hide
// what they cannot use.
func (g *Gate) Enabled() bool { return g.enabled }

// Middleware is the gate as Echo middleware.
func (g *Gate) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := g.csrf.Check(c.Request()); err != nil {
			g.logger.Warn("cross-origin request refused", append(Caller(c), "method", c.Request().Method, "path", c.Path())...)
			return echo.NewHTTPError(http.StatusForbidden, "cross-origin request refused")
		}
		if !g.enabled {
			g.logger.Warn("request to a disabled endpoint refused", append(Caller(c), "method", c.Request().Method, "path", c.Path(), "flag", g.flag)...)
			return echo.NewHTTPError(http.StatusForbidden,
				fmt.Sprintf("%s %s is disabled: start smsbridge with %s to allow it", c.Request().Method, c.Path(), g.flag))
		}
		return next(c)
	}
}

// Caller is the request's origin as log attributes: the peer address and,
// when present, what X-Forwarded-For claims (set by a proxy, or forged by
// anyone; logged, never trusted).
func Caller(c echo.Context) []any {
	attrs := []any{"remote_addr", c.Request().RemoteAddr}
	if fwd := c.Request().Header.Get(echo.HeaderXForwardedFor); fwd != "" {
		attrs = append(attrs, "forwarded_for", truncate(fwd, 200))
	}
	return attrs
}

// Limits of test SMS: each one wakes real people and costs money, so a
// script in a loop, or anyone who got past the gate, cannot page a
// receiver more than this.
const (
	// TestSendInterval is the least time between two test SMS to one
	// receiver.
	TestSendInterval = 10 * time.Second
	// TestSendDailyCap is the most test SMS to one receiver in any 24
	// hours.
	TestSendDailyCap = 20
)

// testLimiter counts the test SMS of each receiver in the last 24 hours.
// It lives as long as the process: a restart forgets it (the gate and the
// interval still hold).
type testLimiter struct {
	mu   sync.Mutex
	sent map[string][]time.Time
}

// reserve takes a slot for receiver at now, or says how long until one is
// free. A reservation whose send failed is given back with release.
func (l *testLimiter) reserve(receiver string, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == nil {
		l.sent = map[string][]time.Time{}
	}
	day := now.Add(-24 * time.Hour)
	for k, ts := range l.sent {
		i := 0
		for i < len(ts) && !ts[i].After(day) {
			i++
		}
		if i == len(ts) {
			delete(l.sent, k)
		} else {
			l.sent[k] = ts[i:]
		}
	}
	ts := l.sent[receiver]
	if n := len(ts); n > 0 {
		if next := ts[n-1].Add(TestSendInterval); now.Before(next) {
			wait = next.Sub(now)
		}
		if n >= TestSendDailyCap {
			wait = max(wait, ts[n-TestSendDailyCap].Add(24*time.Hour).Sub(now))
		}
	}
	if wait > 0 {
		return wait, false
	}
	l.sent[receiver] = append(ts, now)
	return 0, true
}

// release gives back the reservation reserve made for receiver at at.
func (l *testLimiter) release(receiver string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.sent[receiver]
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(at) {
			ts = append(ts[:i], ts[i+1:]...)
			break
		}
	}
	if len(ts) == 0 {
		delete(l.sent, receiver)
	} else {
		l.sent[receiver] = ts
	}
}

// retryAfter is a Retry-After value in whole seconds, rounded up.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
