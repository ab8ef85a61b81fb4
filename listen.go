package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/exporter-toolkit/web"
)

// listen binds what --web.listen-address (or --web.systemd-socket) names,
// as exporter-toolkit's ListenAndServe would, but before anything starts:
// a port already in use ends the start with an error, before the bridge
// says it is ready or queues anything. web.ServeMultiple then serves the
// listeners with --web.config.file's TLS and basic auth.
func listen(fc *web.FlagConfig, logger *slog.Logger) ([]net.Listener, error) {
	if fc.WebSystemdSocket != nil && *fc.WebSystemdSocket {
		logger.Info("listening on systemd activated listeners instead of port listeners")
		ls, err := activation.Listeners()
		if err != nil {
			return nil, fmt.Errorf("systemd socket activation: %w", err)
		}
		if len(ls) == 0 {
			return nil, errors.New("systemd socket activation: no socket activation file descriptors found")
		}
		return ls, nil
	}
	if fc.WebListenAddresses == nil || len(*fc.WebListenAddresses) == 0 {
		return nil, errors.New("no --web.listen-address given")
	}
	var ls []net.Listener
	for _, addr := range *fc.WebListenAddresses {
		l, err := listenOne(addr)
		if err != nil {
			closeListeners(ls)
			return nil, fmt.Errorf("cannot listen on --web.listen-address=%s: %w", addr, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func listenOne(addr string) (net.Listener, error) {
	if !strings.HasPrefix(addr, "vsock://") {
		return net.Listen("tcp", addr)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, err
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("vsock port %q: %w", port, err)
	}
	return vsock.Listen(uint32(p), nil)
}

func closeListeners(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}
