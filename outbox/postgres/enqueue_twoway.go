package postgres

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// The group commit's part in two-way SMS and escalation: what the guards
// must read (guardAsk), and the reply codes chosen in memory under the
// numbers' locks, as the other guards are.

// guardAsk collects, over one commit's calls, what the two-way and
// escalation guards read in the commit's first round trip.
type guardAsk struct {
	// stepIDs are the steps escalated pages name; openGroups the groups
	// whose firing pages may schedule steps; endGroups the groups a
	// resolution ends; numbers those a reply code may be issued to.
	stepIDs                        []int64
	openGroups, endGroups, numbers []string
	seen                           map[string]bool
	// steps is the most steps the commit may schedule: the ids it
	// allocates.
	steps int
}

func newGuardAsk() *guardAsk { return &guardAsk{seen: map[string]bool{}} }

// once reports whether key is new to the ask.
func (a *guardAsk) once(key string) bool {
	if a.seen[key] {
		return false
	}
	a.seen[key] = true
	return true
}

// add notes what n's guards read and returns the advisory locks it needs
// beyond its group's: one per number a reply code may be issued to. The
// escalation guards read and write per group, under the group's lock.
func (a *guardAsk) add(s *Store, n outbox.Notification) []xactLock {
	var locks []xactLock
	if n.Escalation.ID != 0 {
		a.stepIDs = append(a.stepIDs, n.Escalation.ID)
	}
	if n.Status == "resolved" && n.GroupKey != "" && a.once("end\x00"+n.GroupKey) {
		a.endGroups = append(a.endGroups, n.GroupKey)
	}
	if n.Status != "firing" {
		return nil
	}
	if n.Escalation.ID == 0 {
		for _, m := range n.Messages {
			if len(m.Escalate) == 0 {
				continue
			}
			a.steps += len(m.Escalate)
			if a.once("open\x00" + n.GroupKey) {
				a.openGroups = append(a.openGroups, n.GroupKey)
			}
		}
	}
	for _, num := range outbox.ReplyNumbers(n.Messages) {
		if a.once("num\x00" + num) {
			a.numbers = append(a.numbers, num)
			locks = append(locks, s.lockOf(lockSpaceReply, num))
		}
	}
	return locks
}

// queue adds the reads to b, after the locks, filling st.
func (a *guardAsk) queue(b *pgx.Batch, st *commitState, now time.Time) {
	st.codes = map[string]map[int]bool{}
	st.steps = map[int64]*stepRow{}
	st.open = map[string]map[string]bool{}
	st.pending = map[string]map[int64]map[int64]bool{}
	if len(a.numbers) > 0 {
		b.Queue(`SELECT number, code FROM reply_codes WHERE number = ANY($1) AND issued_at > $2`,
			a.numbers, now.Add(-outbox.ReplyCodeLifetime)).
			Query(func(rows pgx.Rows) error {
				var num string
				var code int
				_, err := pgx.ForEachRow(rows, []any{&num, &code}, func() error {
					if st.codes[num] == nil {
						st.codes[num] = map[int]bool{}
					}
					st.codes[num][code] = true
					return nil
				})
				return err
			})
	}
	if len(a.stepIDs) > 0 {
		// Locked: the step's state decides whether its page is written,
		// and nobody may end it until this commit has.
		b.Queue(`SELECT id, group_key, escalation, state, lease, COALESCE(escalated_to, 0) FROM escalations
			WHERE id = ANY($1) ORDER BY id FOR UPDATE`, a.stepIDs).
			Query(func(rows pgx.Rows) error {
				var r stepRow
				var id int64
				_, err := pgx.ForEachRow(rows, []any{&id, &r.group, &r.escalation, &r.state, &r.lease, &r.to}, func() error {
					row := r
					st.steps[id] = &row
					return nil
				})
				return err
			})
	}
	if len(a.openGroups) > 0 {
		// An episode is under way while one of its steps waits, or for a
		// day after it began, until a resolution ends it.
		b.Queue(`SELECT DISTINCT group_key, receiver FROM escalations
			WHERE group_key = ANY($1) AND episode_open AND (state = 'pending' OR started_at > $2)`,
			a.openGroups, now.Add(-outbox.EscalationEpisode)).
			Query(func(rows pgx.Rows) error {
				var g, recv string
				_, err := pgx.ForEachRow(rows, []any{&g, &recv}, func() error {
					st.markOpen(g, recv)
					return nil
				})
				return err
			})
	}
	if len(a.endGroups) > 0 {
		b.Queue(`SELECT group_key, escalation, id FROM escalations WHERE group_key = ANY($1) AND episode_open AND state = 'pending'`, a.endGroups).
			Query(func(rows pgx.Rows) error {
				var g string
				var esc, id int64
				_, err := pgx.ForEachRow(rows, []any{&g, &esc, &id}, func() error {
					st.addPending(g, esc, id)
					return nil
				})
				return err
			})
	}
}

// twoWayState is what the reply codes' choice reads: the codes issued to
// each number within their lifetime, and those this commit issued.
type twoWayState struct {
	codes map[string]map[int]bool
}

// twoWayWrites are the two-way columns of one group commit.
type twoWayWrites struct {
	nAck                  []string // notifications.ack_labels, JSON or ""
	mTemplate, mReplyCode []string
	dFailover             []int64
	rcNumber              []string
	rcCode                []int32
	rcNote                []int64
}

// replyCode chooses and issues the reply code of notification nid (n as
// the guards left it) and returns the code to write into its texts: ""
// when none of its messages asks for one or it is not firing.
func (st *commitState) replyCode(n outbox.Notification, nid int64, w *commitWrites) string {
	numbers := outbox.ReplyNumbers(n.Messages)
	if n.Status != "firing" || len(numbers) == 0 {
		return ""
	}
	code := 0
	for c := 1; c <= outbox.MaxReplyCode && code == 0; c++ {
		free := true
		for _, num := range numbers {
			if st.codes[num][c] {
				free = false
				break
			}
		}
		if free {
			code = c
		}
	}
	if code == 0 {
		return outbox.ReplyCodeAll
	}
	for _, num := range numbers {
		if st.codes[num] == nil {
			st.codes[num] = map[int]bool{}
		}
		st.codes[num][code] = true
		w.rcNumber, w.rcCode, w.rcNote = append(w.rcNumber, num), append(w.rcCode, int32(code)), append(w.rcNote, nid)
	}
	return strconv.Itoa(code)
}

// queueTwoWay adds the commit's reply codes to b. A code issued again
// after its lifetime replaces the old row.
func (w *commitWrites) queueTwoWay(b *pgx.Batch, now time.Time) {
	if len(w.rcNumber) == 0 {
		return
	}
	b.Queue(`INSERT INTO reply_codes (number, code, notification_id, issued_at)
		SELECT number, code, nid, $4 FROM unnest($1::text[], $2::int[], $3::bigint[]) AS t(number, code, nid)
		ON CONFLICT (number, code) DO UPDATE SET notification_id = excluded.notification_id, issued_at = excluded.issued_at`,
		w.rcNumber, w.rcCode, w.rcNote, now)
}

// labelsJSON writes labels as the JSON object stored; "" for none.
func labelsJSON(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	raw, _ := json.Marshal(l) // a map of strings always encodes
	return string(raw)
}

// decodeLabels reads a stored JSON object; nil for none or garbage.
func decodeLabels(raw []byte) map[string]string {
	if len(raw) == 0 {
		return nil
	}
	var l map[string]string
	if json.Unmarshal(raw, &l) != nil || len(l) == 0 {
		return nil
	}
	return l
}
