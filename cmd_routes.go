package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/generation"
	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/status"
)

// routesTestFlags are the arguments of `smsbridge routes test`.
type routesTestFlags struct {
	labels      []string
	annotations []string
	payload     string
	showNumbers bool
	// at is the time to route at (on-call lists, time intervals).
	at string
}

// addRoutesCommand adds `routes test` to app.
func addRoutesCommand(app *kingpin.Application) (*kingpin.CmdClause, *routesTestFlags) {
	rf := &routesTestFlags{}
	routes := app.Command("routes", "Inspect the routing tree.")
	test := routes.Command("test", "Show where one alert (given by its labels) or an Alertmanager payload would be routed, "+
		"who would be paged and the exact SMS text. Nothing is sent and no store is opened.")
	test.Flag("payload", "Route an Alertmanager webhook payload (JSON, version 4) from this file instead of labels.").PlaceHolder("FILE").StringVar(&rf.payload)
	test.Flag("annotation", "An annotation of the alert, as name=value; repeatable. Only with labels.").PlaceHolder("NAME=VALUE").StringsVar(&rf.annotations)
	test.Flag("show-numbers", "Print phone numbers in full instead of masked.").BoolVar(&rf.showNumbers)
	test.Flag("at", "Route as if it were this time (RFC 3339): who is on call then, and which time intervals mute. Default now.").PlaceHolder("TIME").StringVar(&rf.at)
	test.Arg("labels", `Labels of one firing alert, as name=value or name="value".`).StringsVar(&rf.labels)
	return test, rf
}

// runRoutesTest is `smsbridge routes test`. It exits 0 when the test ran,
// 1 for a configuration error and 2 for a usage error.
func runRoutesTest(configFile string, rf *routesTestFlags, stdout, stderr io.Writer) int {
	at := time.Now()
	if rf.at != "" {
		t, err := time.Parse(time.RFC3339, rf.at)
		if err != nil {
			fmt.Fprintf(stderr, "smsbridge routes test: --at %q is not an RFC 3339 time such as 2026-03-30T09:00:00+02:00\n", rf.at)
			return 2
		}
		at = t
	}
	n, what, err := routesTestInput(rf, at)
	if err != nil {
		fmt.Fprintf(stderr, "smsbridge routes test: %v\n", err)
		return 2
	}
	file, err := config.LoadFile(configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := generation.Build(file, generation.Options{DryRun: true, Logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	res := status.FromPlan(g.Pipeline.Preview(n, at))
	if rf.at != "" {
		what += " at " + at.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "%s\nconfig %s (%s)\n\n", what, file.Path, file.Hash[:12])
	if err := status.WriteRouteTest(stdout, res, rf.showNumbers); err != nil {
		fmt.Fprintf(stderr, "smsbridge routes test: %v\n", err)
		return 1
	}
	return 0
}

// routesTestInput builds the notification to test from the labels or the
// payload file, and a line saying what it is.
func routesTestInput(rf *routesTestFlags, now time.Time) (*alert.Notification, string, error) {
	switch {
	case rf.payload != "" && len(rf.labels) > 0:
		return nil, "", errors.New("give labels or --payload, not both")
	case rf.payload != "" && len(rf.annotations) > 0:
		return nil, "", errors.New("--annotation goes with labels; a payload carries its own annotations")
	case rf.payload != "":
		body, err := os.ReadFile(rf.payload)
		if err != nil {
			return nil, "", fmt.Errorf("read payload: %w", err)
		}
		n, err := receiver.DecodeAlertmanager(body, now)
		if err != nil {
			return nil, "", fmt.Errorf("payload %s: %w", rf.payload, err)
		}
		return n, fmt.Sprintf("payload %s: %s, %s", rf.payload, n.Data.Status, plural.Count(len(n.Data.Alerts), "alert", "alerts")), nil
	case len(rf.labels) == 0:
		return nil, "", errors.New(`no labels: give the labels of an alert (team=db severity="critical") or --payload FILE`)
	}
	labels, err := status.ParseLabels(rf.labels)
	if err != nil {
		return nil, "", err
	}
	annotations, err := status.ParseLabels(rf.annotations)
	if err != nil {
		return nil, "", fmt.Errorf("annotation: %w", err)
	}
	return labelNotification(labels, annotations, now), "alert {" + strings.Join(status.FormatLabels(labels), ", ") + "}", nil
}

// labelNotification is one firing alert with labels, as Alertmanager would
// send it alone in its group.
func labelNotification(labels, annotations map[string]string, now time.Time) *alert.Notification {
	if annotations == nil {
		annotations = map[string]string{}
	}
	a := template.Alert{Status: alert.StatusFiring, Labels: template.KV(labels), Annotations: template.KV(annotations),
		StartsAt: now, Fingerprint: alert.Fingerprint(labels)}
	return &alert.Notification{
		Source: alert.SourceAlertmanager,
		Data: template.Data{
			Receiver: "smsbridge", Status: alert.StatusFiring, Alerts: template.Alerts{a},
			GroupLabels: template.KV{}, CommonLabels: template.KV(labels), CommonAnnotations: template.KV(annotations),
		},
		GroupKey:   "{}:{" + strings.Join(status.FormatLabels(labels), ", ") + "}",
		ReceivedAt: now,
	}
}
