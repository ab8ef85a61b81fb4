package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// Admit decides which leased deliveries may go now under limits and
// records the decision, in one transaction on the single writer
// connection: every Admit, in order, sees what the ones before it
// admitted, so two can never both take a number's last place or the
// budget's last segments.
func (s *Store) Admit(ctx context.Context, now time.Time, ds []outbox.Delivery, limits outbox.Limits) (_ outbox.Admission, err error) {
	defer s.noteFullp(&err)
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
	rawTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return adm, fmt.Errorf("admit: begin: %w", err)
	}
	defer rawTx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// A batch runs the same few statements for each of its rows: parse
	// each once.
	tx := &stmtCache{tx: rawTx, stmts: map[string]*sql.Stmt{}}
	defer tx.close()
	nowMS := ms(now)
	used := 0
	if budget.Limit > 0 {
		if err := tx.QueryRowContext(ctx, `SELECT used FROM budget WHERE day = ?`, budget.Day).Scan(&used); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return adm, fmt.Errorf("admit: read the budget: %w", err)
		}
	}
	setAside := func(d outbox.Delivery, state outbox.State, until time.Time, code, reason string) error {
		_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, next_attempt_at = ?, error_code = CASE WHEN ? <> '' THEN ? ELSE error_code END,
			error = CASE WHEN ? <> '' THEN ? ELSE error END, lease = '', lease_until = NULL, updated_at = ? WHERE id = ?`,
			string(state), ms(until), code, code, reason, reason, nowMS, d.ID)
		return err
	}
	for _, d := range ds {
		var (
			number                       string
			unthrottled, critical, isDig bool
			segments                     int
		)
		err := tx.QueryRowContext(ctx, `SELECT d.number, d.unthrottled, d.critical, d.digest, m.segments
			FROM deliveries d JOIN messages m ON m.id = d.message_id
			WHERE d.id = ? AND d.state = 'sending' AND d.lease = ? AND d.lease <> ''`, d.ID, d.Lease).
			Scan(&number, &unthrottled, &critical, &isDig, &segments)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // no longer ours: its current holder decides
		case err != nil:
			return adm, fmt.Errorf("admit delivery %d: %w", d.ID, err)
		}
		if len(limits.Throttle) > 0 && !unthrottled {
			until, full, err := windowFull(ctx, tx, number, now, limits.Throttle)
			if err != nil {
				return adm, fmt.Errorf("admit delivery %d: %w", d.ID, err)
			}
			if isDig && full {
				if err := setAside(d, outbox.StatePending, until, "", ""); err != nil {
					return adm, fmt.Errorf("defer digest %d: %w", d.ID, err)
				}
				adm.Deferred = append(adm.Deferred, outbox.SetAside{Delivery: d, Until: until})
				continue
			}
			if !isDig {
				var waiting bool
				if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE number = ? AND state = 'held')
					OR EXISTS (SELECT 1 FROM deliveries WHERE number = ? AND digest = 1 AND state IN ('pending', 'sending') AND id <> ?)`,
					number, number, d.ID).Scan(&waiting); err != nil {
					return adm, fmt.Errorf("admit delivery %d: %w", d.ID, err)
				}
				if full || waiting {
					if !full {
						until = now
					}
					if err := setAside(d, outbox.StateHeld, until, "", ""); err != nil {
						return adm, fmt.Errorf("hold delivery %d: %w", d.ID, err)
					}
					adm.Held = append(adm.Held, outbox.SetAside{Delivery: d, Until: until})
					continue
				}
			}
		}
		charged := 0
		if budget.Limit > 0 {
			cost := max(segments, 1)
			if !critical && used+cost > budget.Limit {
				reason := fmt.Sprintf("the daily budget of %d segments for %s is spent (%d used); only critical messages go until midnight", budget.Limit, budget.Day, used)
				if err := setAside(d, outbox.StateFailed, now, outbox.ReasonBudgetExhausted, reason); err != nil {
					return adm, fmt.Errorf("fail delivery %d: %w", d.ID, err)
				}
				adm.Failed = append(adm.Failed, outbox.SetAside{Delivery: d})
				continue
			}
			used += cost
			charged = cost
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET admitted_at = ?, charged = ?, charged_day = ?, updated_at = ? WHERE id = ?`,
			nowMS, charged, budgetDay(charged, budget.Day), nowMS, d.ID); err != nil {
			return adm, fmt.Errorf("admit delivery %d: %w", d.ID, err)
		}
		adm.Send = append(adm.Send, d)
	}
	if budget.Limit > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO budget (day, used, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (day) DO UPDATE SET used = excluded.used, updated_at = excluded.updated_at`, budget.Day, used, nowMS); err != nil {
			return adm, fmt.Errorf("admit: count the budget: %w", err)
		}
		adm.BudgetUsed = used
	}
	if err := rawTx.Commit(); err != nil {
		return adm, fmt.Errorf("admit: commit: %w", err)
	}
	return adm, nil
}

