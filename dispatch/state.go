package dispatch

import "time"

// Mode is an account's state, as the status page shows it.
type Mode string

// Modes.
const (
	ModeOK      Mode = "ok"
	ModePaused  Mode = "paused"  // a 429 pause is running
	ModeFailing Mode = "failing" // every recent request failed (5xx, no reply)
	ModeHeld    Mode = "held"    // the API refuses the account
)

// State is a snapshot of the dispatcher for the status page.
type State struct {
	// Accounts are the configured accounts, the primary first.
	Accounts []AccountState
	// InFlight counts requests on the wire.
	InFlight int
}

// AccountState is one account's pace.
type AccountState struct {
	Name string
	Mode Mode
	// Active is true for the account new requests go through.
	Active bool
	// PausedUntil is the end of a running 429 pause.
	PausedUntil time.Time
	// Hold is the account problem that holds it; nil when none.
	Hold *Hold
	// FailingSince is when an unbroken run of failed requests started.
	FailingSince time.Time
	// NextProbe is when a held or failed-over account is next tried.
	NextProbe time.Time
	// LastError and LastErrorAt are the latest failed request.
	LastError   string
	LastErrorAt time.Time
	// Requests and Errors count requests and failed ones over the last
	// 15 minutes.
	Requests, Errors int
	// InFlight counts the account's requests on the wire.
	InFlight int
}

// State returns the dispatcher's state now.
func (d *Dispatcher) State() State {
	s := d.settings()
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := State{InFlight: int(d.inflight.Load())}
	hasFallback := len(s.Accounts) > 1
	for _, a := range s.Accounts {
		as := AccountState{Name: a.Name, Mode: ModeOK, Active: d.active == a.Name || (d.active == "" && a.Name == s.Accounts[0].Name)}
		if p := d.paces[a.Name]; p != nil {
			as.FailingSince, as.LastError, as.LastErrorAt = p.FailingSince, p.lastError, p.lastErrorAt
			as.Requests, as.Errors = p.window.counts(now)
			as.InFlight = p.inflight
			if !p.FailingSince.IsZero() {
				as.Mode = ModeFailing
			}
			if now.Before(p.PausedUntil) {
				as.Mode, as.PausedUntil = ModePaused, p.PausedUntil
			}
			if p.Hold != nil {
				h := *p.Hold
				as.Mode, as.Hold = ModeHeld, &h
			}
			if p.down(now, s, hasFallback) {
				as.NextProbe = p.nextProbe(s)
			}
		}
		st.Accounts = append(st.Accounts, as)
	}
	return st
}
