package sqlite

import (
	"context"
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
		if _, err := w.tx.ExecContext(ctx, `UPDATE notifications SET ack_labels = ? WHERE id = ?`, string(raw), id); err != nil {
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
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO reply_codes (number, code, notification_id, issued_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (number, code) DO UPDATE SET notification_id = excluded.notification_id, issued_at = excluded.issued_at`,
			num, code, id, ms(now)); err != nil {
			return "", fmt.Errorf("issue reply code: %w", err)
		}
	}
	return strconv.Itoa(code), nil
}

// chooseCode returns the smallest code none of numbers was issued within
// the code lifetime before now, or 0 when every code up to the largest
// was.
func (w *txInserts) chooseCode(ctx context.Context, numbers []string, now time.Time) (int, error) {
	args := []any{ms(now.Add(-outbox.ReplyCodeLifetime))}
	for _, n := range numbers {
		args = append(args, n)
	}
	rows, err := w.tx.QueryContext(ctx, `SELECT DISTINCT code FROM reply_codes WHERE issued_at > ? AND number IN (`+
		placeholders(len(numbers))+`)`, args...)
	if err != nil {
		return 0, fmt.Errorf("read issued reply codes: %w", err)
	}
	defer rows.Close()
	used := map[int]bool{}
	for rows.Next() {
		var c int
		if err := rows.Scan(&c); err != nil {
			return 0, fmt.Errorf("read issued reply codes: %w", err)
		}
		used[c] = true
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read issued reply codes: %w", err)
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
	if _, err := w.tx.ExecContext(ctx, `UPDATE messages SET template = ?, reply_code = ? WHERE id = ?`, m.Template, m.ReplyCode, mid); err != nil {
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
	if _, err := w.tx.ExecContext(ctx, `UPDATE deliveries SET failover_of = ? WHERE message_id = ?`, m.FailoverOf, mid); err != nil {
		return fmt.Errorf("link the failover: %w", err)
	}
	return nil
}

// placeholders returns "?, ?, ?" for n parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
