package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// TestMigrateV1 opens a real version-1 database, made by the release
// before the state "delivered" was renamed, and checks that it was
// upgraded in place: rows and ids kept, delivered now accepted, the
// pending row leasable, every index there, the new columns and table
// usable.
func TestMigrateV1(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v1, err := os.ReadFile(filepath.Join("testdata", "v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), v1, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, Options{Retention: week})
	ctx := context.Background()

	if v := count(t, s, "PRAGMA user_version"); v != schemaVersion {
		t.Errorf("user_version = %d, want %d", v, schemaVersion)
	}
	type row struct {
		id                       int64
		state, apiID, code, lead string
		attempts                 int
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, state, COALESCE(api_message_id, ''), error_code, lease || '|' || lease_owner || '|' || account, attempts FROM deliveries ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.state, &r.apiID, &r.code, &r.lead, &r.attempts); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	rows.Close()
	want := []row{
		{1, "accepted", "api-1", "", "||", 1},
		{2, "failed", "", "E101", "||", 1},
		{3, "pending", "", "", "||", 0},
	}
	if !slices.Equal(got, want) {
		t.Errorf("deliveries after migration:\n got %+v\nwant %+v", got, want)
	}
	if n := count(t, s, "SELECT count(*) FROM notifications WHERE id IN (1, 2) AND outcome = 'accepted'"); n != 2 {
		t.Errorf("%d of the 2 notifications kept with outcome accepted", n)
	}
	if n := count(t, s, "SELECT count(*) FROM messages WHERE id IN (1, 2)"); n != 2 {
		t.Errorf("%d of the 2 messages kept", n)
	}

	// Every index of the rebuilt table is there again, and the old
	// tables and indexes are all there too.
	var names []string
	rs, err := s.rdb.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var n string
		if err := rs.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rs.Close()
	wantNames := []string{
		"acks", "acks_at", "acks_group", "acks_pending",
		"budget", "claims", "claims_expiry", "dedup",
		"deliveries", "deliveries_admitted", "deliveries_age", "deliveries_api_id", "deliveries_digest", "deliveries_due", "deliveries_failover",
		"deliveries_held", "deliveries_leased", "deliveries_outstanding", "deliveries_updated",
		"delivery_ids", "delivery_ids_expiry",
		"escalations", "escalations_due", "escalations_escalation", "escalations_open", "escalations_started",
		"messages", "messages_notification",
		"notifications", "notifications_dedup", "notifications_group", "notifications_once", "notifications_received",
		"oncall_overrides", "oncall_overrides_end", "opt_outs",
		"rate_events", "rate_events_at", "rate_events_key", "reply_codes", "reply_codes_issued", "reply_codes_notification",
		"resolved_alerts", "resolved_alerts_seen", "state",
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("schema objects:\n got %v\nwant %v", names, wantNames)
	}
	if n := count(t, s, "SELECT count(*) FROM pragma_foreign_key_check"); n != 0 {
		t.Errorf("%d foreign key violations after the rebuild", n)
	}
	if _, err := s.wdb.ExecContext(ctx, "UPDATE deliveries SET state = 'delivered' WHERE id = 1"); err == nil || !strings.Contains(err.Error(), "CHECK") {
		t.Errorf("the old state is still allowed: %v", err)
	}
	// Version 5 widened the CHECK in place: the new states are allowed,
	// nothing else is, and the table is intact.
	for _, st := range []string{"held", "bundled", "cancelled"} {
		if _, err := s.wdb.ExecContext(ctx, "UPDATE deliveries SET state = ? WHERE id = 2", st); err != nil {
			t.Errorf("state %s refused after the migration: %v", st, err)
		}
	}
	if _, err := s.wdb.ExecContext(ctx, "UPDATE deliveries SET state = 'failed' WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity check after the migration: %q %v", integrity, err)
	}

	// Through the contract: the status page sees accepted, the pending
	// row is leased and completed, the new columns and table work.
	if r := records(t, s, outbox.Filter{State: outbox.StateAccepted}); len(r) != 1 || r[0].ID != 1 || r[0].APIMessageID != "api-1" {
		t.Errorf("accepted records %+v", r)
	}
	if r, err := s.DeliveryByProviderID(ctx, "api-1"); err != nil || r.ID != 1 || r.Number != "+27830000001" {
		t.Errorf("by provider id: %+v %v", r, err)
	}
	bs := lease(t, s, time.Now(), 10, 10)
	if len(bs) != 1 || len(bs[0].Deliveries) != 1 {
		t.Fatalf("leased %+v, want the one pending row", bs)
	}
	d := bs[0].Deliveries[0]
	if d.ID != 3 || d.NotificationID != 2 || d.Number != "+27830000003" || bs[0].Text != "ci: FIRING:1 BuildFailed" {
		t.Errorf("leased %+v of %q", d, bs[0].Text)
	}
	if err := s.Complete(ctx, []outbox.Outcome{outbox.Accepted(d, "fallback", "api-3")}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.DeliveryByProviderID(ctx, "api-3"); err != nil || r.ID != 3 || r.Account != "fallback" || r.LeaseOwner != s.Owner() {
		t.Errorf("the migrated row after sending: %+v %v", r, err)
	}
	if err := s.PutState(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// New ids continue after the old ones.
	if e := enqueue(t, s, note("new")); e.ID != 3 {
		t.Errorf("new notification id %d, want 3", e.ID)
	}
	// Version 6's delivery ids: recorded, and a replay writes nothing.
	if e := enqueue(t, s, withID(note("with id"), "ci:v1")); e.ID != 4 || e.Outcome != outbox.OutcomeAccepted {
		t.Errorf("with a delivery id: %+v", e)
	}
	if e := enqueue(t, s, withID(note("with id"), "ci:v1")); e.ID != 4 || !e.Replayed {
		t.Errorf("replay after the migration: %+v, want replayed of 4", e)
	}

	// Opening the upgraded database again changes nothing.
	s.Close()
	s = mustOpen(t, dir, Options{Retention: week})
	if v := count(t, s, "PRAGMA user_version"); v != schemaVersion {
		t.Errorf("user_version after reopening = %d", v)
	}
	if n := count(t, s, "SELECT count(*) FROM deliveries"); n != 7 {
		t.Errorf("%d deliveries after reopening, want 7", n)
	}
	if e := enqueue(t, s, withID(note("with id"), "ci:v1")); e.ID != 4 || !e.Replayed {
		t.Errorf("replay after reopening: %+v, want replayed of 4", e)
	}
}

// TestMigrateV1Leased upgrades a version-1 database with a row still in
// flight (an integer lease, no owner): Open returns it to the queue like
// any lease whose holder is gone, and it is leased again under a token.
func TestMigrateV1Leased(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		"PRAGMA user_version = 1",
		"INSERT INTO notifications (id, received_at, source) VALUES (7, 1000, 'am')",
		"INSERT INTO messages (id, notification_id, receiver, text, segments) VALUES (8, 7, 'ops', 'in flight', 1)",
		"INSERT INTO deliveries (id, message_id, number, state, queued_at, next_attempt_at, lease, lease_until, updated_at) VALUES (9, 8, '+1', 'sending', 1000, 1000, 42, 99999999999999, 1000)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s := mustOpen(t, dir, Options{Retention: week, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "deliveries=1") || !strings.Contains(logs.String(), "owners=unknown") {
		t.Errorf("the version-1 lease was not recovered at open: %s", logs.String())
	}
	bs := lease(t, s, time.Now(), 1, 1)
	if len(bs) != 1 || bs[0].Deliveries[0].ID != 9 || bs[0].Deliveries[0].Lease == "42" {
		t.Errorf("leased %+v, want row 9 under a new token", bs)
	}
}

// TestMigrateV4 upgrades a database made by the release with on-call
// schedules and alert names (version 4): the noise step's columns are added
// to the same deliveries table that already has person, the CHECK is
// widened with those columns in place, the delivery ids' table (version 6)
// is made after it, and what versions 3 and 4 stored (a person, a once
// key, an alert name) is kept and still works.
func TestMigrateV4(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	qs := append([]string{}, migrations[:4]...)
	qs = append(qs,
		"PRAGMA user_version = 4",
		"INSERT INTO notifications (id, received_at, source, group_key, status, outcome, once_key, alertname) VALUES (7, 1000, 'alertmanager', 'g', 'firing', 'accepted', 'handoff:db:1', 'DiskFull')",
		"INSERT INTO messages (id, notification_id, receiver, text, segments) VALUES (8, 7, 'ops', 'disk full', 1)",
		"INSERT INTO deliveries (id, message_id, number, state, queued_at, next_attempt_at, updated_at, person) VALUES (9, 8, '+27830000001', 'pending', 1000, 1000, 1000, 'alice')",
		"INSERT INTO oncall_overrides (list, members, starts_at, ends_at, created_at) VALUES ('db', '[\"bob\"]', 1000, 99999999999999, 1000)",
	)
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, Options{Retention: week})
	ctx := context.Background()
	if v := count(t, s, "PRAGMA user_version"); v != schemaVersion {
		t.Errorf("user_version = %d, want %d", v, schemaVersion)
	}
	var stored string
	if err := s.rdb.QueryRowContext(ctx, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'deliveries'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"'held'", "'bundled'", "'cancelled'", "person", "unthrottled", "bundled_into"} {
		if !strings.Contains(stored, want) {
			t.Errorf("the deliveries table lacks %s after the migration:\n%s", want, stored)
		}
	}
	for _, st := range []string{"held", "bundled", "cancelled", "pending"} {
		if _, err := s.wdb.ExecContext(ctx, "UPDATE deliveries SET state = ? WHERE id = 9", st); err != nil {
			t.Errorf("state %s refused after the migration: %v", st, err)
		}
	}
	if _, err := s.wdb.ExecContext(ctx, "UPDATE deliveries SET state = 'delivered' WHERE id = 9"); err == nil || !strings.Contains(err.Error(), "CHECK") {
		t.Errorf("a state outside the list is allowed: %v", err)
	}
	var integrity string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity check after the migration: %q %v", integrity, err)
	}

	// What versions 3 and 4 stored, through the contract.
	bs := lease(t, s, time.Now(), 10, 10)
	if len(bs) != 1 || len(bs[0].Deliveries) != 1 || bs[0].Deliveries[0].ID != 9 || bs[0].Deliveries[0].Person != "alice" {
		t.Fatalf("leased %+v, want row 9 to alice", bs)
	}
	if err := s.Complete(ctx, []outbox.Outcome{outbox.Accepted(bs[0].Deliveries[0], "primary", "api-9")}); err != nil {
		t.Fatal(err)
	}
	ns, err := s.Notifications(ctx, outbox.NotificationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].AlertName != "DiskFull" || len(ns[0].Deliveries) != 1 || ns[0].Deliveries[0].Person != "alice" {
		t.Errorf("notifications after the migration: %+v", ns)
	}
	if ovs, err := s.Overrides(ctx); err != nil || len(ovs) != 1 || ovs[0].List != "db" {
		t.Errorf("overrides after the migration: %+v %v", ovs, err)
	}
	once := note("again")
	once.OnceKey = "handoff:db:1"
	if e := enqueue(t, s, once); e.ID != 7 || e.Outcome != outbox.OutcomeDuplicate {
		t.Errorf("a once key stored by version 4 enqueued again: %+v", e)
	}
	// The new columns work on the old row's table: a held row to a person.
	held := note("held")
	held.Messages[0].Numbers = []string{"+27830000009"}
	held.Messages[0].People = []string{"bob"}
	e := enqueue(t, s, held)
	if _, err := s.wdb.ExecContext(ctx, "UPDATE deliveries SET state = 'held', unthrottled = 1 WHERE message_id IN (SELECT id FROM messages WHERE notification_id = ?)", e.ID); err != nil {
		t.Fatal(err)
	}
	if r := records(t, s, outbox.Filter{State: outbox.StateHeld}); len(r) != 1 || r[0].Person != "bob" {
		t.Errorf("held records %+v", r)
	}
	// Version 6: a delivery id is checked before the once key a version-4
	// row holds, and recorded with what the guards decided.
	replayed := withID(note("again"), "ci:v4")
	replayed.OnceKey = "handoff:db:1"
	if e := enqueue(t, s, replayed); e.ID != 7 || e.Outcome != outbox.OutcomeDuplicate || e.Replayed {
		t.Errorf("a new delivery id with an old once key: %+v, want the once key's duplicate of 7", e)
	}
	first := enqueue(t, s, withID(note("id"), "ci:v4:2"))
	if e := enqueue(t, s, withID(note("id"), "ci:v4:2")); e.ID != first.ID || !e.Replayed {
		t.Errorf("replay after the migration: %+v, want replayed of %d", e, first.ID)
	}
}

