package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/generation"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/sms"
)

// oncallFlags are the arguments of `smsbridge oncall ...`.
type oncallFlags struct {
	names        []string
	at           string
	showNumbers  bool
	url          string
	username     string
	passwordFile string
	timeout      time.Duration
	// override add, list, delete
	list    string
	members []string
	start   string
	end     string
	id      int64
}

// oncallCommands are the `oncall` subcommands.
type oncallCommands struct {
	who, add, list, del *kingpin.CmdClause
	flags               *oncallFlags
}

// defaultBridgeURL is where the override commands find the bridge.
const defaultBridgeURL = "http://127.0.0.1:9754"

func addOncallCommands(app *kingpin.Application) oncallCommands {
	f := &oncallFlags{}
	oc := app.Command("oncall", "Who is on call, and on-call overrides.")
	who := oc.Command("who", "Print, for each on-call list, who is on call (now, or --at a time) and until when. "+
		"Reads the configuration file; with --url, also the running bridge's overrides.")
	who.Arg("oncall", "On-call lists to show; all by default.").StringsVar(&f.names)
	who.Flag("at", "The time to ask about: RFC 3339 (2026-03-30T09:00:00+02:00) or a local time, read in each list's time zone (2026-03-30T09:00).").PlaceHolder("TIME").StringVar(&f.at)
	who.Flag("show-numbers", "Print phone numbers in full instead of masked.").BoolVar(&f.showNumbers)
	who.Flag("url", "The running bridge's URL, to include the overrides added at run time.").PlaceHolder("URL").StringVar(&f.url)
	bridgeFlags(who, f)

	ov := oc.Command("override", "Overrides added at run time (they need the bridge's --web.enable-admin-api to change).")
	add := ov.Command("add", "Put members on call for a list from --start (default now) to --end.")
	add.Arg("oncall", "The on-call list.").Required().StringVar(&f.list)
	add.Flag("member", "A person's name or a number; repeatable.").Required().PlaceHolder("NAME").StringsVar(&f.members)
	add.Flag("start", "When it starts: RFC 3339 or a local time in the list's zone; default now.").PlaceHolder("TIME").StringVar(&f.start)
	add.Flag("end", "When it ends: RFC 3339 or a local time in the list's zone.").Required().PlaceHolder("TIME").StringVar(&f.end)
	add.Flag("url", "The running bridge's URL.").Default(defaultBridgeURL).StringVar(&f.url)
	bridgeFlags(add, f)
	list := ov.Command("list", "List the overrides that have not ended.")
	list.Arg("oncall", "Only this list's.").StringVar(&f.list)
	list.Flag("url", "The running bridge's URL.").Default(defaultBridgeURL).StringVar(&f.url)
	bridgeFlags(list, f)
	del := ov.Command("delete", "Delete an override added at run time.")
	del.Arg("oncall", "The on-call list.").Required().StringVar(&f.list)
	del.Arg("id", "The override's id (from override list).").Required().Int64Var(&f.id)
	del.Flag("url", "The running bridge's URL.").Default(defaultBridgeURL).StringVar(&f.url)
	bridgeFlags(del, f)
	return oncallCommands{who: who, add: add, list: list, del: del, flags: f}
}

func bridgeFlags(cmd *kingpin.CmdClause, f *oncallFlags) {
	cmd.Flag("web.username", "Basic-auth user, when the bridge's --web.config.file asks for one.").StringVar(&f.username)
	cmd.Flag("web.password-file", "File holding the basic-auth password.").PlaceHolder("FILE").StringVar(&f.passwordFile)
	cmd.Flag("timeout", "How long to wait for the bridge.").Default("30s").DurationVar(&f.timeout)
}

