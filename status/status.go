// Package status answers the on-call engineer's question "why did (or
// didn't) I get that SMS?" without a database shell: a server-rendered
// status page and a small JSON admin API beside the intake endpoints.
//
// The page shows the running configuration, the provider's state, the
// queue and the last deliveries, the routing tree and a form that runs a
// routes test. The admin API lists deliveries, re-queues a failed one and
// sends a test SMS to a receiver.
//
// The package reads the daemon through the small interfaces below; it
// imports no daemon wiring. Phone numbers are masked before anything is
// shown, and no secret ever reaches it: the interfaces carry none.
package status

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// Errors the Bridge and Store report, mapped to status codes by the admin
// API.
var (
	// ErrUnknownReceiver is returned by SendTest for a receiver the running
	// configuration does not have.
	ErrUnknownReceiver = errors.New("no such receiver")
	// ErrNoNumbers is returned by SendTest for a receiver without numbers.
	ErrNoNumbers = errors.New("receiver has no numbers")
	// ErrUnknownDelivery is returned by Store.Retry when no delivery has
	// the id. Store.Retry returns outbox.ErrNotFailed for a delivery that
	// exists but has not failed.
	ErrUnknownDelivery = outbox.ErrNotFound
)

// Store is the part of the outbox the page reads and the admin API
// changes.
type Store interface {
	Stats(ctx context.Context) (outbox.Stats, error)
	Deliveries(ctx context.Context, f outbox.Filter) ([]outbox.Record, error)
	// Notifications lists notifications with all of their deliveries,
	// for the view grouped by notification.
	Notifications(ctx context.Context, f outbox.NotificationFilter) ([]outbox.NotificationRecord, error)
	// Counts counts notifications and finished deliveries since a time.
	Counts(ctx context.Context, since time.Time) (outbox.Counts, error)
	// Retry re-queues a failed delivery. Its error wraps
	// ErrUnknownDelivery or outbox.ErrNotFailed when the caller asked for
	// something impossible.
	Retry(ctx context.Context, id int64) error
}

// Bridge is the running daemon as the page sees it.
type Bridge interface {
	// Info describes the running configuration and the last reload.
	Info() Info
	// Provider is the SMS provider's state as the dispatcher sees it.
	Provider() Provider
	// RoutesTest routes and renders one firing alert with labels, as the
	// intake would, without sending or storing anything.
	RoutesTest(labels map[string]string) (RouteTest, error)
	// SendTest queues one test SMS to every number of receiver.
	SendTest(ctx context.Context, receiver string) (TestResult, error)
}

// Info describes the running configuration. It holds no secret.
type Info struct {
	// ConfigFile is the configuration file's path.
	ConfigFile string
	// ConfigHash is the SHA-256 of the file, in hex.
	ConfigHash string
	// LoadedAt is when the running configuration was loaded.
	LoadedAt time.Time
	// LastReload is the last reload attempt, successful or not.
	LastReload Reload
	// Tree is the routing tree as routing.Router.WriteTree writes it.
	Tree string
	// Receivers are the configured receivers, in configuration order.
	Receivers []Receiver
	// Sources are the intake sources: "alertmanager" and webhook names.
	Sources []string
	// NotReady says why the bridge is not ready (/-/ready answers 503 and
	// the intake refuses new notifications); empty when it is.
	NotReady string
	// DryRun is set when every account sends to the in-process fake
	// (--sms.dry-run): nothing reaches a phone.
	DryRun bool
}

// Reload is the result of one configuration (re)load.
type Reload struct {
	At time.Time
	// Err is the reason it failed; empty when it succeeded.
	Err string
}

// Receiver is a configured receiver with its full numbers; the page
// masks them.
type Receiver struct {
	Name         string
	Numbers      []string
	SendResolved bool
}

// Provider states.
const (
	ProviderOK     = "ok"
	ProviderPaused = "paused"
	ProviderHeld   = "held"
)