// TestMigrateV5 upgrades a database made by the release with the noise
// controls (version 5), whose last step edited the deliveries table's
// CHECK through writable_schema: the two-way step then adds receipt
// columns to that very table, and a row stored before gets a receipt and
// keeps every state. (A fresh database runs both steps in one
// transaction, which every other test does.)
func TestMigrateV5(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range migrations[:5] {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
	}
	qs := []string{
		"PRAGMA user_version = 5",
		"INSERT INTO notifications (id, received_at, source, group_key, status, outcome, alertname) VALUES (7, 1000, 'alertmanager', 'g', 'firing', 'accepted', 'DiskFull')",
		"INSERT INTO messages (id, notification_id, receiver, text, segments) VALUES (8, 7, 'ops', 'disk full', 1)",
		"INSERT INTO deliveries (id, message_id, number, state, queued_at, next_attempt_at, updated_at, account, api_message_id) VALUES (9, 8, '+27830000001', 'accepted', 1000, 1000, ?, 'primary', 'api-9')",
	}
	now := time.Now()
	for _, q := range qs {
		args := []any{}
		if strings.Contains(q, "?") {
			args = append(args, now.UnixMilli())
		}
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, Options{Retention: week})
	ctx := context.Background()
	if v := count(t, s, "PRAGMA user_version"); v != schemaVersion {
		t.Errorf("user_version = %d, want %d", v, schemaVersion)
	}
	var integrity string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity check after the migration: %q %v", integrity, err)
	}
	m, err := s.RecordReceipt(ctx, now, outbox.Receipt{Number: "+27830000001", Status: outbox.ReceiptDelivered, Word: "Delivered", Window: time.Hour})
	if err != nil {
		t.Fatalf("a receipt for the row stored by version 5: %v", err)
	}
	if m.Delivery.ID != 9 || m.Delivery.State != outbox.StateAccepted || m.Delivery.Receipt != outbox.ReceiptDelivered || m.Template != "disk full" {
		t.Errorf("receipt recorded as %+v", m)
	}
	for _, st := range []string{"held", "failed", "pending"} {
		if _, err := s.wdb.ExecContext(ctx, "UPDATE deliveries SET state = ? WHERE id = 9", st); err != nil {
			t.Errorf("state %s refused after the migration: %v", st, err)
		}
	}
	e := enqueue(t, s, note("after"))
	if rs := records(t, s, outbox.Filter{NotificationID: e.ID}); len(rs) != 2 || rs[0].Receipt != "" {
		t.Errorf("records enqueued after the migration: %+v", rs)
	}
}

