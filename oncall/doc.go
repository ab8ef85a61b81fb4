// Package oncall is the schedule engine: who is on call at an instant, and
// until when. It knows nothing of HTTP, storage or SMS; every answer is a
// pure function of the compiled configuration, the time asked about and
// the run-time overrides the caller passes in, so it is tested exactly,
// minute by minute across DST changes, without a clock.
//
// An on-call list is either fixed (numbers: everyone at all times, the
// original form) or a schedule:
//
//   - a rotation puts one member at a time on call, each for one shift,
//     in turn; rotation.start is the local time one turn (the first
//     member's) begins, and every shift before and after it is a handoff
//     too;
//   - layers, checked in order, put their members on call while one of
//     their named time intervals (Alertmanager's syntax and semantics)
//     contains the time;
//   - overrides put their members on call from start to end.
//
// Precedence: an override, then the first matching layer, then the
// rotation. Among overlapping overrides the one that started last wins; of
// two starting together, the one added last (the configuration's come
// before those added at run time).
//
// Handoffs are computed on the wall clock of the list's time zone, by
// calendar arithmetic from rotation.start: turn k begins at the local time
// start + k×shift, never at an instant reached by adding k×shift of real
// time, so a 1d or 1w rotation hands over at the same local time all year.
// A handoff at a local time the clocks skip (spring forward) happens at
// the first valid instant after it, the moment of the jump; one at a local
// time the clocks show twice (fall back) happens at the first occurrence.
// A turn shorter than the skipped hour falls into it and lasts nothing.
package oncall