// stmtCache prepares each statement of a transaction once.
type stmtCache struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (c *stmtCache) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := c.stmts[q]; ok {
		return st, nil
	}
	st, err := c.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.stmts[q] = st
	return st, nil
}

func (c *stmtCache) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtCache) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// scanRow is QueryRowContext: the error of preparing comes from Scan.
type scanRow struct {
	row *sql.Row
	err error
}

func (r scanRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.row.Scan(dest...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, q string, args ...any) scanRow {
	st, err := c.stmt(ctx, q)
	if err != nil {
		return scanRow{err: err}
	}
	return scanRow{row: st.QueryRowContext(ctx, args...)}
}

func (c *stmtCache) close() {
	for _, st := range c.stmts {
		st.Close()
	}
}

func budgetDay(charged int, day string) string {
	if charged == 0 {
		return ""
	}
	return day
}

// windowFull reports whether number has had its fill of some bucket at now,
// and when it may receive again (the latest end among the full buckets).
// A bucket of Count per Per is full when the Count-th most recent
// admission is within Per of now; it frees up Per after that admission.
func windowFull(ctx context.Context, tx *stmtCache, number string, now time.Time, buckets []outbox.Bucket) (time.Time, bool, error) {
	most, longest := 0, time.Duration(0)
	for _, b := range buckets {
		most, longest = max(most, b.Count), max(longest, b.Per)
	}
	rows, err := tx.QueryContext(ctx, `SELECT admitted_at FROM deliveries
		WHERE number = ? AND admitted_at > ? AND state IN ('sending', 'accepted')
		ORDER BY admitted_at DESC LIMIT ?`, number, ms(now.Add(-longest)), most)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("count the number's window: %w", err)
	}
	defer rows.Close()
	var times []int64
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return time.Time{}, false, fmt.Errorf("count the number's window: %w", err)
		}
		times = append(times, t)
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("count the number's window: %w", err)
	}
	var until time.Time
	full := false
	for _, b := range buckets {
		if len(times) < b.Count {
			continue
		}
		if t := fromMS(times[b.Count-1]); t.After(now.Add(-b.Per)) {
			full = true
			if end := t.Add(b.Per); end.After(until) {
				until = end
			}
		}
	}
	return until, full, nil
}

// releaseBatch is the most numbers one Release call handles, and
// releaseRows the most held deliveries of one number it bundles: what is
// left waits for the next call.
const (
	releaseBatch = 100
	releaseRows  = 1000
)

// waitingDigest is true for a number with a digest pending or sending.
const waitingDigest = `EXISTS (SELECT 1 FROM deliveries x WHERE x.number = h.number AND x.digest = 1 AND x.state IN ('pending', 'sending'))`

