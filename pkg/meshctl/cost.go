package meshctl

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
)

var sinceRe = regexp.MustCompile(`^(\d{1,4})([dh])$`)

// parseSince reads --since: "7d" (days), "36h" (hours) before now, or a UTC
// day "2026-11-25". "" is zero (all history). History is kept per UTC day,
// so the start is the UTC day of the result.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if m := sinceRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		unit := 24 * time.Hour
		if m[2] == "h" {
			unit = time.Hour
		}
		return now.Add(-time.Duration(n) * unit).UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want Nd, Nh or YYYY-MM-DD (UTC day)", s)
}

func printBudget(o *Options, b *api.CostBudget) {
	if b == nil || len(b.Lines) == 0 {
		return
	}
	fmt.Fprintf(o.out, "\nbudget for %s (UTC day):\n", b.Day)
	for _, l := range b.Lines {
		state := "within"
		if l.Over {
			state = "OVER"
		}
		line := fmt.Sprintf("  %-10s %.2f of %.2f %s  %s", l.Scope, l.Spent, l.Cap, l.Currency, state)
		if l.UnknownHours > 0 {
			line += fmt.Sprintf(" (+ %.1f h at unknown price: spend is a lower bound)", l.UnknownHours)
		}
		fmt.Fprintln(o.out, line)
	}
}
