package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/status"
	"github.com/smsbridge/smsbridge/templates"
)

// testSource is the source of test SMS in the outbox and on the page.
const testSource = "send-test"

// registerStatus adds the status page and the admin API to e.
func (b *bridge) registerStatus(e *echo.Echo) {
	h, err := status.New(status.Options{
		Store:   b.store,
		Bridge:  statusBridge{b},
		Started: b.started,
		Logger:  b.logger.With("component", "status"),
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
	rt := s.b.runtime.Load()
	var info status.Info
	if lr := s.b.lastReload.Load(); lr != nil {
		info.LastReload = status.Reload{At: lr.At, Err: lr.Err}
	}
	if at := s.b.loadedAt.Load(); at > 0 {
		info.LoadedAt = time.Unix(0, at)
	}
	if rt == nil {
		return info
	}
	info.ConfigFile, info.ConfigHash = rt.File.Path, rt.File.Hash
	var tree strings.Builder
	if err := rt.Router.WriteTree(&tree); err == nil {
		info.Tree = tree.String()
	}
	for _, r := range rt.Router.Receivers() {
		info.Receivers = append(info.Receivers, status.Receiver{Name: r.Name, Numbers: r.Numbers, SendResolved: r.SendResolved})
	}
	info.Sources = append([]string{receiver.SourceAlertmanager}, rt.Intake.SourceNames()...)
	return info
}

// Provider implements status.Bridge.
func (s statusBridge) Provider() status.Provider {
	return providerState(s.b.dispatcher.State())
}

// providerState is the dispatcher's state as the page shows it.
func providerState(st dispatch.State) status.Provider {
	switch st.Mode {
	case dispatch.ModeHeld:
		return status.Provider{State: status.ProviderHeld, Since: st.HeldSince, Reason: st.HeldKind,
			StatusCode: st.HeldStatus, Message: st.HeldMessage}
	case dispatch.ModePaused:
		// Only a 429 pauses the queue.
		return status.Provider{State: status.ProviderPaused, Until: st.PausedUntil, StatusCode: http.StatusTooManyRequests}
	default:
		return status.Provider{State: status.ProviderOK}
	}
}

// RoutesTest implements status.Bridge: the page's routes test, the same
// as `smsbridge routes test`.
func (s statusBridge) RoutesTest(labels map[string]string) (status.RouteTest, error) {
	rt := s.b.runtime.Load()
	if rt == nil {
		return status.RouteTest{}, fmt.Errorf("routes test: no configuration loaded")
	}
	return routesTest(rt, labelNotification(labels, nil, time.Now()), s.b.logger.With("component", "routes-test")), nil
}

// SendTest implements status.Bridge: one SMS to every number of the
// receiver, queued in the outbox like any notification, so it proves the
// store, the dispatcher, the key and the provider.
func (s statusBridge) SendTest(ctx context.Context, name string) (status.TestResult, error) {
	rt := s.b.runtime.Load()
	if rt == nil {
		return status.TestResult{}, fmt.Errorf("send test: no configuration loaded")
	}
	rcv, ok := rt.Router.Receiver(name)
	if !ok {
		return status.TestResult{}, fmt.Errorf("send test to %q: %w", name, status.ErrUnknownReceiver)
	}
	if len(rcv.Numbers) == 0 {
		return status.TestResult{}, fmt.Errorf("send test to %q: %w", name, status.ErrNoNumbers)
	}
	maxSeg := rcv.MaxSegments
	if maxSeg == 0 {
		maxSeg = rt.File.Config.SMS.MaxSegments
	}
	text := fmt.Sprintf("smsbridge test to %s at %s: if you read this, paging works.", rcv.Name, time.Now().UTC().Format("2006-01-02 15:04:05Z"))
	text = templates.Fit(templates.ToGSM(text), maxSeg)
	id, err := s.b.store.Enqueue(ctx, outbox.Notification{
		Source: testSource, GroupKey: testSource + ":" + rcv.Name, Status: "firing",
		Messages: []outbox.Message{{Receiver: rcv.Name, Text: text, Segments: templates.Segments(text), Numbers: rcv.Numbers}},
	})
	if err != nil {
		return status.TestResult{}, fmt.Errorf("send test to %q: %w", name, err)
	}
	return status.TestResult{ID: id, Receiver: rcv.Name, Text: text, Numbers: rcv.Numbers}, nil
}
