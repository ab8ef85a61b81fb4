package config

import (
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary YAML to the loader and compiler: each must
// return a configuration or an error, never panic.
func FuzzLoad(f *testing.F) {
	good, err := os.ReadFile("testdata/good.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"))
	f.Add([]byte("route: {receiver: a, routes: [{matchers: ['a=~\"(\"']}]}\n"))
	f.Add([]byte("sms: {max_segments: 0}\nroute: {receiver: a}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Load(data)
		if err != nil {
			return
		}
		file.Dir = "testdata"
		_, _ = Compile(file, Options{DryRun: true})
	})
}
