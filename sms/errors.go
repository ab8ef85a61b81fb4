package sms

import (
	"fmt"
	"time"
)

// Kind classifies a request that failed as a whole.
type Kind int

const (
	// KindTransient is a provider or network failure (5xx, timeout, reset,
	// DNS): retry with backoff. A 2xx reply that names none of the numbers
	// sent (empty, not JSON, or only a whole-request error) is transient
	// too: whether the provider sent anything is unknown, and a duplicate
	// SMS is better than a lost page.
	KindTransient Kind = iota
	// KindRateLimited is a 429: no request may be sent before RetryAfter
	// has passed, or the caller's default pause where RetryAfter is 0.
	KindRateLimited
	// KindUnauthorized is a 401: the API key is invalid. Hold the queue.
	KindUnauthorized
	// KindSuspended is a 403: the account is suspended. Hold the queue.
	KindSuspended
	// KindNoCredits is a 405: no credits, or the balance update failed.
	// Hold the queue.
	KindNoCredits
	// KindBadRequest is a 400: the request itself is wrong and will not
	// succeed if repeated.
	KindBadRequest
	// KindPermanent is any other reply the documentation does not name.
	KindPermanent
)

// String returns a short, bounded name for k, usable as a metric label.
func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindRateLimited:
		return "rate_limited"
	case KindUnauthorized:
		return "unauthorized"
	case KindSuspended:
		return "suspended"
	case KindNoCredits:
		return "no_credits"
	case KindBadRequest:
		return "bad_request"
	default:
		return "permanent"
	}
}

// MaxRetryAfter caps Error.RetryAfter. A wild value ("try again in 999999
// seconds") would otherwise stop all paging for days; after an hour the
// provider simply announces the next pause.
const MaxRetryAfter = time.Hour

// Error is a request that failed as a whole. It never carries the API key.
type Error struct {
	Kind Kind
	// StatusCode is the HTTP status, or 0 when no reply arrived.
	StatusCode int
	// RetryAfter is the least time to wait before the next request, as
	// the provider announced it, never more than MaxRetryAfter. The
	// provider only announces; the caller keeps the pace:
	//
	//   - KindRateLimited: the pause the 429 named (in its text or a
	//     Retry-After header, the larger of the two). 0 means it named
	//     none, and the caller then pauses for its configured default
	//     pause, never zero.
	//   - KindTransient: the Retry-After header of a 5xx or 408, which the
	//     caller honours as the minimum of its backoff; 0 if absent.
	//   - otherwise 0.
	RetryAfter time.Duration
	// Message is the provider's message, or a description of the failure,
	// cut to a bounded length.
	Message string
	// Err is the underlying transport error, if any.
	Err error
}

func (e *Error) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("sms api %s: %s", e.Kind, e.Message)
	}
	return fmt.Sprintf("sms api %s (status %d): %s", e.Kind, e.StatusCode, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later.
func (e *Error) Retryable() bool {
	return e.Kind != KindBadRequest && e.Kind != KindPermanent
}

// AccountProblem reports whether the failure is the account's, not the
// message's (401, 403, 405): the caller should hold the whole queue and
// raise the alarm instead of burning retries.
func (e *Error) AccountProblem() bool {
	return e.Kind == KindUnauthorized || e.Kind == KindSuspended || e.Kind == KindNoCredits
}

// Result is the outcome of one request, one entry per number submitted, in
// the order submitted.
type Result struct {
	Numbers []NumberResult
}

// NumberResult is the outcome for one number.
type NumberResult struct {
	// Number is the number as the caller gave it.
	Number string
	// Accepted is true when the provider took the message for this number.
	Accepted bool
	// MessageID is the provider's apiMessageId for an accepted number.
	MessageID string
	// ErrorCode, Error and Description explain a rejection: the provider's
	// errorCode/error/errorDescription, or ours for a number that never
	// reached the provider (ErrorCode "invalid_number").
	ErrorCode   string
	Error       string
	Description string
}
