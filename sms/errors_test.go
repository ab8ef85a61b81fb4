package sms

import (
	"errors"
	"io"
	"testing"
)

func TestKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind      Kind
		name      string
		retryable bool
		account   bool
	}{
		{KindTransient, "transient", true, false},
		{KindRateLimited, "rate_limited", true, false},
		{KindUnauthorized, "unauthorized", true, true},
		{KindSuspended, "suspended", true, true},
		{KindNoCredits, "no_credits", true, true},
		{KindBadRequest, "bad_request", false, false},
		{KindPermanent, "permanent", false, false},
		{Kind(99), "permanent", true, false},
	}
	for _, tc := range tests {
		e := &Error{Kind: tc.kind}
		if got := tc.kind.String(); got != tc.name {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tc.kind), got, tc.name)
		}
		if e.Retryable() != tc.retryable || e.AccountProblem() != tc.account {
			t.Errorf("%s: Retryable %v AccountProblem %v, want %v %v", tc.name, e.Retryable(), e.AccountProblem(), tc.retryable, tc.account)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	e := &Error{Kind: KindTransient, Message: "connection reset", Err: io.ErrUnexpectedEOF}
	if got, want := e.Error(), "sms api transient: connection reset"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Error("Unwrap does not reach the transport error")
	}
	e = &Error{Kind: KindRateLimited, StatusCode: 429, Message: "Try again in 17 seconds."}
	if got, want := e.Error(), "sms api rate_limited (status 429): Try again in 17 seconds."; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
