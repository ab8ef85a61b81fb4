package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/outbox"
)

// Enqueue records n durably: when it returns nil, the notification and its
// deliveries are committed (PostgreSQL has flushed the commit to its WAL).
// Concurrent calls share one commit. The guards (delivery id, once key,
// the resolved rule, duplicate suppression, stale alerts, CancelHeld) are
// evaluated inside it, under transaction locks every replica takes (see
// write), so two replicas never both act on one check. An error means
// nothing was recorded: answer 503.
func (s *Store) Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error) {
	if err := s.closed(); err != nil {
		return outbox.Enqueued{}, err
	}
	return s.calls.Submit(ctx, n)
}

// writer is one group-commit loop: it commits each batch of waiting
// calls in one transaction (outbox.GroupCommit).
func (s *Store) writer() {
	defer s.wg.Done()
	s.calls.Run(s.commit)
}

// commit writes batch in one transaction and answers every call in it: all
// with what was recorded, or all with the same error.
func (s *Store) commit(batch []*outbox.Pending) {
	start := time.Now()
	// No caller's context governs a shared commit; queryTimeout bounds it,
	// so an unreachable server answers 503 rather than hanging intake.
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	due, err := s.write(ctx, batch)
	cancel()
	s.metrics.ObserveCommit(len(batch), time.Since(start), err)
	if err != nil {
		err = fmt.Errorf("commit %s: %w", plural.Count(len(batch), "notification", "notifications"), err)
		s.logger.Error("outbox write failed; callers are told to retry", "err", err)
	}
	if err == nil && due {
		s.signal()
	}
	outbox.Answer(batch, err)
}

// pair is two keys: (receiver, group) for duplicate keys, (number, group)
// for CancelHeld.
type pair struct{ a, b string }

// alertKey names a resolved alert instance: its fingerprint and start, to
// the millisecond.
type alertKey struct {
	fingerprint string
	startsMS    int64
}

func alertKeyOf(a outbox.AlertRef) alertKey {
	return alertKey{a.Fingerprint, a.StartsAt.UnixMilli()}
}

// idRecord is a delivery id: the notification first recorded with it and
// when it expires.
type idRecord struct {
	notification int64
	expires      time.Time
}

// dedupRecord is the latest duplicate key of a (receiver, group).
type dedupRecord struct {
	key string
	at  time.Time
}

// commitState is what one group commit's guards read, then change as each
// call of the batch is recorded in order: the calls after it see what the
// calls before it wrote, as they would one transaction each.
type commitState struct {
	ids      map[string]idRecord  // delivery ids in force
	once     map[string]int64     // once key → its notification
	last     map[string]string    // group → the newest notification's status
	dedup    map[pair]dedupRecord // (receiver, group) → latest key
	resolved map[alertKey]bool    // alert instances seen resolved
	held     map[pair][]int64     // (number, group) → held firing deliveries
	lastSent map[pair]string      // (number, group) → status last sent
	watched  map[pair]bool        // the (number, group) pairs CancelHeld asks about
	twoWayState
	escState
}

// commitWrites is what one group commit writes, column by column.
type commitWrites struct {
	nID                                               []int64
	nSource, nGroup, nStatus, nOutcome, nOnce, nAlert []string

	mID, mNote                 []int64
	mReceiver, mText, mSummary []string
	mSegments                  []int32

	dMessage                       []int64
	dNumber, dState, dCode, dError []string
	dUnthrottled, dCritical        []bool
	dPerson                        []string

	dedup    map[pair]dedupRecord
	resolved map[alertKey]outbox.AlertRef
	ids      map[string]idRecord
	cancel   []int64
	twoWayWrites
	escWrites
}

