package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
)

// Dedup is duplicate suppression, the stage after the resolved rule. An
// Alertmanager HA pair delivers each notification once per peer (and
// again after a 5xx, or when gossip is slower than the peer timeout); the
// peers' copies differ in externalURL and in the endsAt of firing alerts,
// and agree in what Alertmanager's own notification log compares: the
// group, the status and which alerts fire and which resolved. So the key
// of one receiver's message is its receiver, the group key, the status of
// its alerts and their sorted fingerprints, firing and resolved apart. The
// store drops a message whose key equals the latest it stored for that
// receiver and group within Window, atomically with the write, so two
// peers posting at once (to two replicas) cannot both pass.
//
// The stage also names, for the stale check, the alert instances
// (fingerprint and start) each firing message is about, and the instances
// the notification reports resolved: a firing that arrives after its own
// resolution (a peer's late retry) is dropped as stale, while a re-fire,
// which has a new start, goes out.
type Dedup struct {
	// Window is how long a key suppresses its repeats; zero keeps only
	// the stale check.
	Window time.Duration
}

// Name implements Stage.
func (Dedup) Name() string { return "dedup" }

// Exec implements Stage.
func (d Dedup) Exec(_ context.Context, e *Envelope) error {
	n := e.Notification
	e.Record.Resolved = resolvedRefs(n.Data.Alerts)
	if d.Window > 0 && n.GroupKey != "" {
		e.Record.DedupWindow = d.Window
	}
	for i := range e.Plan.Entries {
		en := &e.Plan.Entries[i]
		if en.Skipped != "" || en.Notification == nil {
			continue
		}
		sub := en.Notification
		if e.Record.DedupWindow > 0 {
			en.Marks.DedupKey = DedupKey(en.Receiver.Name, n.GroupKey, sub.Data.Status, sub.Data.Alerts)
		}
		if sub.Data.Status == alert.StatusFiring {
			en.Marks.Alerts = refs(sub.Data.Alerts)
		}
	}
	return nil
}

// DedupKey is the duplicate key of a receiver's message about alerts in
// group: a SHA-256 over the receiver, the group key, the status and the
// sorted fingerprints of the firing and of the resolved alerts. What peers
// disagree on (externalURL, the endsAt of firing alerts, annotations'
// rendering) is not in it.
func DedupKey(receiver, group, status string, alerts template.Alerts) string {
	var firing, resolved []string
	for _, a := range alerts {
		if a.Status == alert.StatusResolved {
			resolved = append(resolved, fingerprint(a))
		} else {
			firing = append(firing, fingerprint(a))
		}
	}
	slices.Sort(firing)
	slices.Sort(resolved)
	h := sha256.New()
	for _, part := range []string{receiver, group, status, strings.Join(firing, ","), strings.Join(resolved, ",")} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fingerprint is the alert's fingerprint as Alertmanager computes it:
// given in the payload, or from the labels (as the webhook mapping does).
func fingerprint(a template.Alert) string {
	if a.Fingerprint != "" {
		return a.Fingerprint
	}
	return alert.Fingerprint(a.Labels)
}

func refs(alerts template.Alerts) []outbox.AlertRef {
	out := make([]outbox.AlertRef, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, outbox.AlertRef{Fingerprint: fingerprint(a), StartsAt: a.StartsAt})
	}
	return out
}

func resolvedRefs(alerts template.Alerts) []outbox.AlertRef {
	var out []outbox.AlertRef
	for _, a := range alerts {
		if a.Status == alert.StatusResolved {
			out = append(out, outbox.AlertRef{Fingerprint: fingerprint(a), StartsAt: a.StartsAt})
		}
	}
	return out
}

// logGuards logs what the store's guards dropped or cancelled for n: the
// notification is recorded, but some receivers get nothing.
func (p *Pipeline) logGuards(n *alert.Notification, res outbox.Enqueued) {
	for _, sp := range res.Suppressed {
		p.logger.Info("message suppressed: the receiver already got this notification, or its alerts already resolved",
			"receiver", sp.Receiver, "reason", sp.Reason, "intake_source", n.Source, "group_key", n.GroupKey, "id", res.ID)
	}
	if res.Cancelled > 0 {
		p.logger.Info("resolved before sent: held firing deliveries of the group cancelled with the resolution",
			"deliveries", res.Cancelled, "intake_source", n.Source, "group_key", n.GroupKey, "id", res.ID)
	}
}
