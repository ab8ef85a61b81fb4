#!/usr/bin/env bash
# The status page in a real browser: Debian's headless Chromium loads it from a
# bridge that holds accepted, failed and pending deliveries, served under a
# route prefix (--web.external-url .../sms/), and from a second bridge in a dry
# run. The DOM is checked for the view grouped by notification (alert names,
# one chip per number, next attempts), the held provider's card, the 24-hour
# counts, the self-refresh, the routing tree, the dry-run banner and the noise
# controls (a throttled number's held, bundled and cancelled messages, its
# digest, the throttle section), and in the dry run the two-way loop
# (receipts on the chips, an acknowledgement by reply, the STOP banner) and
# the page's escalation, open and then stopped by the acknowledgement;
# every link must stay under the prefix. Screenshots are kept as CI artifacts:
# $BUILD_DIR/status-page.png and, with the DOM dumps, $BUILD_DIR/browser-test/.
#
# The bridge sends to status/internal/fakeapi: the SMS provider's fake, which
# rejects one number (failed rows) and can lose its credits (a 405 holds the
# queue: pending rows). Everything started here is stopped on exit; every wait
# is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
BUILD_DIR="${BUILD_DIR:-$PWD/build}"
mkdir -p "$BUILD_DIR"
BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"
OUT="$BUILD_DIR/browser-test"
rm -rf "$OUT"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    # Each was started as the leader of its own process group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "browser test FAILED: $*" >&2
  echo "--- bridge log (tail) ---" >&2
  tail -n 40 "$OUT/bridge.log" >&2 2>/dev/null || true
  echo "--- fake api log (tail) ---" >&2
  tail -n 20 "$OUT/fakeapi.log" >&2 2>/dev/null || true
  exit 1
}

# wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 limit=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

if ! command -v chromium >/dev/null || ! command -v curl >/dev/null; then
  echo "installing chromium from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium curl >/dev/null
fi
chromium --version 2>/dev/null || true

echo "building smsbridge and the fake SMS API"
go build -o "$WORK/smsbridge" .
go build -o "$WORK/fakeapi" ./status/internal/fakeapi

# Secrets of every kind, inline: none may show on the page or in the API.
API_KEY="browser-api-key-S3CRET-4b1d"
AM_PASS="browser-am-pass-S3CRET-90aa"
CI_TOKEN="browser-ci-token-S3CRET-7c3e"
HMAC_KEY="browser-hmac-key-S3CRET-e55f"
REJECTED="+27830000099"

setsid "$WORK/fakeapi" -listen 127.0.0.1:0 -addr-file "$WORK/fake.addr" -key "$API_KEY" -reject "$REJECTED" \
  >"$OUT/fakeapi.log" 2>&1 &
PIDS+=($!)
wait_for "the fake SMS API" 20 test -s "$WORK/fake.addr"
FAKE="http://$(cat "$WORK/fake.addr")"

cat >"$WORK/smsbridge.yml" <<EOF
sms:
  url: $FAKE/sms/messages
  api_key: "$API_KEY"
  timeout: 2s
  rate_limit: 50
delivery:
  min_backoff: 100ms
  max_backoff: 1s
  # Long, so the held queue is still held while the browser looks.
  hold_retry: 10m
# Tight, so one number shows held, bundled and cancelled messages within
# seconds: one message per 5s, three per hour.
throttle:
  per_number: [{count: 1, per: 5s}, {count: 3, per: 1h}]
alertmanager:
  auth: {type: basic, username: am, password: "$AM_PASS"}
webhooks:
  - name: ci
    preset: plain
    auth: {type: token, header: X-CI-Token, secret: "$CI_TOKEN"}
  - name: github
    preset: github
    auth: {type: hmac-sha256, secret: "$HMAC_KEY"}
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
    - matchers: ['team="vendor"']
      receiver: vendor
    - matchers: ['team="noisy"']
      receiver: noisy
receivers:
  - name: ops
    numbers: ["+27830000001", "+27830000002"]
  - name: db
    numbers: ["+27830000003"]
    oncall: [dbas]
  - name: vendor
    numbers: ["$REJECTED"]
  - name: noisy
    numbers: ["+27830000005"]
oncall:
  - name: dbas
    numbers: ["+27830000004"]
EOF

