package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

// enqueuer is the part of the outbox the pipeline writes to.
type enqueuer interface {
	Enqueue(ctx context.Context, n outbox.Notification) (int64, error)
	LastStatus(ctx context.Context, groupKey string) (string, bool, error)
}

// pipeline routes and renders a notification in the request, then writes
// it to the outbox in one durable transaction: the receiver's Sink.
type pipeline struct {
	runtime func() *config.Runtime
	store   enqueuer
	logger  *slog.Logger
}

// planned is one SMS text the pipeline would send, with its numbers.
type planned struct {
	Receiver *routing.ResolvedReceiver
	Nodes    []*routing.Node
	Alerts   int
	Text     string
	Segments int
	Numbers  []string
}

// Accept implements receiver.Sink.
func (p *pipeline) Accept(ctx context.Context, n *receiver.Notification) (receiver.Accepted, error) {
	rt := p.runtime()
	on := outbox.Notification{Source: n.Source, GroupKey: n.GroupKey, Status: n.Data.Status}
	if quiet, err := p.resolvesNothing(ctx, n); err != nil {
		return receiver.Accepted{}, err
	} else if quiet {
		// Recorded, so the next resolution of this group is quiet too.
		id, err := p.store.Enqueue(ctx, on)
		if err != nil {
			return receiver.Accepted{}, fmt.Errorf("enqueue notification from %s: %w", n.Source, err)
		}
		return receiver.Accepted{ID: id, Filtered: true}, nil
	}
	plan := p.plan(rt, n)
	recipients := 0
	for _, m := range merge(plan) {
		on.Messages = append(on.Messages, outbox.Message{
			Receiver: m.Receiver.Name, Text: m.Text, Segments: m.Segments, Numbers: m.Numbers,
		})
		recipients += len(m.Numbers)
	}
	id, err := p.store.Enqueue(ctx, on)
	if err != nil {
		return receiver.Accepted{}, fmt.Errorf("enqueue notification from %s: %w", n.Source, err)
	}
	return receiver.Accepted{ID: id, Recipients: recipients}, nil
}

// resolvesNothing reports whether n, from a generic webhook, resolves a
// group that is not firing: every green CI build says "success", and only
// the one after a failure is news. Alertmanager sends resolved only for
// what it notified as firing, so its notifications always pass.
func (p *pipeline) resolvesNothing(ctx context.Context, n *receiver.Notification) (bool, error) {
	if n.Source == receiver.SourceAlertmanager || n.Data.Status != "resolved" || n.GroupKey == "" {
		return false, nil
	}
	last, ok, err := p.store.LastStatus(ctx, n.GroupKey)
	if err != nil {
		return false, fmt.Errorf("look up group %s: %w", n.GroupKey, err)
	}
	return !ok || last != "firing", nil
}

// plan routes every alert of n and renders one text per receiver, with
// the alerts that reached that receiver, as Alertmanager would notify it.
func (p *pipeline) plan(rt *config.Runtime, n *receiver.Notification) []planned {
	labels := make([]map[string]string, len(n.Data.Alerts))
	for i, a := range n.Data.Alerts {
		// Alertmanager routes each alert on its own labels; the group's
		// common labels are a subset, merged for senders that trim them.
		l := maps.Clone(map[string]string(n.Data.CommonLabels))
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, a.Labels)
		labels[i] = l
	}
	var out []planned
	for _, t := range rt.Router.Route(labels) {
		rcv := t.Receiver
		var alerts template.Alerts
		for _, i := range t.Alerts {
			a := n.Data.Alerts[i]
			if a.Status == "resolved" && !rcv.SendResolved {
				continue
			}
			alerts = append(alerts, a)
		}
		if len(alerts) == 0 || len(rcv.Numbers) == 0 {
			continue
		}
		d := &templates.Data{Data: n.Data, Source: n.Source, GroupKey: n.GroupKey, TruncatedAlerts: n.TruncatedAlerts}
		// As Alertmanager does for the alerts it notifies, the common
		// labels and annotations are those these alerts share.
		d.Alerts = alerts
		d.CommonLabels = commonKV(alerts, func(a template.Alert) template.KV { return a.Labels })
		d.CommonAnnotations = commonKV(alerts, func(a template.Alert) template.KV { return a.Annotations })
		d.Status = "resolved"
		if len(alerts.Firing()) > 0 {
			d.Status = "firing"
		}
		maxSeg := rcv.MaxSegments
		if maxSeg == 0 {
			maxSeg = rt.File.Config.SMS.MaxSegments
		}
		text, segs, err := rt.Renderer.Render(rcv.Name, rcv.Template, d, maxSeg)
		if err != nil {
			// Even the default template failed: the page still goes out, plainly.
			p.logger.Error("render failed, sending a plain text", "receiver", rcv.Name, "intake", n.Source, "err", err)
			text = templates.Fit(templates.ToGSM(fmt.Sprintf("%s:%d alerts from %s", d.Status, len(alerts), n.Source)), maxSeg)
			segs = templates.Segments(text)
		}
		out = append(out, planned{Receiver: rcv, Nodes: t.Nodes, Alerts: len(alerts), Text: text, Segments: segs, Numbers: rcv.Numbers})
	}
	return out
}

// merge folds receivers that would send the same text to overlapping
// numbers into one message, so no one gets the same page twice.
func merge(plan []planned) []planned {
	var out []planned
	byText := map[string]int{}
	for _, p := range plan {
		i, ok := byText[p.Text]
		if !ok {
			byText[p.Text] = len(out)
			p.Numbers = slices.Clone(p.Numbers)
			out = append(out, p)
			continue
		}
		for _, num := range p.Numbers {
			if !slices.Contains(out[i].Numbers, num) {
				out[i].Numbers = append(out[i].Numbers, num)
			}
		}
	}
	// A number that two receivers reach with different texts gets both:
	// they say different things.
	return out
}

// commonKV returns the pairs every alert has with the same value.
func commonKV(alerts template.Alerts, kv func(template.Alert) template.KV) template.KV {
	out := template.KV{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range kv(alerts[0]) {
		shared := true
		for _, a := range alerts[1:] {
			if w, ok := kv(a)[k]; !ok || w != v {
				shared = false
				break
			}
		}
		if shared {
			out[k] = v
		}
	}
	return out
}
