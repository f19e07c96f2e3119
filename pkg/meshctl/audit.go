package meshctl

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// auditMaxPages bounds one `meshctl audit` run: at most this many API pages
// (each scanning at most api.AuditMaxScan stream messages).
const auditMaxPages = 50

func auditCmd(o *Options) *cobra.Command {
	var node, kind string
	var since time.Duration
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Who did what: transitions, provider calls, commands, from MESH_AUDIT (newest --limit entries, oldest first)",
		Long: `Shows the audit trail the coordinators write to MESH_AUDIT: every node state transition
with its cause, every provider call (intent and result) with the operator who asked, every
command sent to an agent. Entries are read through the coordinator API in bounded pages.

Examples:
  meshctl audit --since 1h
  meshctl audit --node vast-29129529 --kind provider_call --since 168h
  meshctl audit --kind transition --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node != "" {
				if err := mesh.ValidateNodeID(node); err != nil {
					return fmt.Errorf("--node: %w", err)
				}
			}
			if since < 0 {
				return fmt.Errorf("--since %s: want a positive duration such as 30m or 24h (0 = everything)", since)
			}
			if limit <= 0 {
				return fmt.Errorf("--limit %d: want at least 1", limit)
			}
			req := api.AuditRequest{Node: node, Kind: kind, Limit: api.AuditMaxLimit}
			if since > 0 {
				req.Since = time.Now().Add(-since)
			}
			c, closeFn, err := o.client()
			if err != nil {
				return err
			}
			defer closeFn()
			var items []api.AuditEntry
			more := false
			for page := 0; ; page++ {
				if page == auditMaxPages {
					more = true
					break
				}
				ctx, cancel := o.ctx()
				var a api.Audit
				err := c.Call(ctx, api.OpAudit, req, &a)
				cancel()
				if err != nil {
					return err
				}
				items = append(items, a.Items...)
				if len(items) > limit {
					items = items[len(items)-limit:] // keep the newest
				}
				if !a.More || a.NextSeq <= req.AfterSeq {
					break
				}
				req.AfterSeq = a.NextSeq
			}
			if o.JSON {
				return o.printJSON(struct {
					Items     []api.AuditEntry `json:"items"`
					Truncated bool             `json:"truncated"`
				}{nonNil(items), more})
			}
			if more {
				fmt.Fprintf(o.errOut, "meshctl: more than %d pages of audit entries match; showing the newest %d of those read (narrow --since, --node or --kind)\n", auditMaxPages, len(items))
			}
			return printAudit(o.out, items)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only entries about this node ID")
	cmd.Flags().StringVar(&kind, "kind", "", "only this kind: transition, provider_call, command, endpoint, policy, lease")
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "only entries from this long ago until now (0 = everything)")
	cmd.Flags().IntVar(&limit, "limit", 100, "show the newest this many matching entries")
	return cmd
}

func nonNil(s []api.AuditEntry) []api.AuditEntry {
	if s == nil {
		return []api.AuditEntry{}
	}
	return s
}

func printAudit(w io.Writer, items []api.AuditEntry) error {
	if len(items) == 0 {
		fmt.Fprintln(w, "no audit entries match")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tNODE\tWHAT\tACTOR\tCAUSE")
	for _, e := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05"), clean(e.Kind, 24), dash(clean(e.Node, 64)),
			clean(auditWhat(e), 60), clean(e.Actor, 60), clean(e.Cause, 120))
	}
	return tw.Flush()
}

// auditWhat summarises an entry: "healthy → dead", "stop vast/123 (result: ok)".
func auditWhat(e api.AuditEntry) string {
	d := e.Detail
	var s string
	switch {
	case e.From != "" || e.To != "":
		s = dash(e.From) + " → " + dash(e.To)
	case d["op"] != "":
		s = d["op"] + " " + d["provider"] + "/" + d["instance"]
		if ph := d["phase"]; ph != "" {
			res := ph
			if ph == "result" {
				res = "result: ok"
				if d["error"] != "" {
					res = "result: error " + d["error"]
				}
			}
			s += " (" + res + ")"
		}
	default:
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+d[k])
		}
		s = strings.Join(kv, " ")
	}
	if e.DryRun {
		s += " [dry run]"
	}
	return dash(s)
}

// clean makes an untrusted string safe for one terminal table cell: control
// characters (escape sequences, newlines, tabs) become spaces; long values
// are cut.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	return oneLine(s, n)
}