// TestMigrateV7 upgrades a database version 7 made (two-way SMS, before
// escalation) with a firing group in it: the escalations table appears,
// and a page of the group schedules its steps as a first episode.
func TestMigrateV7(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for i, q := range migrations[:7] {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		// As migrate does: version 5 edits the stored schema, and the
		// steps after it must read it anew.
		var cookie int
		if err := db.QueryRow("PRAGMA schema_version").Scan(&cookie); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(fmt.Sprintf("PRAGMA schema_version = %d", cookie+1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"PRAGMA user_version = 7",
		"INSERT INTO notifications (id, received_at, source, group_key, status, outcome, alertname) VALUES (7, 1000, 'alertmanager', 'g', 'firing', 'accepted', 'DiskFull')",
		"INSERT INTO messages (id, notification_id, receiver, text, segments) VALUES (8, 7, 'ops', 'disk full', 1)",
		"INSERT INTO deliveries (id, message_id, number, state, queued_at, next_attempt_at, updated_at) VALUES (9, 8, '+27830000001', 'accepted', 1000, 1000, 1000)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, Options{Retention: week})
	if v := count(t, s, "PRAGMA user_version"); v != schemaVersion {
		t.Errorf("user_version = %d, want %d", v, schemaVersion)
	}
	n := outbox.Notification{Source: "alertmanager", GroupKey: "g", Status: "firing",
		Messages: []outbox.Message{{Receiver: "ops", Text: "disk full", Segments: 1, Numbers: []string{"+27830000001"},
			Escalate: []outbox.EscalationPlan{{After: time.Minute, Receiver: "db2"}}}}}
	if e := enqueue(t, s, n); e.EscalationsScheduled != 1 {
		t.Errorf("a page after the migration began %d escalations, want 1", e.EscalationsScheduled)
	}
	steps, err := s.EscalationSteps(context.Background(), outbox.EscalationFilter{Open: true})
	if err != nil || len(steps) != 1 || steps[0].StepReceiver != "db2" || steps[0].State != outbox.EscalationPending {
		t.Errorf("steps after the migration: %+v %v", steps, err)
	}
}
