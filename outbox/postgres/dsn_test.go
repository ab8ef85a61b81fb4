package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
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