PORT="$("$WORK/fakeapi" -free-port)"
# Everything under /sms, as behind a path-prefix proxy.
ROOT="http://127.0.0.1:$PORT"
BRIDGE="$ROOT/sms"
# --web.enable-admin-api: send-test below, and the page's retry button.
setsid "$WORK/smsbridge" --config.file="$WORK/smsbridge.yml" --storage.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PORT" --web.external-url="$BRIDGE/" --web.enable-admin-api --log.level=debug >"$OUT/bridge.log" 2>&1 &
PIDS+=($!)
wait_for "the bridge to be ready" 30 curl -fsS "$BRIDGE/-/ready"
curl -fsS -o /dev/null -I "$BRIDGE/-/ready" || fail "HEAD /-/ready"

count() { # STATUS: deliveries with that status
  curl -fsS "$BRIDGE/api/v1/deliveries?status=$1" | grep -o "\"status\":\"$1\"" | wc -l
}
at_least() { # STATUS N
  (($(count "$1") >= $2))
}
alert() { # ALERTNAME TEAM SUMMARY
  curl -fsS -u "am:$AM_PASS" -H 'Content-Type: application/json' "$BRIDGE/api/v1/alertmanager" -d @- >/dev/null <<EOF
{"version":"4","status":"firing","receiver":"sms","groupKey":"{}:{alertname=\\"$1\\"}","commonLabels":{"alertname":"$1","team":"$2"},
 "alerts":[{"status":"firing","labels":{"alertname":"$1","team":"$2","severity":"page"},"annotations":{"summary":"$3"},
 "startsAt":"2026-11-26T03:00:00Z","fingerprint":"$1"}]}
EOF
}

resolve() { # ALERTNAME TEAM: the resolution of alert's group
  curl -fsS -u "am:$AM_PASS" -H 'Content-Type: application/json' "$BRIDGE/api/v1/alertmanager" -d @- >/dev/null <<EOF
{"version":"4","status":"resolved","receiver":"sms","groupKey":"{}:{alertname=\\"$1\\"}","commonLabels":{"alertname":"$1","team":"$2"},
 "alerts":[{"status":"resolved","labels":{"alertname":"$1","team":"$2","severity":"page"},"annotations":{},
 "startsAt":"2026-11-26T03:00:00Z","endsAt":"2026-11-26T03:10:00Z","fingerprint":"$1"}]}
EOF
}

echo "throttled: one number gets a storm"
alert Noisy1 noisy "first of a storm" || fail "post alert"
wait_for "the first of the storm accepted" 30 at_least accepted 1
alert Noisy2 noisy "second" && alert Noisy3 noisy "third" || fail "post alert"
wait_for "2 bundled into a digest" 30 at_least bundled 2
alert Noisy4 noisy "fourth, resolved before sent" || fail "post alert"
wait_for "1 held" 30 at_least held 1
resolve Noisy4 noisy || fail "post resolution"
wait_for "2 cancelled" 30 at_least cancelled 2
alert Noisy5 noisy "fifth" && alert Noisy6 noisy "sixth" || fail "post alert"
wait_for "4 bundled" 30 at_least bundled 4
# The hour's three are spent: this one stays held while the browser looks.
alert Noisy7 noisy "seventh, held for the hour" || fail "post alert"
wait_for "1 held" 30 at_least held 1

echo "accepted: an alert to ops"
alert HighLatency ops "p99 latency above 2s on checkout" || fail "post alert"
wait_for "2 accepted" 30 at_least accepted 2

echo "failed: a CI webhook to a number the provider rejects"
curl -fsS -H "X-CI-Token: $CI_TOKEN" -H 'Content-Type: application/json' "$BRIDGE/api/v1/webhooks/ci" \
  -d '{"text":"Nightly backup job failed","labels":{"team":"vendor","job":"backup"}}' >/dev/null || fail "post webhook"
wait_for "1 failed" 30 at_least failed 1

echo "pending: the account runs out of credits, so the queue is held"
curl -fsS -X POST "$FAKE/control/credits?n=0" >/dev/null
alert DiskFull db "disk /var/lib/postgresql 97% full" || fail "post alert"
wait_for "the provider held" 30 sh -c "curl -fsS '$BRIDGE/api/v1/status' | grep -q '\"state\":\"held\"'"
wait_for "2 pending" 30 at_least pending 2
# send-test waits for the outcome; with the account held, its numbers are
# still pending when it gives up, and it says so (exit 1).
if "$WORK/smsbridge" send-test --receiver ops --web.url "$BRIDGE" --timeout 3s >"$OUT/send-test.out" 2>&1; then
  fail "send-test succeeded through a held account: $(cat "$OUT/send-test.out")"
