package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/smsbridge/smsbridge/routing"
)

// OutcomeMuted is the outcome of a notification that sends nothing
// because a route's time intervals muted it for every receiver it reached.
const OutcomeMuted = "muted"

// MuteMetrics count what the time intervals hold back.
type MuteMetrics struct {
	muted *prometheus.CounterVec
}

// NewMuteMetrics registers the metrics with reg; nil registers nowhere.
func NewMuteMetrics(reg prometheus.Registerer) *MuteMetrics {
	return &MuteMetrics{muted: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "smsbridge_notifications_muted_total",
		Help: "Notifications not sent to a receiver because the routes that reached it were muted by their time intervals.",
	}, []string{"receiver"})}
}

// Init creates the series of each receiver at zero.
func (m *MuteMetrics) Init(receivers ...string) {
	if m == nil {
		return
	}
	for _, r := range receivers {
		m.muted.WithLabelValues(r)
	}
}

// Mute is the stage of the routes' active_time_intervals and
// mute_time_intervals, as Alertmanager applies them: a route is muted
// while one of its mute_time_intervals contains the time, or while it has
// active_time_intervals and none contains it. An alert reaches a receiver
// unless every route that sent it there is muted; a receiver whose alerts
// are all muted gets nothing (its entry says why), one with some muted
// gets a text about the others. When that leaves nothing to send, the
// notification is recorded with OutcomeMuted. The time judged is the
// plan's: the pipeline's clock.
type Mute struct {
	intervals *timeinterval.Intervener
	metrics   *MuteMetrics
	logger    *slog.Logger
}

// NewMute returns the stage for the configuration's time intervals;
// metrics and logger may be nil.
func NewMute(intervals map[string][]timeinterval.TimeInterval, metrics *MuteMetrics, logger *slog.Logger) *Mute {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Mute{intervals: timeinterval.NewIntervener(intervals), metrics: metrics, logger: logger}
}

// Name implements Stage.
func (*Mute) Name() string { return "mute" }

// Exec implements Stage.
func (m *Mute) Exec(_ context.Context, e *Envelope) error {
	muted := m.mark(e)
	if len(muted) == 0 {
		return nil
	}
	n := e.Notification
	for _, i := range muted {
		en := e.Plan.Entries[i]
		if m.metrics != nil {
			m.metrics.muted.WithLabelValues(en.Receiver.Name).Inc()
		}
		m.logger.Info("notification muted for a receiver", "receiver", en.Receiver.Name, "reason", en.Skipped,
			"intake_source", n.Source, "group_key", n.GroupKey)
	}
	for _, en := range e.Plan.Entries {
		if en.Skipped == "" {
			return nil
		}
	}
	e.Drop(OutcomeMuted)
	return nil
}

// Preview implements Previewer.
func (m *Mute) Preview(e *Envelope) { m.mark(e) }

// mark applies the time intervals to the plan's entries and returns the
// indexes of the entries it muted entirely.
func (m *Mute) mark(e *Envelope) []int {
	var muted []int
	at := e.Plan.At
	for i := range e.Plan.Entries {
		en := &e.Plan.Entries[i]
		if en.Skipped != "" {
			continue
		}
		var keep []int
		reason := ""
		for k, routes := range en.alertRoutes {
			sent := false
			for _, r := range routes {
				why := m.mutes(r, at)
				if why == "" {
					sent = true
					break
				}
				if reason == "" {
					reason = why
				}
			}
			if sent {
				keep = append(keep, k)
			}
		}
		switch {
		case len(keep) == len(en.alertRoutes):
		case len(keep) == 0:
			en.Skipped = reason
			muted = append(muted, i)
		case e.p != nil:
			e.p.narrow(e.Notification, en, keep)
		}
	}
	return muted
}

// mutes says why route r is muted at at, or "" when it is not.
func (m *Mute) mutes(r *routing.Node, at time.Time) string {
	if len(r.MuteTimeIntervals) > 0 {
		// Names were checked when the router was built.
		if in, names, _ := m.intervals.Mutes(r.MuteTimeIntervals, at); in {
			// Mutes names an interval once per spec of it that matched.
			return fmt.Sprintf("muted by %s (mute_time_intervals of %s)", strings.Join(slices.Compact(names), ", "), r.Path)
		}
	}
	if len(r.ActiveTimeIntervals) > 0 {
		if in, _ := m.intervals.ContainsTime(r.ActiveTimeIntervals, at); !in {
			return fmt.Sprintf("muted outside %s (active_time_intervals of %s)", strings.Join(r.ActiveTimeIntervals, ", "), r.Path)
		}
	}
	return ""
}
