package config

import (
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary YAML to the loader: it must return a
// configuration or an *Error, never panic.
func FuzzLoad(f *testing.F) {
	good, err := os.ReadFile("testdata/good.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"))
	f.Add([]byte("route: {receiver: a, routes: [{matchers: ['a=~\"(\"']}]}\n"))
	f.Add([]byte("sms: {max_segments: 0, fallback: {api_key: x}}\nroute: {receiver: a}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Load(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		for _, p := range []string{"sms.url", "receivers[0].numbers[0]", "route.routes[0]"} {
			file.Line(p)
		}
	})
}
