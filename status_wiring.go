package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/pipeline"
	"github.com/smsbridge/smsbridge/status"
)

// registerStatus adds the status page and the admin API to e.
func (b *bridge) registerStatus(e *echo.Echo) {
	h, err := status.New(status.Options{
		Store:       b.store,
		Bridge:      statusBridge{b},
		Started:     b.started,
		Logger:      b.logger.With("component", "status"),
		Noise:       statusNoise{b},
		Oncall:      oncallBridge{b},
		TwoWay:      statusTwoWay{b},
		Escalations: statusEscalations{b},
		AdminAPI:    b.flags.adminAPI,
		PathPrefix:  b.flags.linkPrefix(),
	})
	if err != nil {
		// The templates are embedded: this is a broken build, not a
		// condition to run on with.
		panic(err)
	}
	h.Register(e)
}

// statusBridge is the bridge as the status page reads it.
type statusBridge struct{ b *bridge }

// Info implements status.Bridge.
func (s statusBridge) Info() status.Info {
	info := status.Info{DryRun: s.b.flags.dryRun, NotReady: s.b.readiness.reason()}
	if lr := s.b.lastReload.Load(); lr != nil {
		info.LastReload = status.Reload{At: lr.At, Err: lr.Err}
	}
	g := s.b.gen.Load()
	if g == nil {
		return info
	}
	info.LoadedAt = g.LoadedAt
	info.ConfigFile, info.ConfigHash = g.File.Path, g.File.Hash
	var tree strings.Builder
	if err := g.Router.WriteTree(&tree); err == nil {
		info.Tree = tree.String()
	}
	now := time.Now()
	for _, r := range g.Router.Receivers() {
		// Who the receiver pages now: its own numbers and who is on call.
		var nums []string
		for _, m := range r.Recipients(now, s.b.overridesFor(g)) {
			nums = append(nums, m.Number)
		}
		info.Receivers = append(info.Receivers, status.Receiver{Name: r.Name, Numbers: nums, SendResolved: r.SendResolved})
	}
	info.Sources = append([]string{alert.SourceAlertmanager}, g.Sources.SourceNames()...)
	return info
}

// Provider implements status.Bridge: the account new requests go through.
func (s statusBridge) Provider() status.Provider {
	return providerState(s.b.dispatcher.State())
}

// providerState is the dispatcher's state as the page shows it: the
// account new requests go through, summed up, and every account.
func providerState(st dispatch.State) status.Provider {
	p := status.Provider{State: status.ProviderOK}
	summed := false
	for _, a := range st.Accounts {
		if a.Active && !summed {
			summed = true
			switch {
			case a.Hold != nil:
				p = status.Provider{State: status.ProviderHeld, Since: a.Hold.Since, Reason: a.Hold.Kind,
					StatusCode: a.Hold.Status, Message: a.Hold.Message}
			case a.Mode == dispatch.ModePaused:
				// Only a 429 pauses an account.
				p = status.Provider{State: status.ProviderPaused, Until: a.PausedUntil, StatusCode: http.StatusTooManyRequests}
			}
		}
		acc := status.Account{
			Name: a.Name, Mode: string(a.Mode), Active: a.Active, PausedUntil: a.PausedUntil,
			FailingSince: a.FailingSince, NextProbe: a.NextProbe, LastError: a.LastError, LastErrorAt: a.LastErrorAt,
			Requests: a.Requests, Errors: a.Errors, InFlight: a.InFlight,
		}
		if h := a.Hold; h != nil {
			acc.HeldSince, acc.HeldReason, acc.HeldStatus, acc.HeldMessage = h.Since, h.Kind, h.Status, h.Message
		}
		p.Accounts = append(p.Accounts, acc)
	}
	p.InFlight = st.InFlight
	return p
}

// RoutesTest implements status.Bridge: the page's routes test, the same
// as `smsbridge routes test`.
func (s statusBridge) RoutesTest(labels map[string]string) (status.RouteTest, error) {
	g := s.b.gen.Load()
	if g == nil {
		return status.RouteTest{}, errors.New("routes test: no configuration loaded")
	}
	now := time.Now()
	return status.FromPlan(g.Pipeline.Preview(labelNotification(labels, nil, now), now)), nil
}

// SendTest implements status.Bridge: one SMS to every number of the
// receiver, queued in the outbox like any notification.
func (s statusBridge) SendTest(ctx context.Context, name string) (status.TestResult, error) {
	g := s.b.gen.Load()
	if g == nil {
		return status.TestResult{}, errors.New("send test: no configuration loaded")
	}
	res, err := g.Pipeline.SendTest(ctx, name)
	switch {
	case errors.Is(err, pipeline.ErrUnknownReceiver):
		return status.TestResult{}, fmt.Errorf("%w: %w", status.ErrUnknownReceiver, err)
	case errors.Is(err, pipeline.ErrNoNumbers):
		return status.TestResult{}, fmt.Errorf("%w: %w", status.ErrNoNumbers, err)
	case err != nil:
		return status.TestResult{}, err
	}
	return status.TestResult{ID: res.ID, Receiver: res.Receiver, Text: res.Text, Numbers: res.Numbers}, nil
}
