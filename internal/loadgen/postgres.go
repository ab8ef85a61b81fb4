package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgServerVersion is the server's version as the last freshDatabase saw
// it, for the report.
var pgServerVersion = "unknown version"

// checkPGDSN refuses a DSN that is not a postgres:// URL to a server on
// this machine: the tool loads only what runs here.
func checkPGDSN(dsn string) error {
	if dsn == "" {
		return errors.New("-store=postgres needs -pg-dsn or SMSBRIDGE_TEST_PG_DSN (eval \"$(bash .ci/pg-cluster.sh start)\" starts a throwaway server)")
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("-pg-dsn must be a postgres:// URL (its value is not shown)")
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-pg-dsn: host %q is not on this machine; the tool only loads a server at 127.0.0.1 or localhost", host)
	}
	return nil
}

// freshDatabase creates the database name on the server dsn names and
// returns a DSN for it and a function that drops it.
func freshDatabase(ctx context.Context, dsn, name string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect to the PostgreSQL server: %w", err)
	}
	defer conn.Close(context.Background())
	_ = conn.QueryRow(ctx, `SELECT 'PostgreSQL ' || current_setting('server_version')`).Scan(&pgServerVersion)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, _ := url.Parse(dsn) // checkPGDSN parsed it
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			_, _ = c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
			c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}
