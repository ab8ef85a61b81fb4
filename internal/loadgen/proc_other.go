//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"time"
)

func dieWithParent(*exec.Cmd) {}

type procStats struct {
	PeakRSS int64
	RSS     int64
	CPU     time.Duration
}

func readProc(int) (procStats, error) {
	return procStats{}, errors.New("process statistics need Linux's /proc")
}

func loadAverage() string { return "unknown" }

func cpuModel() string { return "unknown" }
