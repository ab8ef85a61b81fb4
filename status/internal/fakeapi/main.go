// Command fakeapi serves sms/fake's fake of the SMS provider on a TCP
// address, for the status page's browser test (.ci/browser-test.sh). On
// top of the fake it rejects chosen numbers the way the provider rejects a
// number on its suppression list, and lets the script take the account's
// credits away, so one bridge shows accepted, failed and pending rows.
//
//	fakeapi -listen 127.0.0.1:0 -addr-file F -key K -reject +27830000099
//	curl -X POST http://ADDR/control/credits?n=0
//
// With -free-port it prints a free loopback port and exits.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fakeapi:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("addr-file", "", "write the address listened on to this file")
	key := flag.String("key", "", "the API key the fake accepts")
	reject := flag.String("reject", "", "comma-separated numbers the provider rejects")
	freePort := flag.Bool("free-port", false, "print a free loopback port and exit")
	flag.Parse()
	if *freePort {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		return nil
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fake := smsfake.New(smsfake.Options{APIKey: *key, Credits: smsfake.Unlimited, Logger: logger})
	h := &handler{fake: fake, key: *key}
	if *reject != "" {
		h.reject = strings.Split(*reject, ",")
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(l.Addr().String()), 0o644); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	logger.Info("fake sms api listening", "addr", l.Addr().String(), "rejects", len(h.reject))
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type handler struct {
	fake   *smsfake.Server
	key    string
	reject []string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/control/credits" && r.Method == http.MethodPost:
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			http.Error(w, "n must be a number", http.StatusBadRequest)
			return
		}
		h.fake.SetCredits(n)
		fmt.Fprintf(w, "credits %d\n", n)
	case r.URL.Path == "/control/messages":
		fmt.Fprintf(w, "%d\n", h.fake.Accepted())
	case r.URL.Path == smsfake.Path && r.Method == http.MethodPost:
		h.send(w, r)
	default:
		h.fake.ServeHTTP(w, r)
	}
}

// send takes the rejected numbers out of the request, lets the fake
// answer for the rest, and adds a rejection for each taken out.
func (h *handler) send(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	var req map[string]json.RawMessage
	var to []string
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(req["to"], &to) != nil {
		h.forward(w, r, body)
		return
	}
	var keep, rejected []string
	for _, n := range to {
		if slices.Contains(h.reject, n) {
			rejected = append(rejected, n)
		} else {
			keep = append(keep, n)
		}
	}
	if len(rejected) == 0 {
		h.forward(w, r, body)
		return
	}
	reply := map[string]any{"messages": []any{}, "errorCode": nil, "error": nil, "errorDescription": nil}
	if len(keep) > 0 {
		req["to"], _ = json.Marshal(keep)
		nb, _ := json.Marshal(req)
		rec := httptest.NewRecorder()
		h.forward(rec, r, nb)
		if rec.Code != http.StatusAccepted || json.Unmarshal(rec.Body.Bytes(), &reply) != nil {
			// An account or request error answers for the whole request.
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
	} else if r.Header.Get("Authorization") != "Bearer "+h.key {
		h.forward(w, r, body)
		return
	}
	msgs, _ := reply["messages"].([]any)
	for _, n := range rejected {
		msgs = append(msgs, map[string]any{
			"apiMessageId": "", "accepted": false, "to": n,
			"errorCode": "E102", "error": "Blacklisted", "errorDescription": "The number is on the account's suppression list.",
		})
	}
	reply["messages"] = msgs
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(reply)
}

func (h *handler) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	h.fake.ServeHTTP(w, r2)
}