// Provider is the SMS provider as the dispatcher last saw it.
type Provider struct {
	// State is ProviderOK, ProviderPaused (after a 429) or ProviderHeld
	// (after a 401, 403 or 405: nothing is sent until a probe succeeds).
	State string
	// Until is when a pause ends.
	Until time.Time
	// Since is when the queue was held.
	Since time.Time
	// Reason is the kind of account problem that holds the queue:
	// unauthorized, suspended or no_credits.
	Reason string
	// StatusCode is the provider's HTTP status that paused or held the
	// queue; 0 when unknown.
	StatusCode int
	// Message is the provider's own message.
	Message string
	// Accounts are the configured accounts, the primary first, as the
	// dispatcher sees each.
	Accounts []Account
	// InFlight counts requests on the wire, all accounts together.
	InFlight int
}

// Account modes, as the dispatcher reports them.
const (
	ModeOK      = "ok"
	ModePaused  = "paused"
	ModeFailing = "failing"
	ModeHeld    = "held"
)

// Account is one provider account's state.
type Account struct {
	// Name is "primary" or "fallback".
	Name string
	// Mode is ModeOK, ModePaused (a 429 pause), ModeFailing (every recent
	// request failed) or ModeHeld (the provider refuses the account).
	Mode string
	// Active is set for the account new requests go through.
	Active bool
	// PausedUntil is the end of a 429 pause.
	PausedUntil time.Time
	// HeldSince, HeldReason, HeldStatus and HeldMessage describe a hold:
	// since when, unauthorized, suspended or no_credits, the HTTP status
	// and the provider's words.
	HeldSince   time.Time
	HeldReason  string
	HeldStatus  int
	HeldMessage string
	// FailingSince is when an unbroken run of failed requests began.
	FailingSince time.Time
	// NextProbe is when a held or failed-over account is tried next.
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

// RouteTest is what a notification would send.
type RouteTest struct {
	// Plans has one entry per receiver the alerts reached, in routing order.
	Plans []Plan
	// Messages and Recipients count what would be queued once receivers
	// that render the same text are merged, so nobody gets a page twice.
	Messages   int
	Recipients int
}

// Plan is what one receiver would get.
type Plan struct {
	Receiver string
	// Routes are the routes that reached the receiver.
	Routes []Route
	// Alerts counts the alerts the text is about.
	Alerts int
	// Numbers are the full numbers; callers mask them for display.
	// People are, for each, the name of the person on call there, or "".
	Numbers  []string
	People   []string
	Text     string
	Segments int
	// Skipped says why the receiver gets nothing; empty when it gets Text.
	Skipped string
}

// Route is one route of the tree, as routing.Node names it.
type Route struct {
	// Path is the route's place in the configuration, such as
	// "route.routes[0]".
	Path string
	// Key is Alertmanager's route key, such as `{}/{team="db"}`.
	Key string
}

// TestResult is a queued test SMS.
type TestResult struct {
	ID       int64
	Receiver string
	Text     string
	// Numbers are the full numbers; the API masks them.
	Numbers []string
}

// Options configure a Handler.
type Options struct {
	Store  Store
	Bridge Bridge
	// Started is when the daemon started, for its uptime.
	Started time.Time
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Logger receives errors the caller is not shown; nil discards them.
	Logger *slog.Logger
	// Noise reports the throttle and budget; nil leaves them off the page.
	Noise NoiseSource
	// Oncall are the on-call lists; nil hides them and their API.
	Oncall Oncall
	// TwoWay are the opt-outs and acknowledgements; nil hides them.
	TwoWay TwoWay
	// Escalations are the escalations; nil hides them and their API.
	Escalations Escalations
	// AdminAPI opens the endpoints that change state (--web.enable-admin-api);
	// without it they answer 403 and the page hides them.
	AdminAPI bool
	// PathPrefix is what every link of the pages starts with: the path of
	// the external URL, "" at the root, never a trailing slash.
	PathPrefix string
	// Refresh is how often the status page reloads itself; 0 means every
	// 30 seconds, negative never.
	Refresh time.Duration
}
