// Package mapping turns the JSON body of a generic webhook into one
// notification (an *alert.Notification), the same model the Alertmanager
// endpoint produces, so that routing, templates and the outbox treat both
// alike and nothing is lost between representations.
//
// A Config is compiled once per `webhooks:` entry (Compile) and applied to each
// request body (Apply). Apply returns ErrFiltered for a body the `when`
// template rejects (the handler answers 202 and sends nothing), a *BodyError
// for a body that is not one JSON object (400) and a *FieldError naming the
// config field that failed for this body (422). Compile's errors are
// *FieldError too, naming the config field that cannot be compiled.
//
// # Templates
//
// Every field is a Go text/template. Its data (`.`) is the decoded body: JSON
// objects are map[string]any, arrays []any, numbers json.Number (so large IDs
// keep every digit; compare them as strings, `eq .id "42"`), and JSON null is
// the empty string. Output is trimmed of surrounding white space.
//
// A key the body lacks is an error: `{{ .repository.full_name }}` on a body
// without "repository" fails with a 422 that names the field and the key, so a
// mistyped path shows up on the first request instead of as a silently empty
// label. For optional keys use `get`, which returns "" where the path ends.
//
// Functions: all of Alertmanager's (toUpper, toLower, title, trimSpace, join,
// match, reReplaceAll, toJson, date, tz, since, humanizeDuration, dict, list,
// ...), plus
//
//	header NAME          first value of request header NAME (case-insensitive), or ""
//	get PATH VALUE       lenient lookup, `get "workflow_run.head_branch" .`;
//	                     dot-separated keys and array indexes; "" if absent;
//	                     objects and arrays come back as JSON
//	default FALLBACK V   V as text, or FALLBACK if that is empty:
//	                     `{{ get "a.b" . | default "unknown" }}`
//	truncate N TEXT      at most N characters of TEXT
//	source               the webhook's source name
//
// # Fields
//
// Labels and annotations are rendered once per body. A value that renders
// empty is dropped, so setting a preset's label to "" removes it. Every alert
// gets a `source` label (the source name) and an `alertname` label (default:
// the source name) unless the mapping sets them. Label names must match
// [a-zA-Z_][a-zA-Z0-9_]*.
//
// Status must render firing or resolved (any case); default firing. When, if
// set, filters the body when it renders "", "false", "0" or "no"; it is
// evaluated first, so the other fields may assume what it checked. GroupKey
// defaults to the labels all alerts share, sorted; the source name and ":"
// always come first. Labels identify an alert, so a preset keeps outcome
// details (such as the CI conclusion) in annotations: a failure and the
// success that resolves it then have the same labels, fingerprint and group
// key.
//
// Alerts without times get StartsAt = now (the time the request arrived), and
// resolved ones EndsAt = now. The fingerprint is Alertmanager's hash of the
// final labels (alert.Fingerprint).
//
// The notification's data is built as Alertmanager builds a group's: Receiver
// is the source name, CommonLabels and CommonAnnotations are what all alerts
// share, and GroupLabels are the common labels unless the sender names its own
// (Grafana).
//
// # Presets
//
// A preset supplies fields; the user's fields override them one by one (each
// label and annotation name, status, when, group_key, generator_url).
//
//	preset   accepts                                  firing             resolved  filtered
//	github   X-GitHub-Event workflow_run, check_suite failure, timed_out, success   other actions and
//	         or check_run with action "completed"     startup_failure              conclusions (cancelled,
//	                                                                               skipped, neutral, stale,
//	                                                                               action_required), other
//	                                                                               events (ping, push, ...)
//	gitlab   object_kind "pipeline"                   status failed      success   every other status
//	         object_kind "build" (job events)         build_status       success   other statuses; failed
//	                                                  failed                       with allow_failure
//	grafana  Grafana alerting webhook contact point   per alert, from the payload  never
//	plain    {"text", "labels", "annotations",        status (default    status    never
//	         "status"}                                firing)
//
// github labels: alertname (GitHubWorkflowFailed, GitHubCheckSuiteFailed,
// GitHubCheckFailed), repository (full_name), branch, workflow (workflow_run)
// or check (check run name, or the app name for a check suite); annotations:
// summary ("CI failed: octo-org/octo-repo CI on main (failure)", or "CI
// passed: ..."), url, conclusion; generator URL = url. Helper templates
// github.name, github.branch, github.conclusion and github.url may be used in
// overrides: `{{ template "github.branch" . }}`.
//
// gitlab labels: alertname (GitLabPipelineFailed, GitLabJobFailed),
// repository (project path_with_namespace, or project_name on old servers),
// branch (ref), job (job events); annotations: summary, url, conclusion,
// failure_reason (failed jobs). Helpers gitlab.status, gitlab.project,
// gitlab.ref and gitlab.url.
//
// grafana makes one alert per entry of "alerts" with its labels (minus
// internal "__" ones), annotations, startsAt, endsAt and generatorURL; the
// extra keys become annotations silence_url, dashboard_url, panel_url,
// value_string and values ("B=93.4 C=1"). The group key is Grafana's
// groupKey; truncatedAlerts reaches the notification's TruncatedAlerts,
// externalURL its Data.ExternalURL and groupLabels (minus internal ones) its
// Data.GroupLabels, so templates see all three. User overrides are
// rendered once over the whole body and applied to every alert; a status
// override sets every alert's status.
//
// plain copies "labels" and "annotations" (string, number or boolean values)
// and puts "text" in the summary annotation; a body needs "text" or an
// annotations.summary.
package mapping
