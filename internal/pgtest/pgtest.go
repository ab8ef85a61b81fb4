// Package pgtest gives tests a PostgreSQL server: the one named by the
// environment variable SMSBRIDGE_TEST_PG_DSN (a postgres:// URL), which
// .ci/run sets after starting a throwaway cluster with .ci/pg-cluster.sh.
// Tests that need it are built with the tag "postgres" (or "replicas"),
// and fail, not skip, when the variable is missing: a suite that quietly
// did not run would read as green.
package pgtest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN is the environment variable that names the test server.
const EnvDSN = "SMSBRIDGE_TEST_PG_DSN"

// DSN returns the test server's DSN, failing t when none is set.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		t.Fatalf("%s is not set: these tests need a PostgreSQL server. Start one with `eval \"$(bash .ci/pg-cluster.sh start)\"` (as CI does) and run them again", EnvDSN)
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		t.Fatalf("%s must be a postgres:// URL", EnvDSN)
	}
	return dsn
}

// Name returns a fresh lower-case identifier starting with prefix.
func Name(prefix string) string {
	return prefix + strings.ToLower(rand.Text()[:12])
}

// Schema returns a fresh schema name on the test server; t's cleanup drops
// the schema and everything in it. The store creates it.
func Schema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	name := Name("t_")
	t.Cleanup(func() { exec(t, dsn, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`) })
	return name
}

// Database creates a fresh database on the test server and returns the DSN
// that connects to it; t's cleanup drops it, ending its sessions.
func Database(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	name := Name("smsbridge_")
	exec(t, dsn, `CREATE DATABASE `+name)
	t.Cleanup(func() { exec(t, dsn, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvDSN, err)
	}
	u.Path = "/" + name
	return u.String()
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("connect to the test server: %v", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}
