package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// resolveWeb computes the external URL and the route prefix from the
// flags, as Prometheus does: without --web.external-url the bridge is
// reached at http://<hostname>:<port>/ of the first listen address, under
// --web.route-prefix when that is given (so the page's links carry the
// prefix), and without --web.route-prefix every path is served under the
// external URL's path.
func resolveWeb(f *flags) error {
	listen := ""
	if f.web != nil && f.web.WebListenAddresses != nil && len(*f.web.WebListenAddresses) > 0 {
		listen = (*f.web.WebListenAddresses)[0]
	}
	u, err := externalURL(f.externalURL, listen)
	if err != nil {
		return err
	}
	if f.externalURL == "" && f.routePrefix != "" {
		u.Path = strings.TrimSuffix(cleanPrefix(f.routePrefix), "/")
	}
	f.external = u
	prefix := f.routePrefix
	if prefix == "" {
		prefix = u.Path
	}
	f.prefix = cleanPrefix(prefix)
	return nil
}

// externalURL parses --web.external-url, or builds the default from the
// host name and the listen address (the listen address's own host when
// it is a loopback one: the host name would not reach it). The result's
// path has no trailing slash ("" for the root).
func externalURL(raw, listen string) (*url.URL, error) {
	if raw == "" {
		lhost, port, err := net.SplitHostPort(listen)
		if err != nil || port == "" {
			lhost, port = "", "9754"
		}
		host := lhost
		if ip := net.ParseIP(lhost); lhost != "localhost" && (ip == nil || !ip.IsLoopback()) {
			if host, err = os.Hostname(); err != nil {
				return nil, fmt.Errorf("--web.external-url not given and the host name is unknown: %w", err)
			}
		}
		raw = "http://" + net.JoinHostPort(host, port) + "/"
	}
	if strings.HasPrefix(raw, `"`) || strings.HasPrefix(raw, "'") || strings.HasSuffix(raw, `"`) || strings.HasSuffix(raw, "'") {
		return nil, fmt.Errorf("--web.external-url %s is quoted; give it without quotes", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--web.external-url %q is not a URL: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--web.external-url %q is not an absolute http or https URL", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("--web.external-url must not hold credentials")
	}
	p := strings.TrimRight(u.Path, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	u.Path, u.RawPath = p, ""
	return u, nil
}

// cleanPrefix makes a route prefix "/" or "/a/b": one leading slash, no
// trailing one.
func cleanPrefix(p string) string {
	return "/" + strings.Trim(p, "/")
}

// linkPrefix is the path the status page's links start with: the external
// URL's, since a proxy may strip or add a prefix on the way in.
func (f *flags) linkPrefix() string {
	if f.external == nil {
		return ""
	}
	return f.external.Path
}

// underPrefix serves h under prefix: a request for prefix+"/x" reaches h as
// "/x", "/" and the bare prefix are redirected to prefix+"/", and every
// other path is not found. Prometheus serves --web.route-prefix the same
// way, probes and /metrics included.
func underPrefix(prefix string, h http.Handler) http.Handler {
	prefix = cleanPrefix(prefix)
	if prefix == "/" {
		return h
	}
	inner := http.StripPrefix(prefix, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/" || p == prefix:
			target := prefix + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusFound)
		case strings.HasPrefix(p, prefix+"/"):
			inner.ServeHTTP(w, r)
		default:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": "not found: every path is under the route prefix " + prefix + "/"})
		}
	})
}

// logReady says where the bridge can be used, once it serves: the line a
// newcomer waits for after the first `go run` has compiled.
func (b *bridge) logReady() {
	var attrs []any
	if u := b.flags.external; u != nil {
		attrs = append(attrs, "status_page", u.String()+"/")
	}
	if p := cleanPrefix(b.flags.prefix); p != "/" {
		attrs = append(attrs, "route_prefix", p)
	}
	if b.flags.dryRun {
		attrs = append(attrs, "dry_run", true)
	}
	b.logger.Info("smsbridge is ready", attrs...)
}
