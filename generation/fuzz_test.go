package generation

import (
	"errors"
	"os"
	"testing"

	"github.com/smsbridge/smsbridge/config"
)

// FuzzBuild feeds arbitrary YAML through the loader and the builder: each
// must return a result or errors that are all *config.Error, never panic.
func FuzzBuild(f *testing.F) {
	good, err := os.ReadFile("testdata/good.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"))
	f.Add([]byte("route: {receiver: a, routes: [{matchers: ['a=~\"(\"']}, ~]}\nreceivers: [{name: a, numbers: [x]}]\n"))
	f.Add([]byte("webhooks: [{name: w, labels: {a: '{{ .x'}}]\nroute: {receiver: a}\nreceivers: [{name: a, oncall: [l]}]\noncall: [{name: l}]\n"))
	f.Add([]byte("people: [{name: a, number: '+27830000001'}]\ntime_intervals: [{name: bh, time_intervals: [{weekdays: [monday], location: Europe/Berlin}]}]\n" +
		"route: {receiver: r, routes: [{receiver: r, active_time_intervals: [bh]}]}\nreceivers: [{name: r, oncall: [l]}]\n" +
		"oncall: [{name: l, time_zone: Europe/Berlin, rotation: {members: [a], shift: 1w, start: '2026-01-05T09:00'}, layers: [{time_intervals: [bh], members: [a]}], overrides: [{members: [a], start: '2026-12-24', end: '2026-12-25'}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := config.Load(data)
		if err != nil {
			return
		}
		file.Dir = "testdata"
		_, err = Build(file, Options{DryRun: true})
		if err == nil {
			return
		}
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var ce *config.Error
			if !errors.As(e, &ce) {
				t.Fatalf("%T is not a *config.Error: %v", e, e)
			}
		}
	})
}
