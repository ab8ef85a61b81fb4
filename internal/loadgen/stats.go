package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// summary is the distribution of a set of durations.
type summary struct {
	N                  int
	P50, P90, P99, Max time.Duration
	Mean               time.Duration
}

// summarize sorts d in place and returns its percentiles, by the
// nearest-rank method: the p-th percentile is the smallest value that at
// least p% of the samples do not exceed, so a reported p99 was observed.
func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return summary{
		N:    len(d),
		P50:  percentile(d, 50),
		P90:  percentile(d, 90),
		P99:  percentile(d, 99),
		Max:  d[len(d)-1],
		Mean: sum / time.Duration(len(d)),
	}
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ms formats d in milliseconds with enough digits for sub-millisecond
// latencies.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// rate returns events per second between the first and the last of the
// sorted times: n events span n-1 intervals, so a burst at the release of
// a backlog does not inflate the steady rate.
func rate(sorted []time.Time) float64 {
	if len(sorted) < 2 {
		return 0
	}
	span := sorted[len(sorted)-1].Sub(sorted[0]).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(len(sorted)-1) / span
}