fi
grep -q "test SMS queued" "$OUT/send-test.out" || fail "send-test said: $(cat "$OUT/send-test.out")"
grep -q "the provider account is held (no_credits, HTTP 405)" "$OUT/send-test.out" || fail "send-test did not report the pending numbers: $(cat "$OUT/send-test.out")"

# chrome URL OUTFILE EXTRA...: one headless Chromium run, bounded, with
# everything it spawned stopped afterwards.
chrome() {
  local url=$1 out=$2
  shift 2
  local profile
  profile="$(mktemp -d -p "$WORK")"
  setsid timeout -k 5 90 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" "$@" "$url" >"$out" 2>>"$OUT/chromium.log" &
  local pid=$!
  PIDS+=("$pid")
  wait "$pid" || fail "chromium failed on $url (see $OUT/chromium.log)"
  kill -TERM -- "-$pid" 2>/dev/null || true
}

echo "chromium: status page (under the route prefix /sms)"
chrome "$BRIDGE/" "$OUT/status-page.html" --dump-dom
chrome "$BRIDGE/routes-test?labels=team%3Ddb%20alertname%3DDiskFull" "$OUT/routes-test.html" --dump-dom
# "/" redirects into the prefix, in the browser too.
chrome "$ROOT/" "$OUT/root-redirect.html" --dump-dom
(cd "$OUT" && chrome "$BRIDGE/" /dev/null --screenshot="$OUT/status-page.png" --window-size=1400,2000 --hide-scrollbars)
(cd "$OUT" && chrome "$BRIDGE/routes-test?labels=team%3Ddb%20alertname%3DDiskFull" /dev/null --screenshot="$OUT/routes-test.png" --window-size=1280,1000 --hide-scrollbars)
test -s "$OUT/status-page.png" || fail "no screenshot"
cp "$OUT/status-page.png" "$BUILD_DIR/status-page.png"

echo "a second bridge in a dry run"
DRY_PORT="$("$WORK/fakeapi" -free-port)"
DRY="http://127.0.0.1:$DRY_PORT"
setsid "$WORK/smsbridge" --config.file=config.example.yaml --sms.dry-run --storage.path="$WORK/dry-data" \
  --web.listen-address="127.0.0.1:$DRY_PORT" >"$OUT/dry-run.log" 2>&1 &
DRY_PID=$!
PIDS+=($DRY_PID)
wait_for "the dry-run bridge to be ready" 30 curl -fsS "$DRY/-/ready"
curl -fsS -H 'Content-Type: application/json' --data @receiver/testdata/am-firing.json "$DRY/api/v1/alertmanager" >/dev/null ||
  fail "post to the dry run"
wait_for "3 accepted in the dry run" 30 sh -c "curl -fsS '$DRY/api/v1/deliveries?status=accepted' | grep -o '\"dry_run\":true' | wc -l | grep -qx 3"
chrome "$DRY/" "$OUT/dry-run.html" --dump-dom
(cd "$OUT" && chrome "$DRY/" /dev/null --screenshot="$OUT/dry-run.png" --window-size=1400,1400 --hide-scrollbars)

echo "the dry run's two-way loop: receipts, a reply, a STOP"
wait_for "the dry run's receipts" 30 sh -c "curl -fsS '$DRY/api/v1/deliveries?status=accepted' | grep -o '\"receipt\":\"delivered\"' | wc -l | grep -qx 3"
# A phone's reply changes state: the same dry run again (its outbox, the
# reply codes in it), now with --web.enable-admin-api.
kill -TERM -- "-$DRY_PID" 2>/dev/null || kill -TERM "$DRY_PID"
wait "$DRY_PID" 2>/dev/null || true
setsid "$WORK/smsbridge" --config.file=config.example.yaml --sms.dry-run --web.enable-admin-api --storage.path="$WORK/dry-data" \
  --web.listen-address="127.0.0.1:$DRY_PORT" >>"$OUT/dry-run.log" 2>&1 &
PIDS+=($!)
wait_for "the dry-run bridge to be ready again" 30 curl -fsS "$DRY/-/ready"
curl -fsS -d '{"number": "+27831234568", "text": "ACK 1"}' "$DRY/api/v1/sms/dry-run/reply" >/dev/null || fail "the dry run's reply"
wait_for "the acknowledgement's answer" 30 sh -c "curl -fsS '$DRY/api/v1/deliveries' | grep -q 'Acked DiskFull'"
curl -fsS -d '{"number": "+27831234568", "text": "STOP"}' "$DRY/api/v1/sms/dry-run/reply" >/dev/null || fail "the dry run's STOP"
wait_for "the opt-out" 30 sh -c "curl -fsS '$DRY/api/v1/status' | grep -q '\"opted_out\"'"
chrome "$DRY/" "$OUT/dry-run-twoway.html" --dump-dom
(cd "$OUT" && chrome "$DRY/" /dev/null --screenshot="$OUT/dry-run-twoway.png" --window-size=1400,1400 --hide-scrollbars)
test -s "$OUT/dry-run.png" || fail "no dry-run screenshot"

