// Package dispatch sends what the outbox holds. It is the one owner of the
// provider's pace: it leases due deliveries, sends each text once to up to a
// batch of numbers through a provider account, records every number's
// outcome, and keeps the rules the provider sets.
//
// The rules, per account:
//   - requests start no closer together than 1/rate_limit (with a small
//     margin), without waiting for earlier replies: a slow provider does not
//     slow the pace, and at most Settings.MaxInFlight requests are on the
//     wire at once; and no more than rate_limit requests leave within any
//     second and 50 ms, counted when they really left;
//   - 429: no request starts after the reply arrived until the announced
//     pause (or the default pause) has run out. A request already on the
//     wire when the 429 arrives was sent before it and cannot be recalled;
//   - 5xx or no reply: the rows retry with exponential backoff and jitter,
//     never sooner than a Retry-After the provider named;
//   - 401, 403, 405: the account is held; one probe request per HoldRetry,
//     logged at error level and exported as a gauge;
//   - 400 or an unknown status: the rows fail for good;
//   - a row not accepted within MaxAge of its receipt fails, counted and
//     logged.
//
// The pause, the hold and the time an account started failing are written
// to the store (Store.PutState) when they change and read back when Run
// starts, so a restart inside a 60 s pause sends nothing until it ends.
//
// With a second account (Settings.Accounts[1], the fallback), requests go
// through the fallback while the primary is held or has failed every
// attempt for FallbackAfter; the primary is probed every HoldRetry with a
// real batch and takes over again as soon as it answers.
//
// Delivery is at-least-once (see package outbox): a row in flight when the
// process dies is sent again after restart.
package dispatch
