package sqlite

import (
	"context"
	"strings"
	"testing"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/outboxtest"
)

// queryPlan returns SQLite's plan for q, one line per step.
func queryPlan(t *testing.T, s *Store, q string) string {
	t.Helper()
	args := make([]any, strings.Count(q, "?"))
	rows, err := s.rdb.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestQueryPlans pins the index each query that looks deliveries up by
// number, or dedup rows by age, uses: migration 9 dropped the indexes
// deliveries_number and dedup_at, which every intake insert wrote, and
// these queries must not fall back to scanning a whole table.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), Options{Retention: week})
	for _, c := range []struct {
		name, query string
		// want are substrings of the plan, in any order.
		want []string
	}{
		{"last sent to a number of a group", `SELECT n.status FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN notifications n ON n.id = m.notification_id
			WHERE d.number = ? AND n.group_key = ? AND d.state IN ('pending', 'sending', 'accepted', 'bundled')
			ORDER BY n.id DESC LIMIT 1`, []string{"notifications_group", "sqlite_autoindex_deliveries_1"}},
		{"held firing of a group", `SELECT d.id FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN notifications n ON n.id = m.notification_id
			WHERE d.state = 'held' AND d.number = ? AND n.group_key = ? AND n.status = 'firing' ORDER BY d.id`, []string{"deliveries_held"}},
		{"receipt", `SELECT id FROM deliveries
			WHERE number = ? AND state IN ('accepted', 'sending') AND receipt = '' AND updated_at >= ?
			ORDER BY updated_at DESC, id DESC LIMIT 1`, []string{"deliveries_outstanding"}},
		{"held or digest waiting", `SELECT EXISTS (SELECT 1 FROM deliveries WHERE number = ? AND state = 'held')
			OR EXISTS (SELECT 1 FROM deliveries WHERE number = ? AND digest = 1 AND state IN ('pending', 'sending') AND id <> ?)`,
			[]string{"deliveries_held", "deliveries_digest"}},
		{"throttle window", `SELECT admitted_at FROM deliveries
			WHERE number = ? AND admitted_at > ? AND state IN ('sending', 'accepted')
			ORDER BY admitted_at DESC LIMIT ?`, []string{"deliveries_admitted"}},
		{"reply target's person", replyTargetQuery + ` WHERE rc.number = ? AND rc.code = ? AND rc.issued_at > ?`,
			[]string{"sqlite_autoindex_deliveries_1", "messages_notification"}},
		{"opt-out of pending", optOutPending, []string{"SCAN deliveries USING INDEX deliveries_age"}},
		{"opt-out of held", optOutHeld, []string{"deliveries_held"}},
		{"dedup prune", `DELETE FROM dedup WHERE at < ?`, []string{"SCAN dedup"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan := queryPlan(t, s, c.query)
			t.Logf("%s", plan)
			for _, line := range strings.Split(plan, "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "SCAN" && f[1] != "dedup" {
					t.Errorf("plan scans the table %s:\n%s", f[1], plan)
				}
			}
			for _, w := range c.want {
				if !strings.Contains(plan, w) {
					t.Errorf("plan does not use %s:\n%s", w, plan)
				}
			}
		})
	}
}

// TestOptOutFailsPendingAndHeld: an opt-out fails the number's pending
// and held deliveries (one statement each since migration 9) and nothing
// of another number or state.
func TestOptOutFailsPendingAndHeld(t *testing.T) {
	t.Parallel()
	clk := outboxtest.NewClock(epoch())
	s := mustOpen(t, t.TempDir(), Options{Retention: week, Clock: clk.Now})
	ctx := context.Background()
	enqueue(t, s, note("pending"))
	held := enqueue(t, s, note("held"))
	// Held rows come from the throttles; set one directly.
	if _, err := s.wdb.ExecContext(ctx, `UPDATE deliveries SET state = 'held' WHERE message_id IN
		(SELECT id FROM messages WHERE notification_id = ?)`, held.ID); err != nil {
		t.Fatal(err)
	}
	changed, failed, err := s.SetOptOut(ctx, "+27830000001", true, clk.Now())
	if err != nil || !changed || failed != 2 {
		t.Fatalf("opt out: changed %t, failed %d, %v; want the pending and the held row failed", changed, failed, err)
	}
	for _, c := range []struct {
		number, state string
		want          int
	}{
		{"+27830000001", "failed", 2},
		{"+27830000002", "pending", 1},
		{"+27830000002", "held", 1},
	} {
		if n := count(t, s, "SELECT count(*) FROM deliveries WHERE number = ? AND state = ?", c.number, c.state); n != c.want {
			t.Errorf("%s %s: %d rows, want %d", c.number, c.state, n, c.want)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM deliveries WHERE state = 'failed' AND error_code = ?", outbox.CodeOptedOut); n != 2 {
		t.Errorf("%d rows failed as opted out, want 2", n)
	}
}