errors=0
check() { # FILE WHAT NEEDLE: the DOM must hold NEEDLE
  if ! grep -qF -- "$3" "$1"; then
    echo "MISSING in $(basename "$1"): $2 ($3)" >&2
    errors=$((errors + 1))
  fi
}
check_count() { # FILE WHAT NEEDLE MIN
  local n
  n=$(grep -oF -- "$3" "$1" | wc -l)
  if ((n < $4)); then
    echo "MISSING in $(basename "$1"): $2: $n of $3, want at least $4" >&2
    errors=$((errors + 1))
  fi
}
refuse() { # FILE WHAT NEEDLE: the DOM must not hold NEEDLE
  if grep -qF -- "$3" "$1"; then
    echo "FOUND in $(basename "$1"): $2 ($3)" >&2
    errors=$((errors + 1))
  fi
}

page="$OUT/status-page.html"
# The view grouped by notification: one block per notification, its alert
# name, one chip per number with its state, the text in full.
check_count "$page" "notification blocks" '<tbody id="notification-' 12
check "$page" "an alert name" '<div class="alertname">HighLatency</div>'
check "$page" "another alert name" '<div class="alertname">DiskFull</div>'
check "$page" "the receivers reached" 'to db'
check_count "$page" "accepted chips" 'data-status="accepted"' 2
check_count "$page" "failed chips" 'data-status="failed"' 1
check_count "$page" "pending chips" 'data-status="pending"' 2
check "$page" "a masked number on a chip" '<span class="chip st-accepted"'
check "$page" "the text in full" '<div class="sms">FIRING:1 HighLatency'
check "$page" "the provider's rejection" "E102: Blacklisted"
check "$page" "a provider message id" 'provider id <code class="msgid">'
check "$page" "why a pending number waits" 'waits: the account is held (the account has no credits); next probe'
check "$page" "a retry button on the failed number" 'action="/sms/deliveries/'
refuse "$page" "the admin API said off while it is on" 'id="admin-disabled"'
# The noise controls: a throttled number's held, bundled and cancelled
# messages, its digests, the throttle section.
check_count "$page" "held chips" 'data-status="held"' 1
check_count "$page" "bundled chips" 'data-status="bundled"' 4
check_count "$page" "cancelled chips" 'data-status="cancelled"' 2
check "$page" "until when a held one waits" 'held for the number until'
check "$page" "the digest a bundled one went in" 'bundled into digest <a href="/sms/#delivery-'
check "$page" "why one was cancelled" 'resolved before sent'
check "$page" "a digest" 'digest of messages the throttle held'
check "$page" "the digest's alert names" '<div class="alertname">Noisy2, Noisy3</div>'
check "$page" "the digest's text" '<div class="sms">2 held: FIRING Noisy2; FIRING Noisy3</div>'
check "$page" "the throttle section" 'At most 1 per 5s, 3 per 1h to one number'
check "$page" "what is held for the number" '1 held</span> FIRING Noisy7'
check "$page" "the held count of the queue" 'id="count-held"'
# The held provider's card.
check "$page" "the held account" 'id="account-primary" data-mode="held"'
check "$page" "why it is held" 'the account has no credits (HTTP 405)'
check "$page" "the provider's message" "You don't have enough credits on your account!"
check "$page" "the next probe" 'class="next-probe"'
check "$page" "the error rate" 'Errors, 15 min'
check "$page" "the last error" 'class="last-error"><span class="err">'
# Counts, queue, refresh, the rest.
check "$page" "the 24-hour counts" 'id="count-notifications"'
check "$page" "failed in 24 hours" 'id="count-failed"'
check "$page" "the outbox depth" 'id="outbox"'
check "$page" "the oldest pending age" "Oldest pending"
check "$page" "the self-refresh" '<meta http-equiv="refresh" content="30">'
check "$page" "the config hash" "$(sha256sum "$WORK/smsbridge.yml" | cut -c1-12)"
check "$page" "the last reload" '<span class="badge ok">success</span>'
check "$page" "the route tree" 'default-route  receiver: ops'
check "$page" "a route of the tree" '├── {team="vendor"}  receiver: vendor'
check "$page" "the last route of the tree" '└── {team="noisy"}  receiver: noisy'
check "$page" "the sources" "alertmanager, ci, github"
check "$page" "masked numbers" "+2783****001"
check "$page" "the version" 'id="build"'
check "$page" "the routes test form" 'action="/sms/routes-test"'
check "$page" "the stylesheet under the prefix" 'href="/sms/static/status.css"'
refuse "$page" "a dry-run banner in production" 'id="dry-run-banner"'
# Every link, form and asset stays under the prefix, and each GET works.
links=$(grep -oE '(href|action|src)="/[^"]*"' "$page" "$OUT/routes-test.html" | sed -E 's/^[^:]*:(href|action|src)="//; s/"$//; s/&amp;/\&/g' | sort -u)
[ -n "$links" ] || fail "no links on the page"
while read -r link; do
  case "$link" in
    /sms/*) ;;
    *) echo "LINK outside the prefix: $link" >&2; errors=$((errors + 1)); continue ;;
  esac
  case "$link" in */retry) continue ;; esac
  if ! curl -fsS -o /dev/null "$ROOT$link"; then
    echo "BROKEN LINK: $link" >&2
    errors=$((errors + 1))
  fi
