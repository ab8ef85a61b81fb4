// Package replicas tests smsbridge as several replicas on one PostgreSQL
// database: the built binary, three processes, the fake provider with the
// rate limit a real account has, and the failures an HA setup exists for
// (the dispatching replica killed with -9, the database restarted). Each
// test says what must still hold.
//
// They need a PostgreSQL server (SMSBRIDGE_TEST_PG_DSN; .ci/pg-cluster.sh
// starts a throwaway one) and take about two minutes, so they sit behind
// the build tag "replicas":
//
//	eval "$(bash .ci/pg-cluster.sh start)"
//	go test -tags replicas -count=1 -v ./replicas/
//
// The database-restart test stops and starts that server with pg_ctl
// (SMSBRIDGE_TEST_PG_DIR, SMSBRIDGE_TEST_PG_BIN), so the suite's tests
// run one after the other, not in parallel.
package replicas