// write records the batch in one transaction of four round trips, however
// many notifications it holds, and reports whether any delivery due now
// was added:
//
//  1. take the transaction's advisory locks, in one global order (see
//     queueLocks): each group key (the resolved rule and the duplicate
//     keys are per group), each once key and delivery id, and each number
//     a resolution with CancelHeld is written for (Admit and Release take
//     the same number locks); allocate the notifications' and messages'
//     ids, so within a group ids follow the order of recording; then read
//     what the guards need;
//  2. evaluate every call's guards in order, in memory (record);
//  3. write notifications, messages and deliveries with unnest, the
//     duplicate keys, resolved alerts and delivery ids with ON CONFLICT,
//     and cancel the held deliveries a resolution made moot;
//  4. commit.
//
// Reads after a lock see every commit of whoever held it before, so a
// check and the write it allows are one step for every replica.
func (s *Store) write(ctx context.Context, batch []*outbox.Pending) (due bool, err error) {
	now := s.clock()
	var (
		locks                  []xactLock
		guarded, ids, onceKeys []string
		dedupR, dedupG         []string
		alertFP                []string
		alertAt                []time.Time
		heldNum, heldGroup     []string
		messages               int
	)
	seenPair, seenAlert := map[pair]bool{}, map[alertKey]bool{}
	ask := newGuardAsk()
	st := &commitState{ids: map[string]idRecord{}, once: map[string]int64{}, last: map[string]string{},
		dedup: map[pair]dedupRecord{}, resolved: map[alertKey]bool{}, held: map[pair][]int64{},
		lastSent: map[pair]string{}, watched: map[pair]bool{}}
	for _, r := range batch {
		n := r.N
		messages += len(n.Messages)
		if n.GroupKey != "" {
			locks = append(locks, s.lockOf(lockSpaceGroup, n.GroupKey))
		}
		if n.RequireFiring {
			guarded = append(guarded, n.GroupKey)
		}
		if n.DeliveryID != "" {
			locks = append(locks, s.lockOf(lockSpaceDeliveryID, n.DeliveryID))
			ids = append(ids, n.DeliveryID)
		}
		if n.OnceKey != "" {
			locks = append(locks, s.lockOf(lockSpaceOnce, n.OnceKey))
			onceKeys = append(onceKeys, n.OnceKey)
		}
		locks = append(locks, ask.add(s, n)...)
		for _, m := range n.Messages {
			if m.DedupKey != "" && n.DedupWindow > 0 {
				if p := (pair{m.Receiver, n.GroupKey}); !seenPair[p] {
					seenPair[p] = true
					dedupR, dedupG = append(dedupR, p.a), append(dedupG, p.b)
				}
			}
			if n.Status == "firing" {
				for _, a := range m.Alerts {
					if k := alertKeyOf(a); !seenAlert[k] {
						seenAlert[k] = true
						alertFP, alertAt = append(alertFP, a.Fingerprint), append(alertAt, time.UnixMilli(k.startsMS))
					}
				}
			}
			if n.CancelHeld && n.Status == "resolved" {
				for _, num := range m.Numbers {
					if p := (pair{num, n.GroupKey}); !st.watched[p] {
						st.watched[p] = true
						locks = append(locks, s.lockOf(lockSpaceNumber, num))
						heldNum, heldGroup = append(heldNum, num), append(heldGroup, n.GroupKey)
					}
				}
			}
		}
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op

	b := &pgx.Batch{}
	queueLocks(b, locks)
	var nids, mids, eids []int64
	b.Queue(`SELECT ARRAY(SELECT nextval('notifications_id_seq') FROM generate_series(1, $1::int)),
		ARRAY(SELECT nextval('messages_id_seq') FROM generate_series(1, $2::int)),
		ARRAY(SELECT nextval('escalations_id_seq') FROM generate_series(1, $3::int))`, len(batch), messages, ask.steps).
		QueryRow(func(row pgx.Row) error { return row.Scan(&nids, &mids, &eids) })
	ask.queue(b, st, now)
	if len(ids) > 0 {
		b.Queue(`SELECT id, notification_id, expires_at FROM delivery_ids WHERE id = ANY($1) AND expires_at > $2`, ids, now).
			Query(func(rows pgx.Rows) error {
				var id string
				var rec idRecord
				_, err := pgx.ForEachRow(rows, []any{&id, &rec.notification, &rec.expires}, func() error {
					st.ids[id] = rec
					return nil
				})
				return err
			})
	}
	if len(onceKeys) > 0 {
		b.Queue(`SELECT once_key, id FROM notifications WHERE once_key = ANY($1)`, onceKeys).
			Query(func(rows pgx.Rows) error {
				var key string
				var id int64
				_, err := pgx.ForEachRow(rows, []any{&key, &id}, func() error {
					st.once[key] = id
					return nil
				})
				return err
			})
	}
	if len(guarded) > 0 {
		b.Queue(`SELECT DISTINCT ON (group_key) group_key, status FROM notifications
			WHERE group_key = ANY($1) ORDER BY group_key, id DESC`, guarded).
			Query(func(rows pgx.Rows) error {
				var g, status string
				_, err := pgx.ForEachRow(rows, []any{&g, &status}, func() error {
					st.last[g] = status
					return nil
				})
				return err
			})
	}
	if len(dedupR) > 0 {
		b.Queue(`SELECT receiver, group_key, key, at FROM dedup
			WHERE (receiver, group_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, dedupR, dedupG).
			Query(func(rows pgx.Rows) error {
				var p pair
				var rec dedupRecord
				_, err := pgx.ForEachRow(rows, []any{&p.a, &p.b, &rec.key, &rec.at}, func() error {
					st.dedup[p] = rec
					return nil
				})
				return err
			})
	}
	if len(alertFP) > 0 {
		b.Queue(`SELECT fingerprint, starts_at FROM resolved_alerts
			WHERE (fingerprint, starts_at) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[]))`, alertFP, alertAt).
			Query(func(rows pgx.Rows) error {
				var fp string
				var at time.Time
				_, err := pgx.ForEachRow(rows, []any{&fp, &at}, func() error {
					st.resolved[alertKey{fp, at.UnixMilli()}] = true
					return nil
				})
				return err
			})
	}
	if len(heldNum) > 0 {
		// The held firings of each (number, group) a resolution cancels,
		// and, where there are any, what the number was last sent of the
		// group (held and cancelled rows aside): the resolution follows a
		// firing it was sent.
		const heldFiring = `SELECT d.id, d.number, n.group_key FROM deliveries d
			JOIN messages m ON m.id = d.message_id JOIN notifications n ON n.id = m.notification_id
			WHERE d.state = 'held' AND d.number = ANY($1) AND n.status = 'firing'
			AND (d.number, n.group_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`
		b.Queue(heldFiring+` ORDER BY d.id`, heldNum, heldGroup).
			Query(func(rows pgx.Rows) error {
				var id int64
				var p pair
				_, err := pgx.ForEachRow(rows, []any{&id, &p.a, &p.b}, func() error {
					st.held[p] = append(st.held[p], id)
					return nil
				})
				return err
			})
		b.Queue(`SELECT DISTINCT ON (d.number, n.group_key) d.number, n.group_key, n.status FROM deliveries d
			JOIN messages m ON m.id = d.message_id JOIN notifications n ON n.id = m.notification_id
			WHERE d.number = ANY($1) AND d.state IN ('pending', 'sending', 'accepted', 'bundled')
			AND (d.number, n.group_key) IN (SELECT h.number, h.group_key FROM (`+heldFiring+`) h)
			ORDER BY d.number, n.group_key, n.id DESC`, heldNum, heldGroup).
			Query(func(rows pgx.Rows) error {
				var p pair
				var status string
				_, err := pgx.ForEachRow(rows, []any{&p.a, &p.b, &status}, func() error {
					st.lastSent[p] = status
					return nil
				})
				return err
			})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("lock and read the guards: %w", err)
	}
	slices.Sort(nids)
	slices.Sort(mids)
	slices.Sort(eids)

	w := &commitWrites{dedup: map[pair]dedupRecord{}, resolved: map[alertKey]outbox.AlertRef{}, ids: map[string]idRecord{}}
	w.escWrites.newSteps = map[string][]int{}
	for i, r := range batch {
		if st.record(r, nids[i], &mids, &eids, now, w) {
			due = true
		}
	}

	b = &pgx.Batch{}
	if len(w.dedup) > 0 {
		keys := sortedKeys(w.dedup, func(a, b pair) int { return cmp.Or(cmp.Compare(a.a, b.a), cmp.Compare(a.b, b.b)) })
		var recv, group, key []string
		var at []time.Time
		for _, p := range keys {
			recv, group, key, at = append(recv, p.a), append(group, p.b), append(key, w.dedup[p].key), append(at, w.dedup[p].at)
		}
		b.Queue(`INSERT INTO dedup (receiver, group_key, key, at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
			ON CONFLICT (receiver, group_key) DO UPDATE SET key = excluded.key, at = excluded.at`, recv, group, key, at)
	}
	if len(w.resolved) > 0 {
		// In one order everywhere: two commits remembering the same
		// alerts wait for each other, never in a cycle.
		keys := sortedKeys(w.resolved, func(a, b alertKey) int {
			return cmp.Or(cmp.Compare(a.fingerprint, b.fingerprint), cmp.Compare(a.startsMS, b.startsMS))
		})
		var fp []string
		var at []time.Time
		for _, k := range keys {
			fp, at = append(fp, k.fingerprint), append(at, time.UnixMilli(k.startsMS))
		}
		b.Queue(`INSERT INTO resolved_alerts (fingerprint, starts_at, seen_at) SELECT fp, at, $3 FROM unnest($1::text[], $2::timestamptz[]) AS t(fp, at)
			ON CONFLICT (fingerprint, starts_at) DO UPDATE SET seen_at = excluded.seen_at`, fp, at, now)
	}
	if len(w.nID) > 0 {
		b.Queue(`INSERT INTO notifications (id, received_at, source, group_key, status, outcome, once_key, alertname, ack_labels)
			SELECT id, $2, source, group_key, status, outcome, once_key, alertname, NULLIF(ack_labels, '')::jsonb
			FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
				AS t(id, source, group_key, status, outcome, once_key, alertname, ack_labels)`,
			w.nID, now, w.nSource, w.nGroup, w.nStatus, w.nOutcome, w.nOnce, w.nAlert, w.nAck)
	}
	// The steps of notifications recorded earlier end before this
	// commit's own are written: a resolution stops only what was
	// scheduled before it (record settled this commit's own).
	w.queueEscalationEnds(b, now)
	if len(w.mID) > 0 {
		b.Queue(`INSERT INTO messages (id, notification_id, receiver, text, segments, summary, template, reply_code)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[])`,
			w.mID, w.mNote, w.mReceiver, w.mText, w.mSegments, w.mSummary, w.mTemplate, w.mReplyCode)
	}
	if len(w.dMessage) > 0 {
		b.Queue(`INSERT INTO deliveries (message_id, number, state, queued_at, next_attempt_at, updated_at,
				unthrottled, critical, error_code, error, person, failover_of)
			SELECT message_id, number, state, $3, $3, $3, unthrottled, critical, error_code, error, person, NULLIF(failover_of, 0)
			FROM unnest($1::bigint[], $2::text[], $4::text[], $5::bool[], $6::bool[], $7::text[], $8::text[], $9::text[], $10::bigint[])
				AS t(message_id, number, state, unthrottled, critical, error_code, error, person, failover_of)`,
			w.dMessage, w.dNumber, now, w.dState, w.dUnthrottled, w.dCritical, w.dCode, w.dError, w.dPerson, w.dFailover)
	}
	w.queueTwoWay(b, now)
	w.queueSteps(b, now)
	if len(w.cancel) > 0 {
		slices.Sort(w.cancel)
		b.Queue(`UPDATE deliveries SET state = 'cancelled', error_code = $1, error = $2, updated_at = $3
			WHERE id = ANY($4) AND state = 'held'`, outbox.CodeResolvedBeforeSent, resolvedBeforeSent, now, w.cancel)
	}
	if len(w.ids) > 0 {
		keys := sortedKeys(w.ids, cmp.Compare[string])
		var nid []int64
		var exp []time.Time
		for _, k := range keys {
			nid, exp = append(nid, w.ids[k].notification), append(exp, w.ids[k].expires)
		}
		// Under the id's lock the read above is still true; the WHERE keeps
		// an unexpired record whatever happens, and a shortfall fails the
		// commit rather than answer a replay as new.
		b.Queue(`INSERT INTO delivery_ids (id, notification_id, expires_at)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[])
			ON CONFLICT (id) DO UPDATE SET notification_id = excluded.notification_id, expires_at = excluded.expires_at
			WHERE delivery_ids.expires_at <= $4`, keys, nid, exp, now).
			Exec(func(tag pgconn.CommandTag) error {
				if n := tag.RowsAffected(); n != int64(len(keys)) {
					return fmt.Errorf("recorded %d of %d delivery ids: another commit holds one", n, len(keys))
				}
				return nil
			})
	}
	if due {
		b.Queue(notify, s.channel, s.owner)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return due, nil
}

// resolvedBeforeSent is the error text of a delivery CancelHeld ended.
const resolvedBeforeSent = "resolved before sent: the group resolved while its firing was held for this number"

// record evaluates one call's guards against st, in the order the contract
// gives, adds what it writes to w (taking message ids from mids), updates
// st for the calls after it, and sets r.Res. It reports whether a delivery
// due now is written.
func (st *commitState) record(r *outbox.Pending, nid int64, mids, eids *[]int64, now time.Time, w *commitWrites) bool {
	n := r.N
	// The sender's delivery id first: a repeat writes nothing, whatever
	// the other guards would say.
	if n.DeliveryID != "" {
		if rec, ok := st.ids[n.DeliveryID]; ok && rec.expires.After(now) {
			r.Res = outbox.Enqueued{ID: rec.notification, Outcome: outbox.OutcomeDuplicate, Replayed: true}
			return false
		}
	}
	if n.OnceKey != "" {
		if prior, ok := st.once[n.OnceKey]; ok {
			r.Res = outbox.Enqueued{ID: prior, Outcome: outbox.OutcomeDuplicate}
			return false
		}
	}
	if n.Escalation.ID != 0 {
		if ok, to := st.escalationGuard(n.Escalation); !ok {
			r.Res = outbox.Enqueued{ID: to, Outcome: outbox.OutcomeDuplicate}
			return false
		}
	}
	if n.RequireFiring && st.last[n.GroupKey] != "firing" {
		n.Outcome, n.Messages = outbox.OutcomeFiltered, nil
	}
	var res outbox.Enqueued
	if len(n.Messages) > 0 {
		kept := make([]outbox.Message, 0, len(n.Messages))
		for _, m := range n.Messages {
			if reason := st.guard(n, m, now); reason != "" {
				res.Suppressed = append(res.Suppressed, outbox.Suppressed{Receiver: m.Receiver, Reason: reason})
				continue
			}
			kept = append(kept, m)
		}
		for _, m := range kept {
			if m.DedupKey != "" && n.DedupWindow > 0 {
				p := pair{m.Receiver, n.GroupKey}
				st.dedup[p] = dedupRecord{key: m.DedupKey, at: now}
				w.dedup[p] = st.dedup[p]
			}
		}
		if len(kept) == 0 {
			n.Outcome = outbox.OutcomeStale
			for _, sp := range res.Suppressed {
				if sp.Reason == outbox.ReasonDuplicate {
					n.Outcome = outbox.OutcomeDuplicate
				}
			}
		}
		n.Messages = kept
	}
	// Remembered whatever became of n: a duplicate resolution still says
	// the alerts resolved.
	for _, a := range n.Resolved {
		k := alertKeyOf(a)
		st.resolved[k] = true
		w.resolved[k] = a
	}
	// So is a resolution's end of its group's escalations.
	if n.Status == "resolved" && n.GroupKey != "" {
		res.EscalationsStopped = st.resolveEscalations(n.GroupKey, w)
	}
	if n.Escalation.ID != 0 {
		st.escalated(n.Escalation.ID, nid, w)
	} else if n.Status == "firing" {
		res.EscalationsScheduled = st.scheduleEscalations(n, nid, eids, now, w)
	}
	res.ReplyCode = st.replyCode(n, nid, w)
	n.Messages = outbox.FillReplyCode(n.Messages, res.ReplyCode)
	w.nAck = append(w.nAck, labelsJSON(n.AckLabels))
	res.ID, res.Outcome = nid, n.Outcome
	w.nID = append(w.nID, nid)
	w.nSource, w.nGroup, w.nStatus = append(w.nSource, n.Source), append(w.nGroup, n.GroupKey), append(w.nStatus, n.Status)
	w.nOutcome, w.nOnce, w.nAlert = append(w.nOutcome, n.Outcome), append(w.nOnce, n.OnceKey), append(w.nAlert, n.AlertName)
	if n.GroupKey != "" {
		st.last[n.GroupKey] = n.Status
	}
	if n.OnceKey != "" {
		st.once[n.OnceKey] = nid
	}
	if n.DeliveryID != "" {
		st.ids[n.DeliveryID] = idRecord{notification: nid, expires: n.DeliveryIDExpires}
		w.ids[n.DeliveryID] = st.ids[n.DeliveryID]
	}
	cancelling := n.CancelHeld && n.Status == "resolved"
	// keep holds the CancelHeld decision per number, so every text of n to
	// one number is judged alike.
	keep := map[string]bool{}
	due := false
	for _, m := range outbox.MergeByText(n.Messages) {
		mid := (*mids)[0]
		*mids = (*mids)[1:]
		w.mID, w.mNote, w.mReceiver = append(w.mID, mid), append(w.mNote, nid), append(w.mReceiver, m.Receiver)
		w.mText, w.mSegments, w.mSummary = append(w.mText, m.Text), append(w.mSegments, int32(m.Segments)), append(w.mSummary, m.Summary)
		rc := ""
		if m.Template != "" {
			rc = m.ReplyCode
		}
		w.mTemplate, w.mReplyCode = append(w.mTemplate, m.Template), append(w.mReplyCode, rc)
		for _, num := range m.Numbers {
			state, code, reason := outbox.StatePending, "", ""
			p := pair{num.Number, n.GroupKey}
			if cancelling {
				k, ok := keep[num.Number]
				if !ok {
					k = true
					if held := st.held[p]; len(held) > 0 {
						w.cancel = append(w.cancel, held...)
						res.Cancelled += len(held)
						delete(st.held, p)
						k = st.lastSent[p] == "firing"
					}
					keep[num.Number] = k
				}
				if !k {
					state, code, reason = outbox.StateCancelled, outbox.CodeResolvedBeforeSent, resolvedBeforeSent
					res.Cancelled++
				}
			}
			w.dMessage, w.dNumber, w.dState = append(w.dMessage, mid), append(w.dNumber, num.Number), append(w.dState, string(state))
			w.dUnthrottled, w.dCritical = append(w.dUnthrottled, num.Unthrottled), append(w.dCritical, num.Critical)
			w.dCode, w.dError, w.dPerson = append(w.dCode, code), append(w.dError, reason), append(w.dPerson, num.Person)
			w.dFailover = append(w.dFailover, m.FailoverOf)
			if state == outbox.StatePending {
				res.Recipients++
				due = true
				if st.watched[p] {
					st.lastSent[p] = n.Status
				}
			}
		}
	}
	r.Res = res
	return due
}

// guard evaluates a message's dedup and stale guards and returns why it
// is dropped, or "".
func (st *commitState) guard(n outbox.Notification, m outbox.Message, now time.Time) string {
	if m.DedupKey != "" && n.DedupWindow > 0 {
		if rec, ok := st.dedup[pair{m.Receiver, n.GroupKey}]; ok && rec.key == m.DedupKey && rec.at.After(now.Add(-n.DedupWindow)) {
			return outbox.ReasonDuplicate
		}
	}
	if n.Status == "firing" && len(m.Alerts) > 0 {
		for _, a := range m.Alerts {
			if !st.resolved[alertKeyOf(a)] {
				return ""
			}
		}
		return outbox.ReasonStale
	}
	return ""
}

// sortedKeys returns m's keys in the order of compare.
func sortedKeys[K comparable, V any](m map[K]V, compare func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compare)
	return keys
}
