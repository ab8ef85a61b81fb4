package sms

import (
	"context"
	"net/http"
	"time"
)

// Provider sends one text to many numbers in one request and classifies
// the answer. It keeps no state between calls: the pace of requests, the
// 429 pause and the account hold belong to the caller (package dispatch),
// which persists them. Implementations are safe for concurrent use.
//
// The Result has one NumberResult per input number, in input order. A
// non-nil error is an *Error: the request failed as a whole, and its Kind
// and RetryAfter say whether and when the caller may try again.
type Provider interface {
	Send(ctx context.Context, text string, numbers []string) (Result, error)
}

// Inbound is implemented by a provider that can POST events back to the
// bridge (delivery receipts, replies). The bridge serves the callback
// endpoint and authenticates it; the provider only parses what arrived.
type Inbound interface {
	// ParseCallback reads one callback request's body. A body that is not
	// the provider's format is an error (the bridge answers 400); event
	// types the provider adds later come back as EventUnknown.
	ParseCallback(header http.Header, body []byte) ([]Event, error)
}

// EventKind is what an inbound event reports.
type EventKind string

// Event kinds.
const (
	// EventStatus is a delivery status for one number (a handset receipt).
	EventStatus EventKind = "status"
	// EventReply is a text a recipient sent back.
	EventReply EventKind = "reply"
	// EventUnknown is an event the bridge cannot use: one of a type the
	// parser does not know (Type names it), or one of a known type whose
	// number is missing or unusable (Type names the known type). It never
	// has a Number; the caller counts it and ignores it.
	EventUnknown EventKind = "unknown"
)

// Event is one inbound event, normalised.
type Event struct {
	Kind EventKind
	// Type is the provider's own name for the event type.
	Type string
	// Number is the recipient (EventStatus) or sender (EventReply) in
	// E.164 form, with "+".
	Number string
	// Status is the provider's status word (EventStatus), as sent.
	Status string
	// Failed is true for a status that explicitly reports a failure.
	Failed bool
	// Text is the reply's text (EventReply).
	Text string
	// ProviderID is the provider's id of the message or event, if any.
	ProviderID string
	// At is when the provider says the event happened; zero if unknown.
	At time.Time
}
