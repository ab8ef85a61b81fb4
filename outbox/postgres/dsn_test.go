package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestBadDSNNotShown: a DSN that does not parse is refused with an error
// that repeats none of it (pgx's own message quotes it, and a URL
// parser's cause quotes it whole).
func TestBadDSNNotShown(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"postgres://smsbridge:s3cret-pa55@db.example.com:notaport/smsbridge",
		"postgres://smsbridge:s3cret-pa55@db.example.com/smsbridge?pool_max_conns=lots",
		"host=db.example.com password=s3cret-pa55 port=notaport",
		"%%%s3cret-pa55",
	} {
		_, err := Open(context.Background(), dsn, Options{Retention: 1})
		if !errors.Is(err, ErrDSN) {
			t.Errorf("err = %v, want ErrDSN", err)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "db.example.com") {
			t.Errorf("error shows the DSN: %v", err)
		}
	}
}

func TestDSNParams(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dsn  string
		want bool
	}{
		{"postgres://u:p@h/db?pool_max_conns=20&sslmode=disable", true},
		{"postgres://u:p@h/db?sslmode=disable", false},
		{"host=h pool_max_conns=3", true},
		{"host=h user=u", false},
	} {
		if got := dsnParams(tc.dsn)["pool_max_conns"]; got != tc.want {
			t.Errorf("%q: pool_max_conns set = %v, want %v", tc.dsn, got, tc.want)
		}
	}
}

func TestRedactor(t *testing.T) {
	t.Parallel()
	cause := errors.New("server said: password s3cret-pa55 is wrong")
	err := redactor("s3cret-pa55")(cause)
	if strings.Contains(err.Error(), "s3cret") || !errors.Is(err, cause) {
		t.Errorf("redacted %q (wraps the cause: %v)", err, errors.Is(err, cause))
	}
	if redactor("")(cause) != cause || redactor("other")(cause) != cause {
		t.Error("an error without the password was changed")
	}
}

// TestProbeFailedText: a failed write probe's text, which /-/ready and the
// intake's 503 show to anyone, says what kind of failure it was without
// the database's user, name or address; its detail, for the log, keeps
// them.
func TestProbeFailedText(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nothing listens on port 1: a real connection error from pgx.
	_, refused := pgconn.Connect(ctx, "postgres://pager:s3cret-pa55@127.0.0.1:1/oncalldb?sslmode=disable&connect_timeout=5")
	if refused == nil {
		t.Fatal("connected to port 1")
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"refused", refused, "the database did not take a write probe: cannot connect to the database: connection refused"},
		{"shutting down", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"},
			"the database did not take a write probe: the database answered SQLSTATE 57P01 (the database is shutting down, starting or restarting)"},
		// Login errors name the role, the database and the client.
		{"wrong password", &pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "pager"`},
			"the database did not take a write probe: the database answered SQLSTATE 28P01 (the database refused the bridge's login)"},
		{"no hba entry", &pgconn.PgError{Code: "28000", Message: `no pg_hba.conf entry for host "127.0.0.1", user "pager", database "oncalldb"`},
			"the database did not take a write probe: the database answered SQLSTATE 28000 (the database refused the bridge's login)"},
		{"no database", fmt.Errorf("connect: %w", &pgconn.PgError{Code: "3D000", Message: `database "oncalldb" does not exist`}),
			"the database did not take a write probe: the database answered SQLSTATE 3D000 (the database does not exist)"},
		{"too many", &pgconn.PgError{Code: "53300", Message: `too many connections for role "pager"`},
			"the database did not take a write probe: the database answered SQLSTATE 53300 (too many connections)"},
		{"unknown state", &pgconn.PgError{Code: "XX000", Message: `internal error in "oncalldb"`},
			"the database did not take a write probe: the database answered SQLSTATE XX000"},
		{"timeout", fmt.Errorf("write: %w", context.DeadlineExceeded), "the database did not take a write probe: the database did not answer in time"},
		{"other", errors.New("pager@oncalldb: something else"), "the database did not take a write probe: see the bridge's log for the database's error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := probeFailed(tc.err)
			if err.Error() != tc.want {
				t.Errorf("text = %q, want %q", err.Error(), tc.want)
			}
			for _, leak := range []string{"pager", "oncalldb", "127.0.0.1", "s3cret"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("text %q shows %q", err.Error(), leak)
				}
			}
			var d interface{ Detail() string }
			if !errors.As(err, &d) || d.Detail() != tc.err.Error() {
				t.Errorf("detail lost: %v", err)
			}
			if !errors.Is(err, tc.err) {
				t.Error("the cause does not unwrap")
			}
		})
	}
	if strings.Contains(probeFailed(refused).(interface{ Detail() string }).Detail(), "s3cret") {
		t.Error("pgx put the password in its error")
	}
}
