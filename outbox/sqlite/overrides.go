package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/smsbridge/smsbridge/outbox"
)

// AddOverride stores an on-call override added at run time, durably, and
// returns it with its id and creation time.
func (s *Store) AddOverride(ctx context.Context, o outbox.Override) (outbox.Override, error) {
	if err := s.closed(); err != nil {
		return outbox.Override{}, err
	}
	if err := o.Check(); err != nil {
		return outbox.Override{}, err
	}
	members, err := json.Marshal(o.Members)
	if err != nil {
		return outbox.Override{}, fmt.Errorf("add override: %w", err)
	}
	o.CreatedAt = fromMS(ms(s.clock()))
	// AUTOINCREMENT: an id is never reused, even after the newest was
	// deleted, so "added last" keeps its meaning.
	res, err := s.wdb.ExecContext(ctx, `INSERT INTO oncall_overrides (list, members, starts_at, ends_at, created_at) VALUES (?, ?, ?, ?, ?)`,
		o.List, string(members), ms(o.Start), ms(o.End), ms(o.CreatedAt))
	if err != nil {
		return outbox.Override{}, fmt.Errorf("add override for %q: %w", o.List, err)
	}
	if o.ID, err = res.LastInsertId(); err != nil {
		return outbox.Override{}, fmt.Errorf("add override for %q: %w", o.List, err)
	}
	o.Start, o.End = fromMS(ms(o.Start)), fromMS(ms(o.End))
	return o, nil
}

// Overrides returns every stored override, in the order added.
func (s *Store) Overrides(ctx context.Context) ([]outbox.Override, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, list, members, starts_at, ends_at, created_at FROM oncall_overrides ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list overrides: %w", err)
	}
	defer rows.Close()
	var out []outbox.Override
	for rows.Next() {
		var (
			o                   outbox.Override
			members             string
			start, end, created int64
		)
		if err := rows.Scan(&o.ID, &o.List, &members, &start, &end, &created); err != nil {
			return nil, fmt.Errorf("list overrides: %w", err)
		}
		if err := json.Unmarshal([]byte(members), &o.Members); err != nil {
			return nil, fmt.Errorf("list overrides: override %d: members: %w", o.ID, err)
		}
		o.Start, o.End, o.CreatedAt = fromMS(start), fromMS(end), fromMS(created)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list overrides: %w", err)
	}
	return out, nil
}

// DeleteOverride removes the override with id.
func (s *Store) DeleteOverride(ctx context.Context, id int64) error {
	if err := s.closed(); err != nil {
		return err
	}
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM oncall_overrides WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete override %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete override %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete override %d: %w", id, outbox.ErrNotFound)
	}
	return nil
}
