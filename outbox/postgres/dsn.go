package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// CheckDSN parses dsn as Open does, without connecting, so that
// check-config refuses what the daemon would. Its error is ErrDSN, which
// repeats nothing of the DSN.
func CheckDSN(dsn string) error {
	if _, err := pgxpool.ParseConfig(dsn); err != nil {
		return ErrDSN
	}
	return nil
}
