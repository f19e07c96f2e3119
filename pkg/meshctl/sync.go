package meshctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/sync/route"
	"github.com/ringmesh/ringmesh/pkg/view"
)

// syncTargetsCmd is `meshctl sync targets NODE`: every candidate receiver
// of NODE's data, chosen or rejected, and why (the leader's router plan).
func syncTargetsCmd(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "targets NODE",
		ValidArgsFunction: completeNodes(o),
		Short:             "Show every candidate sync target of a node, chosen or rejected, and why",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			if err := mesh.ValidateNodeID(node); err != nil {
				return fmt.Errorf("node %q: %w", node, err)
			}
			var r api.Routes
			if err := o.call(api.OpRoutes, nil, &r); err != nil {
				return err
			}
			plan, ok := r.Plans[node]
			if !ok {
				return fmt.Errorf("no routing plan for %s: only live (healthy or degraded) ephemeral nodes get sync targets; see meshctl status", node)
			}
			if o.JSON {
				return o.printJSON(plan)
			}
			return printTargets(o.out, node, plan)
		},
	}
}

func printTargets(w io.Writer, node string, plan []route.Choice) error {
	n := len(route.Selected(plan))
	if n == 0 {
		fmt.Fprintf(w, "%s has NO sync target: its data exists only on the node\n\n", node)
	} else {
		fmt.Fprintf(w, "%s pushes to %d target(s)\n\n", node, n)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CANDIDATE\tCHOSEN\tRANK\tCLASSES\tDISK FREE\tUSED\tWHY")
	for _, c := range plan {
		chosen, rank, classes := "no", "-", "-"
		if c.Selected {
			chosen, rank = "yes", fmt.Sprint(c.Rank)
			var cs []string
			for _, cl := range c.Classes {
				cs = append(cs, string(cl))
			}
			classes = strings.Join(cs, ",")
		}
		free, used := view.Unknown, view.Unknown
		if c.DiskUsedPercent != nil {
			free, used = view.Bytes(c.DiskFreeBytes), fmt.Sprintf("%.1f%%", *c.DiskUsedPercent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.NodeID, chosen, rank, classes, free, used, oneLine(c.Reason, 200))
	}
	return tw.Flush()
}

// eventQuery is `meshctl events --kind K [--node N]`.
type eventQuery struct {
	kind, node string
	since      time.Duration
	limit      int
	follow     bool
}

// showEvents reads the agents' events of one kind (and node) through the
// coordinator's events API (meshctl's credentials have no stream access),
// the newest limit since the given time, and with follow keeps polling for
// new ones until interrupted.
func (o *Options) showEvents(q eventQuery) error {
	node := "*"
	if q.node != "" {
		if err := mesh.ValidateNodeID(q.node); err != nil {
			return fmt.Errorf("--node %q: %w", q.node, err)
		}
		node = q.node
	}
	if _, _, err := bus.ParseEventSubject(bus.Prefix + ".evt.x." + q.kind); err != nil {
		return fmt.Errorf("--kind %q: want one of hello, heartbeat, health, preempt, sync, bye", q.kind)
	}
	c, closeFn, err := o.client()
	if err != nil {
		return err
	}
	defer closeFn()
	req := api.EventsRequest{Kind: q.kind, Node: q.node, Since: time.Now().Add(-q.since), Limit: api.EventsMaxLimit}
	// page fetches the events after req.AfterSeq, one page per call.
	page := func() (api.Events, error) {
		ctx, cancel := o.ctx()
		defer cancel()
		var ev api.Events
		if err := refused(c, c.Call(ctx, api.OpEvents, req, &ev)); err != nil {
			return ev, fmt.Errorf("read %s events: %w", q.kind, err)
		}
		if ev.NextSeq > req.AfterSeq {
			req.AfterSeq = ev.NextSeq
		}
		req.Since = time.Time{}
		return ev, nil
	}
	type item struct {
		at   time.Time
		env  bus.Envelope
		size int // > 0: too large to show, only its size is known
	}
	decode := func(e api.EventEntry) (item, bool) {
		it := item{at: e.At}
		if e.Envelope == nil {
			it.size = e.Size
			it.env.Node, _, _ = bus.ParseEventSubject(e.Subject)
			return it, true
		}
		if json.Unmarshal(e.Envelope, &it.env) != nil {
			return it, false
		}
		if q.kind == bus.KindSync {
			var ev events.Sync
			if json.Unmarshal(it.env.Body, &ev) != nil || ev.Phase == "progress" {
				return it, false // progress is shown by meshctl sync itself
			}
		}
		return it, true
	}
	print := func(it item) {
		if it.size > 0 {
			if o.JSON {
				_ = json.NewEncoder(o.out).Encode(map[string]any{"at": it.at, "node": it.env.Node, "kind": q.kind, "size": it.size})
				return
			}
			fmt.Fprintf(o.out, "%s  %s  %s  (%d bytes, too large to show)\n", it.at.UTC().Format("2006-01-02T15:04:05Z"), view.Clean(it.env.Node), q.kind, it.size)
			return
		}
		if o.JSON {
			_ = json.NewEncoder(o.out).Encode(map[string]any{"at": it.at, "node": it.env.Node, "kind": q.kind, "body": it.env.Body})
			return
		}
		printEvent(o.out, it.at, it.env, q.kind)
	}
	var hist []item
	for {
		ev, err := page()
		if err != nil {
			return err
		}
		for _, e := range ev.Items {
			if it, ok := decode(e); ok {
				hist = append(hist, it)
				if q.limit > 0 && len(hist) > q.limit {
					hist = hist[1:]
				}
			}
		}
		if !ev.More {
			break
		}
	}
	if len(hist) == 0 && !q.follow {
		fmt.Fprintf(o.out, "no %s events for %s in the last %s\n", q.kind, strings.ReplaceAll(node, "*", "any node"), q.since)
		return nil
	}
	for _, it := range hist {
		print(it)
	}
	if !q.follow {
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		ev, err := page()
		if err != nil {
			fmt.Fprintln(o.errOut, err) // a glitch: keep following
			continue
		}
		for _, e := range ev.Items {
			if it, ok := decode(e); ok {
				print(it)
			}
		}
	}
}

// printEvent writes one event on a line; sync results and flushes list
// what did not make it, one file per line.
func printEvent(w io.Writer, at time.Time, env bus.Envelope, kind string) {
	ts := at.UTC().Format("2006-01-02T15:04:05Z")
	if kind != bus.KindSync {
		fmt.Fprintf(w, "%s  %s  %s  %s\n", ts, view.Clean(env.Node), kind, oneLine(view.Clean(string(env.Body)), 200))
		return
	}
	var ev events.Sync
	_ = json.Unmarshal(env.Body, &ev)
	risk := view.Unknown
	if ev.RPO.UnsyncedBytes != nil {
		risk = view.Bytes(*ev.RPO.UnsyncedBytes)
		if ev.RPO.UnsyncedFiles != nil {
			risk += fmt.Sprintf(" in %d files", *ev.RPO.UnsyncedFiles)
		}
	}
	fmt.Fprintf(w, "%s  %s  %-6s %-24s made %d, missed %d, sent %s, at risk %s", ts, view.Clean(env.Node), view.Clean(ev.Phase), oneLine(view.Clean(ev.Trigger), 24),
		len(ev.Made), len(ev.Missed), view.Bytes(ev.BytesSent), risk)
	if ev.Error != "" {
		fmt.Fprintf(w, ", error: %s", oneLine(view.Clean(ev.Error), 160))
	}
	fmt.Fprintln(w)
	const maxFiles = 20
	for i, f := range ev.Missed {
		if i == maxFiles {
			fmt.Fprintf(w, "    ... and %d more missed\n", len(ev.Missed)-maxFiles)
			break
		}
		fmt.Fprintf(w, "    missed %s (%s): %s\n", view.Clean(f.Path), view.Bytes(f.Size), oneLine(view.Clean(f.Reason), 160))
	}
}
