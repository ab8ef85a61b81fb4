package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/status"
	"github.com/smsbridge/smsbridge/twoway"
)

// The wiring of two-way SMS: the callback endpoint, the processor that
// outlives generations, the silencer, and in a dry run the fake's
// callbacks to the bridge itself.

// twoWayConfig is the two-way configuration in force.
func (b *bridge) twoWayConfig() *twoway.Config {
	if g := b.gen.Load(); g != nil {
		return g.TwoWay
	}
	return nil
}

// newTwoWay builds the processor, after the store is open.
func (b *bridge) newTwoWay() {
	b.twoway = twoway.NewProcessor(twoway.Options{
		Store:       b.store,
		Config:      b.twoWayConfig,
		Logger:      b.logger.With("component", "twoway"),
		Metrics:     b.twowayM,
		CountFailed: b.dispatchM.AddFailed,
		// An acknowledgement stops the group's escalation at once.
		OnAck: b.escalator.Acknowledged,
	})
	b.reg.MustRegister(twoway.OptOutCollector(b.store, b.logger.With("component", "twoway")))
}

// dryRunToken returns a new random callback token for a dry run.
func dryRunToken() string {
	return strings.ToLower(rand.Text())
}

// dryRunCallbackURL is where a dry run's fake posts receipts and replies:
// the bridge's own callback endpoint on the first listen address, over
// loopback.
func dryRunCallbackURL(f *flags, token string) string {
	listen := ":9754"
	if f.web != nil && f.web.WebListenAddresses != nil && len(*f.web.WebListenAddresses) > 0 {
		listen = (*f.web.WebListenAddresses)[0]
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = "", "9754"
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port),
		Path: strings.TrimRight(cleanPrefix(f.prefix), "/") + twoway.CallbackPath + token}
	return u.String()
}

// registerTwoWay adds the callback endpoint and, in a dry run, the
// endpoint that plays a phone replying.
func (b *bridge) registerTwoWay(e *echo.Echo) {
	twoway.NewHandler(b.twoway).Register(e)
	if b.fake != nil {
		// It writes acknowledgements (and, with alertmanager_api, real
		// silences): an admin endpoint like the others that change state.
		e.POST("/api/v1/sms/dry-run/reply", b.dryRunReply,
			status.NewGate(status.FlagAdminAPI, b.flags.adminAPI, b.logger.With("component", "web")).Middleware)
	}
}

// dryRunReply is POST /api/v1/sms/dry-run/reply {"number": N, "text": T}:
// the fake provider posts T as a reply from N to the callback endpoint,
// as a phone would, so a dry run shows acknowledgements end to end.
func (b *bridge) dryRunReply(c echo.Context) error {
	var in struct {
		Number string `json:"number"`
		Text   string `json:"text"`
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 4<<10))
	if err != nil || json.Unmarshal(body, &in) != nil {
		return echo.NewHTTPError(http.StatusBadRequest, `body must be JSON: {"number": "+27830000001", "text": "ACK 1"}`)
	}
	number, err := sms.NormalizeNumber(in.Number)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	if strings.TrimSpace(in.Text) == "" {
		return echo.NewHTTPError(http.StatusBadRequest, `"text" is empty: write the reply, such as "ACK 1"`)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 15*time.Second)
	defer cancel()
	if err := b.fake.Reply(ctx, number, in.Text); err != nil {
		var ne net.Error
		if errors.As(err, &ne) {
			return echo.NewHTTPError(http.StatusBadGateway, "the fake provider could not post the reply: "+err.Error())
		}
		return echo.NewHTTPError(http.StatusBadGateway, err.Error())
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "replied", "number": sms.MaskNumber(number)})
}

// runSilencer runs the silencer until ctx ends; done is closed then.
func (b *bridge) runSilencer(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	if err := b.twoway.Silencer().Run(ctx); err != nil {
		b.logger.Error("silencer stopped", "err", fmt.Errorf("silencer: %w", err))
	}
}

// statusTwoWay is two-way SMS as the status page reads it.
type statusTwoWay struct{ b *bridge }

func (s statusTwoWay) OptOuts(ctx context.Context) ([]outbox.OptOut, error) {
	return s.b.store.OptOuts(ctx)
}

func (s statusTwoWay) Acks(ctx context.Context, since time.Time, limit int) ([]outbox.Ack, error) {
	return s.b.store.Acks(ctx, since, limit)
}

// NameOf names a number from the configuration in force.
func (s statusTwoWay) NameOf(number string) string {
	if c := s.b.twoWayConfig(); c != nil && c.Lookup != nil {
		name, _ := c.Lookup(number)
		return name
	}
	return ""
}
