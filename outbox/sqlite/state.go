package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// GetState returns the value last put under key; ok is false for a key
// never put.
func (s *Store) GetState(ctx context.Context, key string) (value []byte, ok bool, err error) {
	if err := s.closed(); err != nil {
		return nil, false, err
	}
	if key == "" {
		return nil, false, errors.New("get state: empty key")
	}
	err = s.rdb.QueryRowContext(ctx, `SELECT value FROM state WHERE key = ?`, key).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("get state %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, true, nil
}

// PutState stores value under key, replacing what was there, durably: it
// commits (and syncs) before it returns.
func (s *Store) PutState(ctx context.Context, key string, value []byte) (err error) {
	defer s.noteFullp(&err)
	if err := s.closed(); err != nil {
		return err
	}
	if key == "" {
		return errors.New("put state: empty key")
	}
	if value == nil {
		value = []byte{}
	}
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, ms(s.clock())); err != nil {
		return fmt.Errorf("put state %q: %w", key, err)
	}
	return nil
}
