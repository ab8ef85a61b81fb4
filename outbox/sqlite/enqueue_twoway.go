package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// replyCode chooses and issues the reply code of notification id (n as
// the guards left it), stores its acknowledgement labels, and returns the
// code to write into its texts: "" when none of its messages asks for one
// or it is not firing.
func (w *txInserts) replyCode(ctx context.Context, n outbox.Notification, id int64, now time.Time) (string, error) {
	if len(n.AckLabels) > 0 {
		raw, err := json.Marshal(n.AckLabels)
		if err != nil {
			return "", fmt.Errorf("encode the acknowledgement labels: %w", err)
		}
		if _, err := w.tw.ackLabels.ExecContext(ctx, string(raw), id); err != nil {
			return "", fmt.Errorf("store the acknowledgement labels: %w", err)
		}
	}
	numbers := outbox.ReplyNumbers(n.Messages)
	if n.Status != "firing" || len(numbers) == 0 {
		return "", nil
	}
	code, err := w.chooseCode(ctx, numbers, now)
	if err != nil {
		return "", err
	}
	if code == 0 {
		return outbox.ReplyCodeAll, nil
	}
	for _, num := range numbers {
		if _, err := w.tw.putCode.ExecContext(ctx, num, code, id, ms(now)); err != nil {
			return "", fmt.Errorf("issue reply code: %w", err)
		}
	}
	return strconv.Itoa(code), nil
}

// chooseCode returns the smallest code none of numbers was issued within
// the code lifetime before now, or 0 when every code up to the largest
// was.
func (w *txInserts) chooseCode(ctx context.Context, numbers []string, now time.Time) (int, error) {
	used := map[int]bool{}
	after := ms(now.Add(-outbox.ReplyCodeLifetime))
	for _, n := range numbers {
		if err := func() error {
			rows, err := w.tw.usedCodes.QueryContext(ctx, n, after)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var c int
				if err := rows.Scan(&c); err != nil {
					return err
				}
				used[c] = true
			}
			return rows.Err()
		}(); err != nil {
			return 0, fmt.Errorf("read issued reply codes: %w", err)
		}
	}
	for c := 1; c <= outbox.MaxReplyCode; c++ {
		if !used[c] {
			return c, nil
		}
	}
	return 0, nil
}

// messageTwoWay stores the template and reply code of message mid.
func (w *txInserts) messageTwoWay(ctx context.Context, mid int64, m *outbox.Merged) error {
	if m.Template == "" {
		return nil
	}
	if _, err := w.tw.template.ExecContext(ctx, m.Template, m.ReplyCode, mid); err != nil {
		return fmt.Errorf("store the message's reply code: %w", err)
	}
	return nil
}

// failover marks the deliveries of message mid as the failover of the
// delivery m names.
func (w *txInserts) failover(ctx context.Context, mid int64, m *outbox.Merged) error {
	if m.FailoverOf == 0 {
		return nil
	}
	if _, err := w.tw.failover.ExecContext(ctx, m.FailoverOf, mid); err != nil {
		return fmt.Errorf("link the failover: %w", err)
	}
	return nil
}

// placeholders returns "?, ?, ?" for n parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// twoWayInserts are the group commit's two-way statements, prepared once
// on the writer connection, beside the inserts they follow.
type twoWayInserts struct {
	usedCodes, putCode, ackLabels, template, failover *sql.Stmt
}

func (t *twoWayInserts) all() []**sql.Stmt {
	return []**sql.Stmt{&t.usedCodes, &t.putCode, &t.ackLabels, &t.template, &t.failover}
}

func prepareTwoWay(ctx context.Context, db *sql.DB) (*twoWayInserts, error) {
	var t twoWayInserts
	queries := []string{
		`SELECT code FROM reply_codes WHERE number = ? AND issued_at > ?`,
		// A code issued again after its lifetime replaces the old row.
		`INSERT INTO reply_codes (number, code, notification_id, issued_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (number, code) DO UPDATE SET notification_id = excluded.notification_id, issued_at = excluded.issued_at`,
		`UPDATE notifications SET ack_labels = ? WHERE id = ?`,
		`UPDATE messages SET template = ?, reply_code = ? WHERE id = ?`,
		`UPDATE deliveries SET failover_of = ? WHERE message_id = ?`,
	}
	for i, st := range t.all() {
		p, err := db.PrepareContext(ctx, queries[i])
		if err != nil {
			t.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*st = p
	}
	return &t, nil
}

// in returns the statements bound to tx.
func (t *twoWayInserts) in(ctx context.Context, tx *sql.Tx) *twoWayInserts {
	var out twoWayInserts
	dst, src := out.all(), t.all()
	for i := range dst {
		*dst[i] = tx.StmtContext(ctx, *src[i])
	}
	return &out
}

func (t *twoWayInserts) close() {
	for _, st := range t.all() {
		if *st != nil {
			(*st).Close()
		}
	}
}
