package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/generation"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/roster"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/status"
)

// rosterView is the running configuration as the roster reads it.
func (b *bridge) rosterView() roster.View {
	g := b.gen.Load()
	if g == nil {
		return roster.View{}
	}
	return roster.View{Lists: g.Router.Lists(), Directory: g.Router.Directory()}
}

// overridesFor returns the run-time overrides resolved with g's people.
func (b *bridge) overridesFor(g *generation.Generation) routing.OverridesFunc {
	dir := g.Router.Directory()
	return func(list string) []oncall.Override { return b.roster.For(list, dir) }
}

// oncallBridge is the on-call lists as the status page and the admin API
// read and change them.
type oncallBridge struct{ b *bridge }

// Lists implements status.Oncall.
func (o oncallBridge) Lists(now time.Time) []status.OncallList {
	g := o.b.gen.Load()
	if g == nil {
		return nil
	}
	dir := g.Router.Directory()
	var out []status.OncallList
	for _, s := range g.Router.Lists() {
		oc := s.At(now, o.b.roster.For(s.Name, dir))
		l := status.OncallList{
			Name: s.Name, TimeZone: s.Location.String(), Now: persons(oc.Members), Source: sourceText(oc.State, s),
			Until: oc.Until, Next: persons(oc.Next.Members), Schedule: describeSchedule(s), NotifyHandoff: s.NotifyHandoff,
			Location: s.Location,
		}
		for _, ov := range s.Overrides() {
			if ov.End.After(now) {
				l.Overrides = append(l.Overrides, status.Override{List: s.Name, Members: persons(ov.Members), Start: ov.Start, End: ov.End})
			}
		}
		for _, ov := range o.b.roster.Stored(s.Name) {
			if ov.End.After(now) {
				l.Overrides = append(l.Overrides, statusOverride(ov, dir))
			}
		}
		out = append(out, l)
	}
	return out
}

// AddOverride implements status.Oncall.
func (o oncallBridge) AddOverride(ctx context.Context, list string, req status.OverrideRequest) (status.Override, error) {
	stored, err := o.b.roster.Add(ctx, list, roster.AddRequest{Members: req.Members, Start: req.Start, End: req.End})
	switch {
	case errors.Is(err, roster.ErrUnknownList):
		return status.Override{}, fmt.Errorf("%w: %w", status.ErrUnknownList, err)
	case errors.Is(err, roster.ErrBadOverride):
		// The roster's text says what is wrong; the caller reads it.
		return status.Override{}, fmt.Errorf("%w: %s", status.ErrBadOverride, strings.TrimPrefix(err.Error(), roster.ErrBadOverride.Error()+": "))
	case err != nil:
		return status.Override{}, err
	}
	var dir *oncall.Directory
	if g := o.b.gen.Load(); g != nil {
		dir = g.Router.Directory()
	}
	return statusOverride(stored, dir), nil
}

// DeleteOverride implements status.Oncall.
func (o oncallBridge) DeleteOverride(ctx context.Context, list string, id int64) error {
	err := o.b.roster.Delete(ctx, list, id)
	if errors.Is(err, roster.ErrUnknownOverride) {
		return fmt.Errorf("%w: %w", status.ErrUnknownOverride, err)
	}
	return err
}

// statusOverride is a stored override as the page shows it: each member
// resolved, or named as not in the configuration.
func statusOverride(ov outbox.Override, dir *oncall.Directory) status.Override {
	so := status.Override{ID: ov.ID, List: ov.List, Start: ov.Start, End: ov.End, CreatedAt: ov.CreatedAt}
	for _, ref := range ov.Members {
		p := status.Person{Name: ref}
		if dir != nil {
			if m, err := dir.Lookup(ref); err == nil {
				p = status.Person{Name: m.Name, Number: m.Number}
			}
		}
		so.Members = append(so.Members, p)
	}
	return so
}

func persons(ms []oncall.Member) []status.Person {
	out := make([]status.Person, len(ms))
	for i, m := range ms {
		out[i] = status.Person{Name: m.Name, Number: m.Number}
	}
	return out
}

// sourceText says why st's members are on call: "rotation", "layer 1
// (business-hours)", "override 3", "override (configuration)", "numbers".
func sourceText(st oncall.State, s *oncall.Schedule) string {
	switch st.Source {
	case oncall.SourceOverride:
		if st.Override.ID == 0 {
			return "override (configuration)"
		}
		return fmt.Sprintf("override %d", st.Override.ID)
	case oncall.SourceLayer:
		return fmt.Sprintf("layer %d (%s)", st.Layer+1, strings.Join(s.Layers()[st.Layer].TimeIntervals, ", "))
	case oncall.SourceNone:
		return "nobody"
	}
	return string(st.Source)
}

// describeSchedule describes s in a line, numbers masked.
func describeSchedule(s *oncall.Schedule) string {
	var parts []string
	if r, ok := s.Rotation(); ok {
		parts = append(parts, fmt.Sprintf("rotation %s; shift %s from %s", memberNames(r.Members),
			r.Shift, r.Start.Format("2006-01-02 15:04 MST")))
	} else {
		parts = append(parts, "numbers "+memberNames(s.Fixed()))
	}
	for i, ly := range s.Layers() {
		parts = append(parts, fmt.Sprintf("layer %d: %s in %s", i+1, memberNames(ly.Members), strings.Join(ly.TimeIntervals, ", ")))
	}
	return strings.Join(parts, "; ")
}

// memberNames lists people by name and other numbers masked.
func memberNames(ms []oncall.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Name
		if m.Name == "" {
			parts[i] = sms.MaskNumber(m.Number)
		}
	}
	return strings.Join(parts, ", ")
}