done <<<"$links"
check "$OUT/root-redirect.html" "/ redirects into the prefix" 'id="notifications"'
rt="$OUT/routes-test.html"
check "$rt" "the routes test receiver" 'data-receiver="db"'
check "$rt" "the routes test path" "route.routes[0]"
check "$rt" "the routes test numbers" "+2783****003, +2783****004"
check "$rt" "the routes test summary" "would queue 1 message to 2 numbers"
check "$rt" "the routes test text" "FIRING:1 DiskFull"
dry="$OUT/dry-run.html"
check "$dry" "the dry-run banner" 'id="dry-run-banner"'
check "$dry" "what the banner says" 'Dry run: nothing is sent.'
check_count "$dry" "chips that say nothing was sent" '<i class="dry">dry run, not sent</i>' 3
check "$dry" "the dry-run account" '<span class="badge dry">dry run</span>'
check "$dry" "the grouped notification" '<div class="alertname">DiskFull</div>'
# The dry run runs without --web.enable-admin-api: no button that would
# answer 403, and the page says what retrying needs.
refuse "$dry" "a retry form without the admin API" '/retry'
check "$dry" "why there is no retry" 'id="admin-disabled"'
curl -fsS "$DRY/api/v1/status" | grep -q '"dry_run":true' || { echo "MISSING: dry_run in /api/v1/status" >&2; errors=$((errors + 1)); }
check "$dry" "the page's open escalation" 'id="escalation-1" class="escalation open"'
check "$dry" "its next step" '<span class="badge st-pending">step 1</span> <code>db-escalation</code>'
refuse "$dry" "a cancel button without the admin API" '/escalations/1/cancel'
tw="$OUT/dry-run-twoway.html"
check "$tw" "the STOP banner" 'id="optout-banner"'
check "$tw" "who replied STOP" '+2783****568</code> replied STOP'
check "$tw" "a handset receipt on a chip" 'data-receipt="delivered"'
check "$tw" "who acknowledged" 'acked by <b>+2783****568</b> (ACK 1)'
check "$tw" "the reply code" 'reply code 1'
check "$tw" "the escalation the acknowledgement stopped" '<span class="badge ok">acked</span>'

# No secret and no full number, on the pages or in the admin API.
curl -fsS "$BRIDGE/api/v1/status" >"$OUT/api-status.json"
curl -fsS "$BRIDGE/api/v1/deliveries?limit=1000" >"$OUT/api-deliveries.json"
for f in "$page" "$rt" "$dry" "$OUT/api-status.json" "$OUT/api-deliveries.json"; do
  for secret in "$API_KEY" "$AM_PASS" "$CI_TOKEN" "$HMAC_KEY"; do
    refuse "$f" "a secret" "$secret"
  done
  for n in 27830000001 27830000002 27830000003 27830000004 27830000005 27830000099; do
    refuse "$f" "a full number" "$n"
  done
done

((errors == 0)) || fail "$errors checks failed; the DOM is in $OUT"
echo "browser test passed: screenshots $BUILD_DIR/status-page.png and $OUT/*.png, DOM in $OUT"
