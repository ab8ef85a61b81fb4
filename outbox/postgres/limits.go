package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// admitRow is one delivery Admit decides about, as the store has it.
type admitRow struct {
	number                        string
	unthrottled, critical, digest bool
	segments                      int
}

// numberState is what Admit knows of one number: the admissions counted
// in its longest window (newest first), whether it has held deliveries,
// and its digests waiting (pending or sending), by id.
type numberState struct {
	admitted []time.Time
	held     bool
	digests  map[int64]bool
}

// Admit decides which leased deliveries may go now under limits and
// records the decision in one transaction. Replicas serialise per number
// and per budget day: the transaction first takes the advisory lock of
// each number of ds (the lock Release and CancelHeld take too), in the
// global lock order, then locks the rows themselves (by id) and then the
// day's budget row, so two Admit calls for one number, or for one day,
// decide one after the other and the second sees what the first admitted.
func (s *Store) Admit(ctx context.Context, now time.Time, ds []outbox.Delivery, limits outbox.Limits) (_ outbox.Admission, err error) {
	var adm outbox.Admission
	if err := s.closed(); err != nil {
		return adm, err
	}
	if len(ds) == 0 {
		return adm, nil
	}
	if err := limits.Check(); err != nil {
		return adm, fmt.Errorf("admit: %w", err)
	}
	budget := limits.Budget
	ctx, end := s.op(ctx, "admit")
	defer func() { end(err) }()

	var (
		locks   []xactLock
		ids     []int64
		tokens  []string
		numbers []string
	)
	seen := map[string]bool{}
	for _, d := range ds {
		ids, tokens = append(ids, d.ID), append(tokens, d.Lease)
		if !seen[d.Number] {
			seen[d.Number] = true
			numbers = append(numbers, d.Number)
			locks = append(locks, s.lockOf(lockSpaceNumber, d.Number))
		}
	}
	most, longest := 0, time.Duration(0)
	for _, b := range limits.Throttle {
		most, longest = max(most, b.Count), max(longest, b.Per)
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return adm, fmt.Errorf("admit: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	b := &pgx.Batch{}
	queueLocks(b, locks)
	rows := map[int64]admitRow{}
	b.Queue(`SELECT d.id, d.number, d.unthrottled, d.critical, d.digest, m.segments
		FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE (d.id, d.lease) IN (SELECT * FROM unnest($1::bigint[], $2::text[])) AND d.state = 'sending' AND d.lease <> ''
		ORDER BY d.id FOR UPDATE OF d`, ids, tokens).
		Query(func(rs pgx.Rows) error {
			var id int64
			var r admitRow
			_, err := pgx.ForEachRow(rs, []any{&id, &r.number, &r.unthrottled, &r.critical, &r.digest, &r.segments}, func() error {
				rows[id] = r
				return nil
			})
			return err
		})
	used := 0
	if budget.Limit > 0 {
		b.Queue(`INSERT INTO budget (day, used, updated_at) VALUES ($1, 0, $2) ON CONFLICT (day) DO NOTHING`, budget.Day, now)
		b.Queue(`SELECT used FROM budget WHERE day = $1 FOR UPDATE`, budget.Day).
			QueryRow(func(row pgx.Row) error { return row.Scan(&used) })
	}
	state := map[string]*numberState{}
	for _, num := range numbers {
		state[num] = &numberState{digests: map[int64]bool{}}
	}
	if len(limits.Throttle) > 0 {
		// The admissions in each number's longest window, at most the
		// largest count of them: the Count-th newest decides a bucket.
		b.Queue(`SELECT number, admitted_at FROM (
				SELECT number, admitted_at, row_number() OVER (PARTITION BY number ORDER BY admitted_at DESC) AS k
				FROM deliveries WHERE number = ANY($1) AND admitted_at > $2 AND state IN ('sending', 'accepted')
			) w WHERE k <= $3 ORDER BY number, admitted_at DESC`, numbers, now.Add(-longest), most).
			Query(func(rs pgx.Rows) error {
				var num string
				var at time.Time
				_, err := pgx.ForEachRow(rs, []any{&num, &at}, func() error {
					state[num].admitted = append(state[num].admitted, at)
					return nil
				})
				return err
			})
		b.Queue(`SELECT DISTINCT number FROM deliveries WHERE state = 'held' AND number = ANY($1)`, numbers).
			Query(func(rs pgx.Rows) error {
				var num string
				_, err := pgx.ForEachRow(rs, []any{&num}, func() error {
					state[num].held = true
					return nil
				})
				return err
			})
		b.Queue(`SELECT number, id FROM deliveries WHERE digest AND state IN ('pending', 'sending') AND number = ANY($1)`, numbers).
			Query(func(rs pgx.Rows) error {
				var num string
				var id int64
				_, err := pgx.ForEachRow(rs, []any{&num, &id}, func() error {
					state[num].digests[id] = true
					return nil
				})
				return err
			})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return adm, fmt.Errorf("admit: lock and read: %w", err)
	}

	var (
		asideID                         []int64
		asideState, asideCode, asideWhy []string
		asideUntil                      []time.Time
		admitID                         []int64
		admitCharged                    []int32
		admitDay                        []string
	)
	setAside := func(d outbox.Delivery, st outbox.State, until time.Time, code, reason string) {
		asideID, asideState, asideUntil = append(asideID, d.ID), append(asideState, string(st)), append(asideUntil, until)
		asideCode, asideWhy = append(asideCode, code), append(asideWhy, reason)
	}
	for _, d := range ds {
		r, ok := rows[d.ID]
		if !ok {
			continue // no longer ours: its current holder decides
		}
		delete(rows, d.ID) // a delivery given twice is decided once
		ns := state[r.number]
		if ns == nil { // the caller's Number was not the row's
			ns = &numberState{digests: map[int64]bool{}}
			state[r.number] = ns
		}
		if len(limits.Throttle) > 0 && !r.unthrottled {
			until, full := windowFull(ns.admitted, now, limits.Throttle)
			if r.digest && full {
				setAside(d, outbox.StatePending, until, "", "")
				adm.Deferred = append(adm.Deferred, outbox.SetAside{Delivery: d, Until: until})
				continue
			}
			if !r.digest {
				waiting := ns.held
				for id := range ns.digests {
					waiting = waiting || id != d.ID
				}
				if full || waiting {
					if !full {
						until = now
					}
					setAside(d, outbox.StateHeld, until, "", "")
					ns.held = true
					adm.Held = append(adm.Held, outbox.SetAside{Delivery: d, Until: until})
					continue
				}
			}
		}
		charged := 0
		if budget.Limit > 0 {
			cost := max(r.segments, 1)
			if !r.critical && used+cost > budget.Limit {
				reason := fmt.Sprintf("the daily budget of %d segments for %s is spent (%d used); only critical messages go until midnight", budget.Limit, budget.Day, used)
				setAside(d, outbox.StateFailed, now, outbox.ReasonBudgetExhausted, reason)
				adm.Failed = append(adm.Failed, outbox.SetAside{Delivery: d})
				continue
			}
			used += cost
			charged = cost
		}
		day := ""
		if charged > 0 {
			day = budget.Day
		}
		admitID, admitCharged, admitDay = append(admitID, d.ID), append(admitCharged, int32(charged)), append(admitDay, day)
		// Newest first, as read: the next delivery to the number counts it.
		ns.admitted = slices.Insert(ns.admitted, 0, now)
		adm.Send = append(adm.Send, d)
	}

	b = &pgx.Batch{}
	if len(asideID) > 0 {
		b.Queue(`UPDATE deliveries d SET state = u.state, next_attempt_at = u.until,
				error_code = CASE WHEN u.code <> '' THEN u.code ELSE d.error_code END,
				error = CASE WHEN u.reason <> '' THEN u.reason ELSE d.error END,
				lease = '', lease_until = NULL, updated_at = $6
			FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[]) AS u(id, state, until, code, reason)
			WHERE d.id = u.id`, asideID, asideState, asideUntil, asideCode, asideWhy, now)
	}
	if len(admitID) > 0 {
		b.Queue(`UPDATE deliveries d SET admitted_at = $4, charged = u.charged, charged_day = u.day, updated_at = $4
			FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, charged, day) WHERE d.id = u.id`,
			admitID, admitCharged, admitDay, now)
	}
	if budget.Limit > 0 {
		b.Queue(`UPDATE budget SET used = $2, updated_at = $3 WHERE day = $1`, budget.Day, used, now)
		adm.BudgetUsed = used
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return outbox.Admission{}, fmt.Errorf("admit: record: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return outbox.Admission{}, fmt.Errorf("admit: commit: %w", err)
	}
	return adm, nil
}

// windowFull reports whether a number whose admissions are admitted
// (newest first) has had its fill of some bucket at now, and when it may
// receive again (the latest end among the full buckets). A bucket of
// Count per Per is full when the Count-th most recent admission is within
// Per of now; it frees up Per after that admission.
func windowFull(admitted []time.Time, now time.Time, buckets []outbox.Bucket) (time.Time, bool) {
	var until time.Time
	full := false
	for _, b := range buckets {
		if len(admitted) < b.Count {
			continue
		}
		if t := admitted[b.Count-1]; t.After(now.Add(-b.Per)) {
			full = true
			if end := t.Add(b.Per); end.After(until) {
				until = end
			}
		}
	}
	return until, full
}

// releaseBatch is the most numbers one Release call handles, and
// releaseRows the most held deliveries of one number it bundles: what is
// left waits for the next call.
const (
	releaseBatch = 100
	releaseRows  = 1000
)

// waitingDigest is true for a number with a digest pending or sending.
const waitingDigest = `EXISTS (SELECT 1 FROM deliveries x WHERE x.number = h.number AND x.digest AND x.state IN ('pending', 'sending'))`

// Release ends the hold of the numbers whose held deliveries are due, in
// one transaction; see outbox.Store. It finds the due numbers, takes their
// advisory locks (those Admit and CancelHeld take), in the global order,
// and reads each number's held deliveries again under its lock: a number
// another replica released meanwhile has none left, or its digest waiting,
// and is skipped, so racing releases make one digest per number.
func (s *Store) Release(ctx context.Context, now time.Time, digest outbox.DigestFunc) (_ []outbox.ReleasedHold, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	ctx, end := s.op(ctx, "release")
	defer func() { end(err) }()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("release: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	const due = `SELECT h.number FROM deliveries h WHERE h.state = 'held' AND NOT ` + waitingDigest + `
		GROUP BY h.number HAVING min(h.next_attempt_at) <= $1`
	rows, err := tx.Query(ctx, due+` ORDER BY min(h.next_attempt_at), h.number LIMIT $2`, now, releaseBatch)
	if err != nil {
		return nil, fmt.Errorf("release: find due numbers: %w", err)
	}
	numbers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("release: find due numbers: %w", err)
	}
	if len(numbers) == 0 {
		return nil, nil
	}
	locks := make([]xactLock, len(numbers))
	for i, num := range numbers {
		locks[i] = s.lockOf(lockSpaceNumber, num)
	}
	b := &pgx.Batch{}
	queueLocks(b, locks)
	still := map[string]bool{}
	b.Queue(due+` AND h.number = ANY($2)`, now, numbers).Query(func(rs pgx.Rows) error {
		var num string
		_, err := pgx.ForEachRow(rs, []any{&num}, func() error {
			still[num] = true
			return nil
		})
		return err
	})
	held := map[string][]outbox.Record{}
	b.Queue(selectRecords+` WHERE d.state = 'held' AND d.number = ANY($1) ORDER BY d.id`, numbers).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				r, err := scanRecord(rs)
				if err != nil {
					return err
				}
				held[r.Number] = append(held[r.Number], r)
			}
			return rs.Err()
		})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("release: read held deliveries: %w", err)
	}
	var out []outbox.ReleasedHold
	for _, number := range numbers {
		if !still[number] {
			continue // another release took it
		}
		rs := held[number]
		if len(rs) == 0 {
			continue
		}
		rs = rs[:min(len(rs), releaseRows)]
		rel := outbox.ReleasedHold{Number: number}
		for _, r := range rs {
			rel.Deliveries = append(rel.Deliveries, r.ID)
			if !slices.Contains(rel.Receivers, r.Receiver) {
				rel.Receivers = append(rel.Receivers, r.Receiver)
			}
		}
		if len(rs) == 1 {
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'pending', next_attempt_at = $1, queued_at = $1, updated_at = $1
				WHERE id = $2 AND state = 'held'`, now, rs[0].ID); err != nil {
				return nil, fmt.Errorf("release delivery %d: %w", rs[0].ID, err)
			}
			out = append(out, rel)
			continue
		}
		if rel.Digest, err = writeDigest(ctx, tx, now, number, rs, digest); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'bundled', bundled_into = $1, updated_at = $2
			WHERE state = 'held' AND id = ANY($3)`, rel.Digest, now, rel.Deliveries); err != nil {
			return nil, fmt.Errorf("bundle held deliveries: %w", err)
		}
		out = append(out, rel)
	}
	if len(out) > 0 {
		if _, err := tx.Exec(ctx, notify, s.channel, s.owner); err != nil {
			return nil, fmt.Errorf("release: notify: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("release: commit: %w", err)
	}
	if len(out) > 0 {
		s.signal()
	}
	return out, nil
}

// writeDigest records the digest of held for number and returns its
// delivery's id.
func writeDigest(ctx context.Context, tx pgx.Tx, now time.Time, number string, held []outbox.Record, digest outbox.DigestFunc) (int64, error) {
	d, err := outbox.PlanDigest(held, digest)
	if err != nil {
		return 0, fmt.Errorf("release: %w", err)
	}
	var did int64
	err = tx.QueryRow(ctx, `WITH n AS (
			INSERT INTO notifications (received_at, source, group_key, status, outcome, alertname)
			VALUES ($1, $2, $2, $3, $4, $5) RETURNING id
		), m AS (
			INSERT INTO messages (notification_id, receiver, text, segments, summary)
			SELECT id, $6, $7, $8, '' FROM n RETURNING id
		)
		INSERT INTO deliveries (message_id, number, state, queued_at, next_attempt_at, updated_at, critical, digest, person)
		SELECT id, $9, 'pending', $1, $1, $1, $10, true, $11 FROM m RETURNING id`,
		now, outbox.SourceDigest, d.Status, outbox.OutcomeAccepted, d.AlertName,
		d.Receiver, d.Text, d.Segments, number, d.Critical, d.Person).Scan(&did)
	if err != nil {
		return 0, fmt.Errorf("release: record the digest: %w", err)
	}
	return did, nil
}

// BudgetUsed returns the segments Admit counted for day.
func (s *Store) BudgetUsed(ctx context.Context, day string) (_ int, err error) {
	if err := s.closed(); err != nil {
		return 0, err
	}
	ctx, end := s.op(ctx, "budget_used")
	defer func() { end(err) }()
	var used int
	err = s.pool.QueryRow(ctx, `SELECT used FROM budget WHERE day = $1`, day).Scan(&used)
	if err != nil && !isNoRows(err) {
		return 0, fmt.Errorf("read the budget of %s: %w", day, err)
	}
	return used, nil
}

// Numbers reports each number's recent admissions and what is held for it.
func (s *Store) Numbers(ctx context.Context, since time.Time) (_ []outbox.NumberStats, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	ctx, end := s.op(ctx, "numbers")
	defer func() { end(err) }()
	// Three indexed parts rather than one scan: an admitted row was updated
	// when it was admitted or accepted, so updated_at bounds it.
	rows, err := s.pool.Query(ctx, `SELECT number, sum(sent)::int, sum(held)::int, min(next), bool_or(dig) FROM (
			SELECT number, 1 AS sent, 0 AS held, NULL::timestamptz AS next, false AS dig FROM deliveries
				WHERE updated_at >= $1 AND admitted_at >= $1 AND state IN ('sending', 'accepted')
			UNION ALL
			SELECT number, 0, 1, next_attempt_at, false FROM deliveries WHERE state = 'held'
			UNION ALL
			SELECT number, 0, 0, NULL, true FROM deliveries WHERE digest AND state IN ('pending', 'sending')
		) x GROUP BY number ORDER BY number`, since)
	if err != nil {
		return nil, fmt.Errorf("read numbers: %w", err)
	}
	var out []outbox.NumberStats
	var ns outbox.NumberStats
	var next *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&ns.Number, &ns.Sent, &ns.Held, &next, &ns.DigestWaiting}, func() error {
		ns.NextRelease = time.Time{}
		if next != nil {
			ns.NextRelease = *next
		}
		out = append(out, ns)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read numbers: %w", err)
	}
	return out, nil
}

// giveBack returns charged segments to their days' budgets (charged maps a
// day to the segments given back). It locks the days' rows in day order,
// after the deliveries rows the caller changed: the global lock order.
func giveBack(ctx context.Context, tx pgx.Tx, charged map[string]int, now time.Time) error {
	if len(charged) == 0 {
		return nil
	}
	days := sortedKeys(charged, cmp.Compare[string])
	amounts := make([]int32, len(days))
	for i, d := range days {
		amounts[i] = int32(charged[d])
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT day FROM budget WHERE day = ANY($1) ORDER BY day FOR UPDATE`, days)
	b.Queue(`UPDATE budget SET used = greatest(0, used - u.amount), updated_at = $3
		FROM unnest($1::text[], $2::int[]) AS u(day, amount) WHERE budget.day = u.day`, days, amounts, now)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("give back budget: %w", err)
	}
	return nil
}

// unadmit is the SET clause that forgets a row's admission and charge.
const unadmit = `admitted_at = NULL, charged = 0, charged_day = ''`

// released is a row returned to the queue or failed by a statement that
// forgets its admission: what it had been charged, from which day.
type released struct {
	charged int
	day     string
}

// scanReleased reads a row of (charged, charged_day).
func scanReleased(row pgx.CollectableRow) (released, error) {
	var r released
	err := row.Scan(&r.charged, &r.day)
	return r, err
}

// sumCharged adds up what rs were charged, by day.
func sumCharged(rs []released) map[string]int {
	var out map[string]int
	for _, r := range rs {
		if r.charged > 0 && r.day != "" {
			if out == nil {
				out = map[string]int{}
			}
			out[r.day] += r.charged
		}
	}
	return out
}
