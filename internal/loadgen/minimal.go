package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/alertmanager/template"
)

// minimalPayload is the body the minimal handler decodes: the same type
// the bridge decodes Alertmanager's webhook into, so the comparison
// differs only by what the bridge does after decoding.
type minimalPayload struct {
	template.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts int    `json:"truncatedAlerts"`
}

// minimalHandler decodes the payload and answers 202: the least any
// webhook receiver does, and the yardstick of the bridge's intake.
func minimalHandler() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.POST("/api/v1/alertmanager", func(c echo.Context) error {
		body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
		if err != nil {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "body too large")
		}
		var p minimalPayload
		if err := json.Unmarshal(body, &p); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "payload is not valid JSON")
		}
		return c.JSON(http.StatusAccepted, map[string]any{"status": "accepted", "recipients": len(p.Alerts)})
	})
	e.GET("/-/ready", func(c echo.Context) error { return c.String(http.StatusOK, "ready\n") })
	return e
}

// serveMinimal is the child process's whole life: serve the minimal
// handler on addr, print the address, and exit when the parent closes
// stdin (or dies).
func serveMinimal(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: minimal handler:", err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: minimalHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "loadgen: minimal handler:", err)
		return 1
	}
	return 0
}

// minimalProc is the minimal handler running in a child process, so it
// gets its own Go runtime as the bridge does and the comparison is fair.
type minimalProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	URL    string
}

func startMinimal(ctx context.Context) (*minimalProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-minimal=127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the minimal handler: %w", err)
	}
	m := &minimalProc{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("minimal handler did not start: %w", err)
	}
	m.URL = "http://" + strings.TrimSpace(line)
	if err := waitReady(ctx, m.URL+"/-/ready", m.exited); err != nil {
		m.stop()
		return nil, fmt.Errorf("minimal handler: %w", err)
	}
	return m, nil
}

func (m *minimalProc) pid() int { return m.cmd.Process.Pid }

func (m *minimalProc) stop() {
	_ = m.stdin.Close()
	select {
	case <-m.exited:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}
