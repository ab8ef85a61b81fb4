//go:build integration

package main

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// amTools returns the paths of the alertmanager and amtool binaries
// (.ci/run installs v0.28.1), failing the test when either is missing.
func amTools(t *testing.T) (amBin, amtool string) {
	t.Helper()
	amBin, err := exec.LookPath("alertmanager")
	if err != nil {
		t.Fatalf("alertmanager not on PATH (.ci/run installs v0.28.1): %v", err)
	}
	amtool, err = exec.LookPath("amtool")
	if err != nil {
		t.Fatalf("amtool not on PATH: %v", err)
	}
	return amBin, amtool
}

// startAlertmanager runs a lone Alertmanager (no gossip) with config cfg
// on addr, its data in dir/name, until the test ends, and returns once it
// is ready, with its log.
func startAlertmanager(t *testing.T, amBin, cfg, dir, name, addr string, extra ...string) *syncBuffer {
	t.Helper()
	args := append([]string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, name),
		"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=debug"}, extra...)
	am := exec.Command(amBin, args...)
	log := &syncBuffer{}
	am.Stdout, am.Stderr = log, log
	if err := am.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = am.Process.Kill(); _, _ = am.Process.Wait() })
	waitHTTP(t, "http://"+addr+"/-/ready")
	return log
}
