package status

import (
	"context"
	"time"

	"github.com/prometheus/common/model"

	"github.com/smsbridge/smsbridge/sms"
)

// NoiseSource reports the noise controls for the page: what the throttle
// holds per number and what the day's budget has left. Options.Noise is
// nil when the daemon has none to show.
type NoiseSource interface {
	Noise(ctx context.Context) (Noise, error)
}

// Noise is the state of the noise controls. Numbers are full; the page
// and the API mask them.
type Noise struct {
	// DedupWindow is the duplicate window.
	DedupWindow time.Duration
	// Throttle are the per-number buckets, such as "5 per 15m"; none when
	// the throttle is off.
	Throttle []string
	// Window is the longest bucket's window, which Sent counts over.
	Window time.Duration
	// Numbers are the numbers sent to within Window or with something
	// held, by number.
	Numbers []NumberNoise
	// Budget is nil without a budget.
	Budget *BudgetNoise
}

// NumberNoise is one number's recent traffic and what is held for it.
type NumberNoise struct {
	Number string
	// Sent counts messages sent to it within the window.
	Sent int
	// Held are the held messages' digest lines, oldest first.
	Held []string
	// NextRelease is when the held ones go; zero when none is held.
	NextRelease time.Time
	// DigestWaiting is true while its digest is queued or sending.
	DigestWaiting bool
}

// BudgetNoise is the day's segment budget.
type BudgetNoise struct {
	Day      string
	TimeZone string
	Limit    int
	Used     int
	// Critical are the matchers of the messages that go past it.
	Critical []string
}

// WindowText writes the throttle's window as it is configured.
func (n Noise) WindowText() string { return model.Duration(n.Window).String() }

// DedupText writes the duplicate window as it is configured.
func (n Noise) DedupText() string { return model.Duration(n.DedupWindow).String() }

// HeldNumbers counts the numbers something is held for.
func (n Noise) HeldNumbers() int {
	c := 0
	for _, nn := range n.Numbers {
		if len(nn.Held) > 0 {
			c++
		}
	}
	return c
}

// Remaining is what the day has left.
func (b BudgetNoise) Remaining() int { return max(0, b.Limit-b.Used) }

// Percent is the share of the day's budget spent, rounded down.
func (b BudgetNoise) Percent() int {
	if b.Limit <= 0 {
		return 0
	}
	return b.Used * 100 / b.Limit
}

// noise reads the noise section for a page or the API; its error is
// logged and shown as a sentence.
func (h *Handler) noise(ctx context.Context) (*Noise, string) {
	if h.noiseSrc == nil {
		return nil, ""
	}
	n, err := h.noiseSrc.Noise(ctx)
	if err != nil {
		h.logger.Error("read the noise controls", "err", err)
		return nil, "the throttle and budget could not be read; see the bridge's log"
	}
	return &n, ""
}

// noiseJSON is the noise section of GET /api/v1/status.
type noiseJSON struct {
	DedupWindowSeconds float64           `json:"dedup_window_seconds"`
	Throttle           []string          `json:"throttle"`
	WindowSeconds      float64           `json:"window_seconds"`
	Numbers            []numberNoiseJSON `json:"numbers"`
	Budget             *budgetJSON       `json:"budget,omitempty"`
}

type numberNoiseJSON struct {
	// Number is masked.
	Number        string     `json:"number"`
	Sent          int        `json:"sent"`
	Held          []string   `json:"held"`
	NextRelease   *time.Time `json:"next_release,omitempty"`
	DigestWaiting bool       `json:"digest_waiting"`
}

type budgetJSON struct {
	Day       string   `json:"day"`
	TimeZone  string   `json:"time_zone"`
	Limit     int      `json:"daily_segments"`
	Used      int      `json:"used"`
	Remaining int      `json:"remaining"`
	Critical  []string `json:"critical"`
}

func toNoiseJSON(n *Noise) *noiseJSON {
	out := &noiseJSON{DedupWindowSeconds: n.DedupWindow.Seconds(), Throttle: n.Throttle, WindowSeconds: n.Window.Seconds(),
		Numbers: make([]numberNoiseJSON, 0, len(n.Numbers))}
	if out.Throttle == nil {
		out.Throttle = []string{}
	}
	for _, nn := range n.Numbers {
		held := nn.Held
		if held == nil {
			held = []string{}
		}
		out.Numbers = append(out.Numbers, numberNoiseJSON{Number: sms.MaskNumber(nn.Number), Sent: nn.Sent, Held: held,
			NextRelease: optTime(nn.NextRelease), DigestWaiting: nn.DigestWaiting})
	}
	if b := n.Budget; b != nil {
		out.Budget = &budgetJSON{Day: b.Day, TimeZone: b.TimeZone, Limit: b.Limit, Used: b.Used, Remaining: b.Remaining(), Critical: b.Critical}
	}
	return out
}
