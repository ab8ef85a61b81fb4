package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// The group commit's part in escalation: the guard of an escalated page,
// the steps a firing page schedules, and the end a resolution puts to its
// group's. The commit reads what they need under the groups' locks (and
// the escalated steps' rows locked), decides in memory in the order of
// recording, and writes in its last round trip.

// resolvedDetail is the Detail of a step a resolved notification stopped.
const resolvedDetail = "the group resolved"

// stepRow is an escalated page's step as the commit read it, then
// changed it.
type stepRow struct {
	group, state, lease string
	escalation, to      int64
}

// escState is what the escalation guards read: the steps escalated pages
// name, the (group, receiver) pairs with an episode under way, and the
// pending steps of the groups resolutions end (group → escalation →
// step ids), as the commit's calls change them.
type escState struct {
	steps   map[int64]*stepRow
	open    map[string]map[string]bool
	pending map[string]map[int64]map[int64]bool
}

func (st *escState) markOpen(group, receiver string) {
	if st.open[group] == nil {
		st.open[group] = map[string]bool{}
	}
	st.open[group][receiver] = true
}

func (st *escState) addPending(group string, esc, id int64) {
	if st.pending[group] == nil {
		st.pending[group] = map[int64]map[int64]bool{}
	}
	if st.pending[group][esc] == nil {
		st.pending[group][esc] = map[int64]bool{}
	}
	st.pending[group][esc][id] = true
}

// escWrites are the escalation writes of one group commit: steps that
// escalated (escalatedID, with the notification of their page), groups
// whose stored steps a resolution ends, and new steps, column by column.
type escWrites struct {
	escalatedID, escalatedTo []int64
	endGroups                []string
	endSeen                  map[string]bool

	eID, eEsc, eNote, eAfter                          []int64
	eGroup, eSource, eAlert, eReceiver, eStepReceiver []string
	eStep                                             []int32
	eDue                                              []time.Time
	eState, eReason, eDetail, eText, eSummary, eLabel []string
	eOpen, eCritical, eEnded                          []bool
	// newSteps are, per group, the indexes of its new steps.
	newSteps map[string][]int
}

// escalationGuard reports whether the leased step ref may send its page
// now: it is pending under ref.Lease. When not, it returns the
// notification the step escalated with (0 for none).
func (st *commitState) escalationGuard(ref outbox.EscalationRef) (bool, int64) {
	r := st.steps[ref.ID]
	if r == nil {
		return false, 0
	}
	return r.state == string(outbox.EscalationPending) && r.lease == ref.Lease, r.to
}

// escalated ends step id: its page is notification nid.
func (st *commitState) escalated(id, nid int64, w *commitWrites) {
	r := st.steps[id]
	r.state, r.to, r.lease = string(outbox.EscalationEscalated), nid, ""
	if ids := st.pending[r.group][r.escalation]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(st.pending[r.group], r.escalation)
		}
	}
	w.escalatedID, w.escalatedTo = append(w.escalatedID, id), append(w.escalatedTo, nid)
}

// scheduleEscalations schedules the steps of each of n's messages (as the
// guards left them, before their reply code is written), as notification
// nid, unless the receiver's escalation of the group is already under way
// in this episode, taking their ids from eids. It returns how many
// escalations it began.
func (st *commitState) scheduleEscalations(n outbox.Notification, nid int64, eids *[]int64, now time.Time, w *commitWrites) int {
	began := 0
	labels := labelsJSON(n.EscalationLabels)
	for _, m := range n.Messages {
		if len(m.Escalate) == 0 || st.open[n.GroupKey][m.Receiver] {
			continue // under way: each step fires once per episode
		}
		var first int64
		for k, step := range m.Escalate {
			id := (*eids)[0]
			*eids = (*eids)[1:]
			if k == 0 {
				first = id
			}
			w.newSteps[n.GroupKey] = append(w.newSteps[n.GroupKey], len(w.eID))
			w.eID, w.eEsc, w.eNote, w.eAfter = append(w.eID, id), append(w.eEsc, first), append(w.eNote, nid), append(w.eAfter, step.After.Milliseconds())
			w.eGroup, w.eSource, w.eAlert = append(w.eGroup, n.GroupKey), append(w.eSource, n.Source), append(w.eAlert, n.AlertName)
			w.eReceiver, w.eStepReceiver, w.eStep = append(w.eReceiver, m.Receiver), append(w.eStepReceiver, step.Receiver), append(w.eStep, int32(k+1))
			w.eDue, w.eState = append(w.eDue, now.Add(step.After)), append(w.eState, string(outbox.EscalationPending))
			w.eReason, w.eDetail, w.eText, w.eSummary = append(w.eReason, ""), append(w.eDetail, ""), append(w.eText, m.Text), append(w.eSummary, m.Summary)
			w.eLabel, w.eOpen, w.eCritical, w.eEnded = append(w.eLabel, labels), append(w.eOpen, true), append(w.eCritical, m.Critical), append(w.eEnded, false)
		}
		st.markOpen(n.GroupKey, m.Receiver)
		began++
	}
	return began
}