// Release ends the hold of the numbers whose held deliveries are due, in
// one transaction; see outbox.Store.
func (s *Store) Release(ctx context.Context, now time.Time, digest outbox.DigestFunc) (_ []outbox.ReleasedHold, err error) {
	defer s.noteFullp(&err)
	if err := s.closed(); err != nil {
		return nil, err
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("release: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	nowMS := ms(now)
	numbers, err := queryStrings(ctx, tx, `SELECT h.number FROM deliveries h WHERE h.state = 'held' AND NOT `+waitingDigest+`
		GROUP BY h.number HAVING min(h.next_attempt_at) <= ? ORDER BY min(h.next_attempt_at), h.number LIMIT ?`, nowMS, releaseBatch)
	if err != nil {
		return nil, fmt.Errorf("release: find due numbers: %w", err)
	}
	var out []outbox.ReleasedHold
	for _, number := range numbers {
		held, err := heldRecords(ctx, tx, number)
		if err != nil {
			return nil, err
		}
		rel := outbox.ReleasedHold{Number: number}
		for _, r := range held {
			rel.Deliveries = append(rel.Deliveries, r.ID)
			if !slices.Contains(rel.Receivers, r.Receiver) {
				rel.Receivers = append(rel.Receivers, r.Receiver)
			}
		}
		if len(held) == 1 {
			if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', next_attempt_at = ?, queued_at = ?, updated_at = ?
				WHERE id = ? AND state = 'held'`, nowMS, nowMS, nowMS, held[0].ID); err != nil {
				return nil, fmt.Errorf("release delivery %d: %w", held[0].ID, err)
			}
			out = append(out, rel)
			continue
		}
		if rel.Digest, err = writeDigest(ctx, tx, nowMS, number, held, digest); err != nil {
			return nil, err
		}
		args := []any{rel.Digest, nowMS}
		for _, id := range rel.Deliveries {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'bundled', bundled_into = ?, updated_at = ?
			WHERE state = 'held' AND id IN (?`+strings.Repeat(", ?", len(rel.Deliveries)-1)+`)`, args...); err != nil {
			return nil, fmt.Errorf("bundle held deliveries: %w", err)
		}
		out = append(out, rel)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("release: commit: %w", err)
	}
	if len(out) > 0 {
		s.signal()
	}
	return out, nil
}

// heldRecords returns the deliveries held for number, oldest first.
func heldRecords(ctx context.Context, tx *sql.Tx, number string) ([]outbox.Record, error) {
	rows, err := tx.QueryContext(ctx, selectRecords+` WHERE d.state = 'held' AND d.number = ? ORDER BY d.id LIMIT ?`, number, releaseRows)
	if err != nil {
		return nil, fmt.Errorf("release: read held deliveries: %w", err)
	}
	defer rows.Close()
	var out []outbox.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("release: read held deliveries: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("release: read held deliveries: %w", err)
	}
	return out, nil
}

// writeDigest records the digest of held for number and returns its
// delivery's id.
func writeDigest(ctx context.Context, tx *sql.Tx, nowMS int64, number string, held []outbox.Record, digest outbox.DigestFunc) (int64, error) {
	d, err := outbox.PlanDigest(held, digest)
	if err != nil {
		return 0, fmt.Errorf("release: %w", err)
	}
	nid, err := execID(ctx, tx, `INSERT INTO notifications (received_at, source, group_key, status, outcome, alertname) VALUES (?, ?, ?, ?, ?, ?)`,
		nowMS, outbox.SourceDigest, outbox.SourceDigest, d.Status, outbox.OutcomeAccepted, d.AlertName)
	if err != nil {
		return 0, fmt.Errorf("release: record the digest: %w", err)
	}
	mid, err := execID(ctx, tx, `INSERT INTO messages (notification_id, receiver, text, segments, summary) VALUES (?, ?, ?, ?, '')`,
		nid, d.Receiver, d.Text, d.Segments)
	if err != nil {
		return 0, fmt.Errorf("release: record the digest: %w", err)
	}
	did, err := execID(ctx, tx, `INSERT INTO deliveries (message_id, number, state, queued_at, next_attempt_at, updated_at, critical, digest, person)
		VALUES (?, ?, 'pending', ?, ?, ?, ?, 1, ?)`, mid, number, nowMS, nowMS, nowMS, d.Critical, d.Person)
	if err != nil {
		return 0, fmt.Errorf("release: record the digest: %w", err)
	}
	return did, nil
}

func execID(ctx context.Context, tx *sql.Tx, q string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func queryStrings(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// BudgetUsed returns the segments Admit counted for day.
func (s *Store) BudgetUsed(ctx context.Context, day string) (int, error) {
	if err := s.closed(); err != nil {
		return 0, err
	}
	var used int
	err := s.rdb.QueryRowContext(ctx, `SELECT used FROM budget WHERE day = ?`, day).Scan(&used)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read the budget of %s: %w", day, err)
	}
	return used, nil
}

// Numbers reports each number's recent admissions and what is held for it.
func (s *Store) Numbers(ctx context.Context, since time.Time) ([]outbox.NumberStats, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	sinceMS := ms(since)
	// Three indexed parts rather than one scan: an admitted row was updated
	// when it was admitted or accepted, so updated_at bounds it.
	rows, err := s.rdb.QueryContext(ctx, `SELECT number, sum(sent), sum(held), min(next), max(dig) FROM (
			SELECT number, 1 AS sent, 0 AS held, NULL AS next, 0 AS dig FROM deliveries
				WHERE updated_at >= ? AND admitted_at >= ? AND state IN ('sending', 'accepted')
			UNION ALL
			SELECT number, 0, 1, next_attempt_at, 0 FROM deliveries WHERE state = 'held'
			UNION ALL
			SELECT number, 0, 0, NULL, 1 FROM deliveries WHERE digest = 1 AND state IN ('pending', 'sending')
		) GROUP BY number ORDER BY number`, sinceMS, sinceMS)
	if err != nil {
		return nil, fmt.Errorf("read numbers: %w", err)
	}
	defer rows.Close()
	var out []outbox.NumberStats
	for rows.Next() {
		var ns outbox.NumberStats
		var next sql.NullInt64
		if err := rows.Scan(&ns.Number, &ns.Sent, &ns.Held, &next, &ns.DigestWaiting); err != nil {
			return nil, fmt.Errorf("read numbers: %w", err)
		}
		if next.Valid {
			ns.NextRelease = fromMS(next.Int64)
		}
		out = append(out, ns)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read numbers: %w", err)
	}
	return out, nil
}

// giveBack returns what Admit counted for the rows cond selects (a WHERE
// condition on deliveries with args): their segments to their days'
// budgets. The caller's update clears the rows' admission and charge.
func giveBack(ctx context.Context, tx *sql.Tx, cond string, args ...any) error {
	_, err := tx.ExecContext(ctx, `UPDATE budget SET used = max(0, used - (SELECT coalesce(sum(charged), 0) FROM deliveries
			WHERE charged_day = budget.day AND charged > 0 AND `+cond+`))
		WHERE day IN (SELECT charged_day FROM deliveries WHERE charged > 0 AND `+cond+`)`, slices.Concat(args, args)...)
	if err != nil {
		return fmt.Errorf("give back budget: %w", err)
	}
	return nil
}

// unadmit is the SET clause that forgets a row's admission and charge.
const unadmit = `admitted_at = NULL, charged = 0, charged_day = ''`
