package status

import (
	"context"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// TwoWay is what the page reads of two-way SMS: the numbers that replied
// STOP (a loud banner: each is a hole in paging) and the
// acknowledgements, shown on the notifications they acknowledged.
// Options.TwoWay is nil when the daemon has none.
type TwoWay interface {
	OptOuts(ctx context.Context) ([]outbox.OptOut, error)
	Acks(ctx context.Context, since time.Time, limit int) ([]outbox.Ack, error)
	// NameOf is the name of the person number belongs to in the
	// configuration in force, or "".
	NameOf(number string) string
}

// maxOptOutsShown bounds the banner's list of opted-out numbers; the rest
// are counted ("and 3 more") and listed in full by /api/v1/status.
const maxOptOutsShown = 10

// optOutView is one opted-out number, masked and named.
type optOutView struct {
	Who string
	At  time.Time
}

// ackView is an acknowledgement as a notification shows it.
type ackView struct {
	By        string
	Code      int
	At, Until time.Time
	Silence   string
	SilenceID string
	Attempts  int
	Error     string
	Next      time.Time
}

// acksPeriod is how far back the page looks for acknowledgements: as
// far as reply codes live.
const acksPeriod = 2 * outbox.ReplyCodeLifetime

// twoWay reads the opt-outs and the acknowledgements by notification.
// Numbers are masked; people the store names are named.
func (h *Handler) twoWay(ctx context.Context, now time.Time) ([]optOutView, map[int64][]ackView, string) {
	if h.twoway == nil {
		return nil, nil, ""
	}
	outs, err := h.twoway.OptOuts(ctx)
	if err != nil {
		h.logger.Error("read opt-outs", "err", err)
		return nil, nil, "the opt-outs could not be read; see the bridge's log"
	}
	var views []optOutView
	for _, o := range outs {
		views = append(views, optOutView{Who: h.person(o.Number), At: o.At})
	}
	acks, err := h.twoway.Acks(ctx, now.Add(-acksPeriod), 1000)
	if err != nil {
		h.logger.Error("read acknowledgements", "err", err)
		return views, nil, "the acknowledgements could not be read; see the bridge's log"
	}
	byNotification := map[int64][]ackView{}
	for _, a := range acks {
		byNotification[a.NotificationID] = append(byNotification[a.NotificationID], ackView{
			By: Person{Name: a.Person, Number: a.Number}.String(), Code: a.Code, At: a.At, Until: a.Until, Silence: string(a.Silence),
			SilenceID: a.SilenceID, Attempts: a.Attempts, Error: a.Error, Next: a.NextAttempt,
		})
	}
	return views, byNotification, ""
}

// person names a number as the page does: with the name of the person it
// belongs to when the running configuration knows one, masked.
func (h *Handler) person(number string) string {
	return Person{Name: h.twoway.NameOf(number), Number: number}.String()
}

// optOutJSON is an opted-out number in the admin API, masked.
type optOutJSON struct {
	Number string    `json:"number"`
	At     time.Time `json:"at"`
}

// optOutsJSON lists the opted-out numbers for /api/v1/status.
func (h *Handler) optOutsJSON(ctx context.Context) []optOutJSON {
	if h.twoway == nil {
		return nil
	}
	outs, err := h.twoway.OptOuts(ctx)
	if err != nil {
		h.logger.Error("read opt-outs", "err", err)
		return nil
	}
	out := make([]optOutJSON, 0, len(outs))
	for _, o := range outs {
		out = append(out, optOutJSON{Number: sms.MaskNumber(o.Number), At: o.At.UTC()})
	}
	return out
}
