package main

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/status"
)

// statusNoise is the noise controls as the status page reads them: the
// running configuration's throttle and budget, and the store's counts.
type statusNoise struct{ b *bridge }

// noWindow is how far back the page counts sends when no throttle is
// configured (held deliveries from an earlier configuration still show).
const noWindow = time.Hour

// Noise implements status.NoiseSource.
func (s statusNoise) Noise(ctx context.Context) (status.Noise, error) {
	g := s.b.gen.Load()
	if g == nil {
		return status.Noise{}, errors.New("noise: no configuration loaded")
	}
	c := g.File.Config
	now := time.Now()
	n := status.Noise{DedupWindow: time.Duration(c.Dedup.Window)}
	for _, bk := range g.Dispatch.Limits.Throttle {
		n.Throttle = append(n.Throttle, bk.String())
		n.Window = max(n.Window, bk.Per)
	}
	if n.Window == 0 {
		n.Window = noWindow
	}
	numbers, err := s.b.store.Numbers(ctx, now.Add(-n.Window))
	if err != nil {
		return status.Noise{}, err
	}
	held, err := s.b.store.Deliveries(ctx, outbox.Filter{State: outbox.StateHeld, Limit: 1000})
	if err != nil {
		return status.Noise{}, err
	}
	slices.SortFunc(held, func(a, b outbox.Record) int { return cmp.Compare(a.ID, b.ID) })
	lines := map[string][]string{}
	for _, r := range held {
		line := r.Summary
		if line == "" {
			line, _, _ = strings.Cut(r.Text, "\n")
		}
		lines[r.Number] = append(lines[r.Number], line)
	}
	for _, ns := range numbers {
		n.Numbers = append(n.Numbers, status.NumberNoise{Number: ns.Number, Sent: ns.Sent, Held: lines[ns.Number],
			NextRelease: ns.NextRelease, DigestWaiting: ns.DigestWaiting})
	}
	if l := g.Dispatch.Limits; l.DailySegments > 0 {
		day := dispatch.Day(now, l.Location)
		used, err := s.b.store.BudgetUsed(ctx, day)
		if err != nil {
			return status.Noise{}, err
		}
		n.Budget = &status.BudgetNoise{Day: day, TimeZone: c.Budget.TimeZone, Limit: l.DailySegments, Used: used, Critical: c.Budget.Critical}
	}
	return n, nil
}
