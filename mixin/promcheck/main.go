// Command promcheck validates smsbridge's monitoring files with the
// Prometheus and Alertmanager code that will load them: alerts.yml with
// Prometheus's rule-file validation (what `promtool check rules` runs:
// strict YAML, PromQL parsing, template parsing), every dashboard query
// with the PromQL parser, and the example alertmanager.yml with
// Alertmanager's config loader.
//
// It is its own Go module so that the bridge itself does not depend on
// Prometheus. Run it from the repository root:
//
//	go -C mixin/promcheck run . ../..
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	problems := run(root, os.Stdout)
	if problems > 0 {
		fmt.Printf("promcheck: %d problems\n", problems)
		os.Exit(1)
	}
	fmt.Println("promcheck: all files valid")
}

// run checks the files under the repository root and returns how many
// problems it printed.
func run(root string, w io.Writer) int {
	problems := 0
	report := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		problems++
	}
	p := parser.NewParser(parser.Options{})

	rulesFile := filepath.Join(root, "mixin", "alerts.yml")
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		report("%v", err)
	}
	if groups != nil {
		n := 0
		for _, g := range groups.Groups {
			n += len(g.Rules)
		}
		fmt.Fprintf(w, "%s: %d groups, %d rules: valid\n", rulesFile, len(groups.Groups), n)
	}

	dashFile := filepath.Join(root, "mixin", "dashboard.json")
	exprs, err := dashboardExprs(dashFile)
	if err != nil {
		report("%s: %v", dashFile, err)
	}
	// Grafana substitutes its variables before the query reaches
	// Prometheus; stand-ins of the same kind keep the parse faithful.
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"$job", "smsbridge", "$instance", "smsbridge:9754")
	for where, expr := range exprs {
		if _, err := p.ParseExpr(vars.Replace(expr)); err != nil {
			report("%s: %s: %v", dashFile, where, err)
		}
	}
	fmt.Fprintf(w, "%s: %d queries parsed\n", dashFile, len(exprs))

	amFile := filepath.Join(root, "examples", "alertmanager", "alertmanager.yml")
	if _, err := amconfig.LoadFile(amFile); err != nil {
		report("%s: %v", amFile, err)
	} else {
		fmt.Fprintf(w, "%s: valid\n", amFile)
	}
	return problems
}

// dashboardExprs returns every query of the dashboard by panel title and
// refId, including panels nested in collapsed rows.
func dashboardExprs(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode dashboard: %w", err)
	}
	out := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out[p.Title+"/"+t.RefID] = t.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out, nil
}