// runOncallWho is `smsbridge oncall who`. It exits 0 when it printed, 1
// for a configuration error or a bridge it could not ask, 2 for a usage
// error.
func runOncallWho(configFile string, f *oncallFlags, stdout, stderr io.Writer) int {
	file, err := config.LoadFile(configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := generation.Build(file, generation.Options{DryRun: true, Logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	lists := g.Router.Lists()
	if len(f.names) > 0 {
		var picked []*oncall.Schedule
		for _, name := range f.names {
			s, ok := g.Router.List(name)
			if !ok {
				fmt.Fprintf(stderr, "smsbridge oncall who: no on-call list named %q in %s; the lists are %s\n", name, file.Path, listNames(lists))
				return 2
			}
			picked = append(picked, s)
		}
		lists = picked
	}
	if len(lists) == 0 {
		fmt.Fprintf(stderr, "smsbridge oncall who: %s has no on-call lists\n", file.Path)
		return 0
	}
	runtime := map[string][]oncall.Override{}
	if f.url != "" {
		if runtime, err = fetchOverrides(f, g.Router.Directory()); err != nil {
			fmt.Fprintf(stderr, "smsbridge oncall who: %v\n", err)
			return 1
		}
	}
	show := sms.MaskNumber
	if f.showNumbers {
		show = func(s string) string { return s }
	}
	now := time.Now()
	var b strings.Builder
	for _, s := range lists {
		at := now
		if f.at != "" {
			if at, err = oncall.ParseTime(f.at, s.Location); err != nil {
				fmt.Fprintf(stderr, "smsbridge oncall who: --at %v\n", err)
				return 2
			}
		}
		b.WriteString(whoLine(s, s.At(at, runtime[s.Name]), show) + "\n")
	}
	_, _ = io.WriteString(stdout, b.String())
	return 0
}

// whoLine is one list's line: "db-primary: alice (+2783****001) until
// 2026-03-30T09:00+02:00", the end in the list's zone; why they are on
// call follows in brackets unless it is the rotation.
func whoLine(s *oncall.Schedule, oc oncall.OnCall, show func(string) string) string {
	who := oncall.FormatMembers(oc.Members, show)
	if who == "" {
		who = "nobody"
	}
	line := s.Name + ": " + who
	switch {
	case !oc.Until.IsZero():
		line += " until " + oc.Until.In(s.Location).Format("2006-01-02T15:04Z07:00")
	case oc.Source != oncall.SourceFixed:
		line += ", no handoff within a year"
	}
	if oc.Source != oncall.SourceRotation {
		line += " [" + sourceText(oc.State, s) + "]"
	}
	return line
}

func listNames(lists []*oncall.Schedule) string {
	if len(lists) == 0 {
		return "none"
	}
	names := make([]string, len(lists))
	for i, s := range lists {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// oncallReply is GET /api/v1/oncall as the CLI reads it.
type oncallReply struct {
	Oncall []struct {
		Name      string          `json:"name"`
		Overrides []overrideReply `json:"overrides"`
	} `json:"oncall"`
}

type overrideReply struct {
	ID      int64  `json:"id"`
	Source  string `json:"source"`
	List    string `json:"oncall"`
	Members []struct {
		Name   string `json:"name"`
		Number string `json:"number"`
	} `json:"members"`
	Start string `json:"start"`
	End   string `json:"end"`
}

// members writes the override's members as the bridge did, masked.
func (o overrideReply) people() string {
	parts := make([]string, len(o.Members))
	for i, m := range o.Members {
		switch {
		case m.Number == "":
			parts[i] = m.Name + " (not in the bridge's configuration)"
		case m.Name == "":
			parts[i] = m.Number
		default:
			parts[i] = m.Name + " (" + m.Number + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// fetchOverrides reads the overrides added at run time from the bridge,
// by list. Members are resolved with dir where it knows them; the bridge
// shows numbers masked, so one it alone knows stays masked.
func fetchOverrides(f *oncallFlags, dir *oncall.Directory) (map[string][]oncall.Override, error) {
	var reply oncallReply
	if err := bridgeCall(f, http.MethodGet, "/api/v1/oncall", nil, http.StatusOK, &reply); err != nil {
		return nil, err
	}
	out := map[string][]oncall.Override{}
	for _, l := range reply.Oncall {
		for _, o := range l.Overrides {
			if o.Source != "api" {
				continue // the configuration's are in the file
			}
			ov := oncall.Override{ID: o.ID}
			var err1, err2 error
			ov.Start, err1 = time.Parse(time.RFC3339, o.Start)
			ov.End, err2 = time.Parse(time.RFC3339, o.End)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("the bridge's override %d of %s: %w", o.ID, l.Name, err)
			}
			for _, m := range o.Members {
				member := oncall.Member{Name: m.Name, Number: m.Number}
				if m.Name != "" {
					if known, err := dir.Lookup(m.Name); err == nil {
						member = known
					}
				}
				ov.Members = append(ov.Members, member)
			}
			out[l.Name] = append(out[l.Name], ov)
		}
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b oncall.Override) int { return int(a.ID - b.ID) })
	}
	return out, nil
}

// runOverrideCommand is `smsbridge oncall override add|list|delete`. It
// exits 0 when the bridge did it, 1 when it refused or could not be
// reached, 2 for a usage error.
func runOverrideCommand(cmd string, cmds oncallCommands, stdout, stderr io.Writer) int {
	f := cmds.flags
	name := strings.TrimPrefix(cmd, "oncall ")
	fail := func(err error) int {
		fmt.Fprintf(stderr, "smsbridge oncall %s: %v\n", name, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	switch cmd {
	case cmds.add.FullCommand():
		body, err := json.Marshal(map[string]any{"members": f.members, "start": f.start, "end": f.end})
		if err != nil {
			return fail(err)
		}
		var o overrideReply
		if err := bridgeCall(f, http.MethodPost, "/api/v1/oncall/"+url.PathEscape(f.list)+"/overrides", body, http.StatusCreated, &o); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "override %d on %s: %s from %s until %s\n", o.ID, o.List, o.people(), o.Start, o.End)
	case cmds.list.FullCommand():
		var reply oncallReply
		if err := bridgeCall(f, http.MethodGet, "/api/v1/oncall", nil, http.StatusOK, &reply); err != nil {
			return fail(err)
		}
		found := f.list == ""
		var b strings.Builder
		for _, l := range reply.Oncall {
			if f.list != "" && l.Name != f.list {
				continue
			}
			found = true
			for _, o := range l.Overrides {
				id := "config"
				if o.Source == "api" {
					id = strconv.FormatInt(o.ID, 10)
				}
				fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\n", l.Name, id, o.Start, o.End, o.people())
			}
		}
		if !found {
			return fail(fmt.Errorf("the bridge has no on-call list named %q", f.list))
		}
		if b.Len() == 0 {
			fmt.Fprintln(stdout, "no overrides")
			return 0
		}
		_, _ = io.WriteString(stdout, "ONCALL\tID\tSTART\tEND\tMEMBERS\n"+b.String())
	case cmds.del.FullCommand():
		if err := bridgeCall(f, http.MethodDelete, fmt.Sprintf("/api/v1/oncall/%s/overrides/%d", url.PathEscape(f.list), f.id), nil, http.StatusOK, nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "override %d on %s deleted\n", f.id, f.list)
	}
	return 0
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ error }

// bridgeCall sends one request to the bridge's admin API and decodes the
// answer into out when it has the status want.
func bridgeCall(f *oncallFlags, method, path string, body []byte, want int, out any) error {
	base, err := url.Parse(f.url)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageError{fmt.Errorf("--url %q is not an http or https URL", f.url)}
	}
	if base.User != nil {
		return usageError{errors.New("put no credentials in --url; use --web.username and --web.password-file")}
	}
	if (f.username == "") != (f.passwordFile == "") {
		return usageError{errors.New("--web.username and --web.password-file go together")}
	}
	var password string
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return usageError{fmt.Errorf("read password: %w", err)}
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base.String(), "/")+path, bytes.NewReader(body))
	if err != nil {
		return usageError{err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if f.username != "" {
		req.SetBasicAuth(f.username, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no answer from the bridge at %s (is it running?): %w", base.Redacted(), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the bridge's answer: %w", err)
	}
	if resp.StatusCode == want {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("the bridge's answer is not what smsbridge sends: %w", err)
		}
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return errors.New("the bridge wants credentials (401): pass --web.username and --web.password-file")
	case json.Unmarshal(raw, &e) == nil && e.Error != "":
		return fmt.Errorf("the bridge answered %d: %s", resp.StatusCode, e.Error)
	}
	return fmt.Errorf("the bridge answered %s: is %s a smsbridge?", resp.Status, base.Redacted())
}
