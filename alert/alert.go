// Package alert is smsbridge's one model of an incoming notification: a
// group of alerts in the shape Alertmanager's templates know, whichever
// source it came from, and the few computations every consumer needs on it
// (common labels, the labels an alert is routed by, fingerprints). Each of
// them lives here and nowhere else, so intake, routing, rendering and the
// routes test cannot drift apart.
package alert

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

// SourceAlertmanager is the Source of notifications posted to the
// Alertmanager endpoint; every other source is the name of a webhooks entry.
const SourceAlertmanager = "alertmanager"

// Statuses of a notification and of each alert, as in Alertmanager's
// webhook payload.
const (
	StatusFiring   = string(model.AlertFiring)
	StatusResolved = string(model.AlertResolved)
)

// Notification is one group of alerts from any source.
type Notification struct {
	// Source is SourceAlertmanager or the name of a webhooks entry.
	Source string
	// Data is the group as Alertmanager's templates see it, ExternalURL
	// included.
	Data template.Data
	// GroupKey identifies the group across repeats of one event.
	GroupKey string
	// TruncatedAlerts counts alerts the sender left out of the payload
	// (Alertmanager's max_alerts, Grafana's truncatedAlerts).
	TruncatedAlerts int
	// ReceivedAt is when the request arrived.
	ReceivedAt time.Time
	// DeliveryID is the sender's id of this delivery, namespaced by source
	// (empty when it sent none): the store answers a repeat of it, until
	// DeliveryIDExpires, as a duplicate that sends nothing.
	DeliveryID        string
	DeliveryIDExpires time.Time
}

// Common returns the pairs present, with the same value, in every one of
// kvs; an empty (not nil) KV when there are none.
func Common(kvs []template.KV) template.KV {
	out := template.KV{}
	if len(kvs) == 0 {
		return out
	}
	for k, v := range kvs[0] {
		shared := true
		for _, kv := range kvs[1:] {
			if w, ok := kv[k]; !ok || w != v {
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

// Subset returns the notification restricted to alerts, as Alertmanager
// builds the data of one receiver's notification: Status is firing when any
// of the alerts fires and resolved otherwise, and CommonLabels and
// CommonAnnotations are those the alerts share. GroupLabels, ExternalURL,
// the group key, the truncation count and the receipt time are kept.
//
// The result shares the label maps of n and of alerts, which nobody
// modifies; n itself is not changed.
func (n *Notification) Subset(alerts template.Alerts) *Notification {
	out := *n
	out.Data.Alerts = alerts
	out.Data.Status = StatusResolved
	if len(alerts.Firing()) > 0 {
		out.Data.Status = StatusFiring
	}
	labels := make([]template.KV, len(alerts))
	annotations := make([]template.KV, len(alerts))
	for i, a := range alerts {
		labels[i], annotations[i] = a.Labels, a.Annotations
	}
	out.Data.CommonLabels = Common(labels)
	out.Data.CommonAnnotations = Common(annotations)
	return &out
}

// RouteLabels returns, for each alert in order, the labels it is routed
// by: the notification's common labels overlaid with the alert's own,
// which win on conflict. Alertmanager routes every alert by its own
// labels; the common labels are merged in for senders that leave them out
// of each alert.
func (n *Notification) RouteLabels() []map[string]string {
	out := make([]map[string]string, len(n.Data.Alerts))
	for i, a := range n.Data.Alerts {
		out[i] = MergeLabels(n.Data.CommonLabels, a.Labels)
	}
	return out
}

// MergeLabels returns common overlaid with labels, which win on conflict.
// Neither input is modified.
func MergeLabels(common, labels map[string]string) map[string]string {
	out := make(map[string]string, len(common)+len(labels))
	maps.Copy(out, common)
	maps.Copy(out, labels)
	return out
}

// Fingerprint returns Alertmanager's fingerprint of an alert with these
// labels (16 hex digits), so the same labels give the same fingerprint
// whichever source they came from.
func Fingerprint(labels map[string]string) string {
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// maxNames is how many distinct alert names AlertName lists before it
// says how many more there are.
const maxNames = 3

// AlertName says, for people, what the notification is about: the
// alertname its alerts share, or the distinct names of its alerts in
// payload order, at most three and then "+N more". It is empty when no
// alert has a name.
func (n *Notification) AlertName() string {
	if name := n.Data.CommonLabels["alertname"]; name != "" {
		return name
	}
	var names []string
	seen := map[string]bool{}
	for _, a := range n.Data.Alerts {
		name := a.Labels["alertname"]
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	if len(names) > maxNames {
		return strings.Join(names[:maxNames], ", ") + fmt.Sprintf(" +%d more", len(names)-maxNames)
	}
	return strings.Join(names, ", ")
}