// resolveEscalations stops the pending steps of group and ends its
// episodes: the stored ones (queued once per commit, before the commit's
// own steps are written) and those this commit scheduled before. It
// returns how many escalations it stopped.
func (st *commitState) resolveEscalations(group string, w *commitWrites) int {
	stopped := len(st.pending[group])
	delete(st.pending, group)
	delete(st.open, group)
	for _, r := range st.steps {
		if r.group == group && r.state == string(outbox.EscalationPending) {
			r.state, r.lease = string(outbox.EscalationStopped), ""
		}
	}
	if w.endSeen == nil {
		w.endSeen = map[string]bool{}
	}
	if !w.endSeen[group] {
		w.endSeen[group] = true
		w.endGroups = append(w.endGroups, group)
	}
	ended := map[int64]bool{}
	for _, i := range w.newSteps[group] {
		w.eOpen[i] = false
		if w.eState[i] != string(outbox.EscalationPending) {
			continue
		}
		ended[w.eEsc[i]] = true
		w.eState[i], w.eReason[i], w.eDetail[i], w.eEnded[i] = string(outbox.EscalationStopped), outbox.StopResolved, resolvedDetail, true
	}
	return stopped + len(ended)
}

// queueEscalationEnds adds to b the end of the stored steps this commit
// settled: those whose page it writes, then the pending steps of the
// groups it resolves (and their episodes), the rows locked in id order.
// An episode's rows that began more than an episode ago and ended do not
// count any more; they are left as they are.
func (w *commitWrites) queueEscalationEnds(b *pgx.Batch, now time.Time) {
	if len(w.escalatedID) > 0 {
		b.Queue(`UPDATE escalations e SET state = 'escalated', escalated_to = t.nid, ended_at = $3, lease = '', lease_until = NULL,
			updated_at = $3 FROM unnest($1::bigint[], $2::bigint[]) AS t(sid, nid) WHERE e.id = t.sid`,
			w.escalatedID, w.escalatedTo, now)
	}
	if len(w.endGroups) > 0 {
		b.Queue(`UPDATE escalations SET episode_open = false,
				state = CASE WHEN state = 'pending' THEN 'stopped' ELSE state END,
				reason = CASE WHEN state = 'pending' THEN $2 ELSE reason END,
				detail = CASE WHEN state = 'pending' THEN $3 ELSE detail END,
				ended_at = CASE WHEN state = 'pending' THEN $4 ELSE ended_at END,
				lease = CASE WHEN state = 'pending' THEN '' ELSE lease END,
				lease_until = CASE WHEN state = 'pending' THEN NULL ELSE lease_until END,
				updated_at = $4
			WHERE id IN (SELECT id FROM escalations WHERE group_key = ANY($1) AND episode_open
				AND (state = 'pending' OR started_at > $5) ORDER BY id FOR UPDATE)`,
			w.endGroups, outbox.StopResolved, resolvedDetail, now, now.Add(-outbox.EscalationEpisode))
	}
}

// queueSteps adds the commit's new steps to b.
func (w *commitWrites) queueSteps(b *pgx.Batch, now time.Time) {
	if len(w.eID) == 0 {
		return
	}
	b.Queue(`INSERT INTO escalations (id, escalation, notification_id, after_ms, group_key, source, alertname, receiver, step_receiver,
			step, due_at, next_attempt_at, state, reason, detail, text, summary, labels, episode_open, critical, ended_at, started_at, updated_at)
		SELECT id, esc, nid, after_ms, group_key, source, alertname, receiver, step_receiver,
			step, due, due, state, reason, detail, text, summary, NULLIF(labels, '')::jsonb, open, critical,
			CASE WHEN ended THEN $20::timestamptz END, $20, $20
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::int[], $11::timestamptz[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::bool[],
			$19::bool[], $21::bool[])
			AS t(id, esc, nid, after_ms, group_key, source, alertname, receiver, step_receiver,
				step, due, state, reason, detail, text, summary, labels, open, critical, ended)`,
		w.eID, w.eEsc, w.eNote, w.eAfter, w.eGroup, w.eSource, w.eAlert, w.eReceiver, w.eStepReceiver,
		w.eStep, w.eDue, w.eState, w.eReason, w.eDetail, w.eText, w.eSummary, w.eLabel, w.eOpen,
		w.eCritical, now, w.eEnded)
}
