//go:build linux

// Package binarytest runs the smsbridge binary for the suites that test it
// as a process (reliability, replicas): it builds the binary once, starts
// it on a free loopback port and waits until it is ready, kills it, and
// holds the helpers both suites use to post alerts and count what the
// fake provider accepted.
package binarytest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build builds the smsbridge binary into a new temporary directory named
// after prefix, for a suite's TestMain; cleanup removes it.
func Build(prefix string) (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "smsbridge")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/smsbridge/smsbridge").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// Main builds the binary into *bin, runs the suite's tests and exits with
// their code: a suite's TestMain.
func Main(m *testing.M, prefix string, bin *string) {
	path, cleanup, err := Build(prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// Process is a running smsbridge binary.
type Process struct {
	// Addr is its listen address on 127.0.0.1.
	Addr   string
	cmd    *exec.Cmd
	log    *SyncBuffer
	exited chan struct{}
}

// Start runs bin with args on a free loopback port and waits up to 30 s
// until it is ready, failing t if it exits first. The process is killed
// when the test ends, or if the test binary dies; name labels its log,
// shown when the test failed.
func Start(t *testing.T, bin, name string, args ...string) *Process {
	t.Helper()
	p := &Process{Addr: FreeAddr(t), log: &SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--web.listen-address=" + p.Addr}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.Running() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, p.Logs())
		}
	})
	client := &http.Client{Timeout: 5 * time.Second}
	Eventually(t, 30*time.Second, name+" ready", func() (bool, string) {
		if !p.Running() {
			t.Fatalf("%s exited before it was ready; log:\n%s", name, p.Logs())
		}
		resp, err := client.Get(p.URL("/-/ready"))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

// URL is path on the process's address.
func (p *Process) URL(path string) string { return "http://" + p.Addr + path }

// Logs is what the process wrote to stdout and stderr so far.
func (p *Process) Logs() string { return p.log.String() }

// Running reports whether the process is still alive.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// SyncBuffer is a process's log, written by the process and read by the
// test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls cond until it holds or timeout passes, then fails with
// what cond last said.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address with a port free a moment ago.
func FreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WriteFile writes content to dir/name (mode 0600) and returns its path.
func WriteFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Numbers returns n distinct valid numbers from +2783<first>, first a
// seven-digit number.
func Numbers(first, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+2783%07d", first+i)
	}
	return out
}

// AMPayload is an Alertmanager webhook (version 4) with one firing alert
// named name, its summary "<suite> <name>"; the default template puts the
// name in the SMS.
func AMPayload(suite, name string) []byte {
	return fmt.Appendf(nil, `{"version":"4","status":"firing","receiver":"sms","groupKey":"{}:{alertname=\"%[1]s\"}",`+
		`"groupLabels":{"alertname":"%[1]s"},"commonLabels":{"alertname":"%[1]s","severity":"critical"},"commonAnnotations":{},`+
		`"externalURL":"http://am","alerts":[{"status":"firing","labels":{"alertname":"%[1]s","severity":"critical","instance":"db-1"},`+
		`"annotations":{"summary":"%[2]s %[1]s"},"startsAt":"2026-11-26T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f%[1]s"}]}`, name, suite)
}

// NameRE finds the alert names the suites use: a capitalised word and four
// digits, e.g. Crash0042.
var NameRE = regexp.MustCompile(`\b[A-Z][a-z]+\d{4}\b`)

// Duplicates counts deliveries beyond the first of each "name|number".
func Duplicates(got map[string]int) int {
	d := 0
	for _, n := range got {
		d += max(n-1, 0)
	}
	return d
}
