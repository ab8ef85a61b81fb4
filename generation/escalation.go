package generation

import (
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/escalate"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/routing"
)

// escalation compiles what the escalator reads of this configuration: a
// step's receiver and who it pages at the step's time (on-call lists with
// the run-time overrides), and alertmanager_api to check the group with.
func (b *builder) escalation(g *Generation) *escalate.Config {
	cfg := &escalate.Config{}
	if g.TwoWay != nil && g.TwoWay.Alertmanager != nil {
		cfg.Alertmanager = g.TwoWay.Alertmanager
		cfg.CheckTimeout = g.TwoWay.Alertmanager.Timeout()
	}
	r := g.Router
	if r == nil {
		return cfg
	}
	var overrides routing.OverridesFunc
	if src := b.opts.Overrides; src != nil {
		dir := r.Directory()
		overrides = func(list string) []oncall.Override { return src.For(list, dir) }
	}
	cfg.Target = func(name string, t time.Time) (escalate.Target, bool) {
		rc, ok := r.Receiver(name)
		if !ok {
			return escalate.Target{}, false
		}
		return escalate.Target{Name: rc.Name, Members: rc.Recipients(t, overrides), Unthrottled: !rc.Throttle, MaxSegments: rc.MaxSegments}, true
	}
	return cfg
}

// escalationWarnings warns of escalate lists that only a resolution can
// stop: without replies nobody can acknowledge by SMS, and without
// alertmanager_api a silence made in Alertmanager is not seen.
func (b *builder) escalationWarnings() []error {
	var warns []error
	for i, rc := range b.c.Receivers {
		if len(rc.Escalate) == 0 {
			continue
		}
		path := fmt.Sprintf("receivers[%d].escalate", i)
		switch {
		case !b.c.Replies.Enabled && b.c.AlertmanagerAPI == nil:
			warns = append(warns, b.f.Errorf(path, "warning: receiver %q: escalate without replies.enabled or alertmanager_api: only a resolution stops its steps (nobody can acknowledge by reply, and silences are not seen)", rc.Name))
		case !b.c.Replies.Enabled:
			warns = append(warns, b.f.Errorf(path, "warning: receiver %q: escalate without replies.enabled: nobody can stop its steps by replying ACK; only a resolution or a silence in Alertmanager does", rc.Name))
		}
	}
	return warns
}
