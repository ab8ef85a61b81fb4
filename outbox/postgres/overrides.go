package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// AddOverride stores an on-call override added at run time, durably, and
// returns it with its id and creation time. The id comes from an identity,
// which never hands one out twice, so ids ascend in the order added on
// every replica.
func (s *Store) AddOverride(ctx context.Context, o outbox.Override) (_ outbox.Override, err error) {
	if err := s.closed(); err != nil {
		return outbox.Override{}, err
	}
	if err := o.Check(); err != nil {
		return outbox.Override{}, err
	}
	ctx, end := s.op(ctx, "add_override")
	defer func() { end(err) }()
	// The database keeps microseconds: return what a reader gets back.
	o.CreatedAt = s.clock().Truncate(time.Microsecond)
	o.Start, o.End = o.Start.Truncate(time.Microsecond), o.End.Truncate(time.Microsecond)
	if err := s.pool.QueryRow(ctx, `INSERT INTO oncall_overrides (list, members, starts_at, ends_at, created_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, o.List, o.Members, o.Start, o.End, o.CreatedAt).Scan(&o.ID); err != nil {
		return outbox.Override{}, fmt.Errorf("add override for %q: %w", o.List, err)
	}
	return o, nil
}

// Overrides returns every stored override, in the order added.
func (s *Store) Overrides(ctx context.Context) (_ []outbox.Override, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	ctx, end := s.op(ctx, "overrides")
	defer func() { end(err) }()
	rows, err := s.pool.Query(ctx, `SELECT id, list, members, starts_at, ends_at, created_at FROM oncall_overrides ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list overrides: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outbox.Override, error) {
		var o outbox.Override
		err := row.Scan(&o.ID, &o.List, &o.Members, &o.Start, &o.End, &o.CreatedAt)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("list overrides: %w", err)
	}
	return out, nil
}

// DeleteOverride removes the override with id.
func (s *Store) DeleteOverride(ctx context.Context, id int64) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	ctx, end := s.op(ctx, "delete_override")
	defer func() { end(err) }()
	tag, err := s.pool.Exec(ctx, `DELETE FROM oncall_overrides WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete override %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete override %d: %w", id, outbox.ErrNotFound)
	}
	return nil
}
