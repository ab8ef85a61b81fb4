package receiver

import (
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Budget of refusal log lines: a burst, then one a second. A sender in a
// retry loop, a scanner or a flood of bad requests then costs the disk
// about a line a second, while every refusal is still counted in
// smsbridge_notifications_received_total.
const (
	refusalBurst = 20
	refusalRate  = rate.Limit(1)
)

// refusalLog writes one warning per refused request until its token bucket
// is empty, then counts the lines it drops and reports that count with
// the next line it writes.
type refusalLog struct {
	logger     *slog.Logger
	limit      *rate.Limiter
	suppressed atomic.Int64
}

func newRefusalLog(logger *slog.Logger) *refusalLog {
	return &refusalLog{logger: logger, limit: rate.NewLimiter(refusalRate, refusalBurst)}
}

// log writes "request refused" with attrs at now, or counts it as
// suppressed when the budget is spent.
func (r *refusalLog) log(now time.Time, attrs []any) {
	if !r.limit.AllowN(now, 1) {
		r.suppressed.Add(1)
		return
	}
	if n := r.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	r.logger.Warn("request refused", attrs...)
}
