package meshctl

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/view"
)

// LaunchResult is what `meshctl launch --yes --json` prints: the launch and
// where it stood when meshctl stopped waiting.
type LaunchResult struct {
	Launch api.Launch        `json:"launch"`
	Status *api.LaunchStatus `json:"status,omitempty"`
}

func launchCmd(o *Options) *cobra.Command {
	var (
		r            api.LaunchRequest
		count        int
		kind         string
		yes          bool
		wait         time.Duration
		poll         time.Duration
		cloudTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "launch",
		Short: "Rent a new node from an offer (dry-run unless --yes)",
		Long: `Rent one instance: the offer --offer ID (from meshctl offers), or the cheapest offer matching
--gpu/--count/--max-price (--provider, --region, --kind narrow it). Without --yes it only shows what
it would rent and what it costs per hour and per day, and the budget caps it was checked against.
With --yes it creates the instance with a startup script that runs the agent for the node, then
waits (--wait) until the node is healthy in the registry, or says where it stopped: created,
booting, agent not seen, unhealthy.

The request ID makes a retried launch create one instance, not two: it defaults to a hash of the
arguments plus a nonce of this invocation, printed so that a launch whose answer was lost can be
retried with --request-id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for flag, v := range map[string]string{"--gpu": r.Filter.GPUModel, "--region": r.Region} {
				if v != "" && !offerArgRe.MatchString(v) {
					return fmt.Errorf("%s %q: want letters, digits, spaces and . _ , ( ) - (at most 64)", flag, v)
				}
			}
			if r.OfferID == "" && r.Filter.GPUModel == "" {
				return errors.New("give --offer ID (from meshctl offers) or --gpu MODEL")
			}
			if r.OfferID != "" && (r.Filter.GPUModel != "" || count != 0 || r.Filter.MaxPricePerGPUHour != 0) {
				return errors.New("--offer names one offer: --gpu, --count and --max-price do not apply")
			}
			if count < 0 {
				return fmt.Errorf("--count %d: must be >= 0", count)
			}
			if count > 0 {
				r.Filter.MinGPUs, r.Filter.MaxGPUs = count, count
			}
			switch kind {
			case "", "any":
			case "spot", "interruptible":
				r.Interruptible = providers.Ptr(true)
			case "on-demand":
				r.Interruptible = providers.Ptr(false)
			default:
				return fmt.Errorf("--kind %q: want any, on-demand or spot", kind)
			}
			if err := r.Filter.Validate(); err != nil {
				return err
			}
			if cloudTimeout > api.MaxOffersTimeout {
				return fmt.Errorf("--cloud-timeout %s: at most %s", cloudTimeout, api.MaxOffersTimeout)
			}
			r.TimeoutSeconds = cloudTimeout.Seconds()
			if wait < 0 || poll <= 0 {
				return errors.New("--wait must be >= 0 and --poll > 0")
			}
			nonce := ""
			if r.RequestID == "" {
				var err error
				if r.RequestID, nonce, err = deriveRequestID(r); err != nil {
					return err
				}
			} else if err := providers.ValidRequestID(r.RequestID); err != nil {
				return fmt.Errorf("--request-id: %w", err)
			}
			r.DryRun = !yes
			// The coordinator collects offers (each cloud up to --cloud-timeout) and makes the create call.
			// An explicit --timeout is kept (the launch may then finish after meshctl gave up: retry with --request-id).
			if need := cloudTimeout + 35*time.Second; o.Timeout < need && !flagChanged(cmd, "timeout") {
				o.Timeout = need
			}
			var res api.Launch
			callErr := o.call(api.OpLaunch, r, &res)
			if callErr != nil {
				if !r.DryRun {
					return fmt.Errorf("%w\n(request ID %s: a retry with --request-id %s creates at most one instance)", callErr, r.RequestID, r.RequestID)
				}
				return callErr
			}
			if r.DryRun {
				if o.JSON {
					return o.printJSON(res)
				}
				printLaunch(o, res)
				fmt.Fprintf(o.out, "dry run: nothing created; add --yes to create it\n")
				return nil
			}
			if !o.JSON {
				printLaunch(o, res)
				fmt.Fprintf(o.out, "%s\n", view.Clean(res.Message))
				if nonce != "" {
					fmt.Fprintf(o.out, "request ID %s (nonce %s): retry with --request-id %s\n", r.RequestID, nonce, r.RequestID)
				}
			}
			out := LaunchResult{Launch: res}
			if wait == 0 {
				if o.JSON {
					return o.printJSON(out)
				}
				return nil
			}
			st, err := o.waitLaunch(cmd, r.RequestID, wait, poll)
			out.Status = st
			if o.JSON {
				if perr := o.printJSON(out); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&r.OfferID, "offer", "", "offer ID as meshctl offers shows it (Vast ask, RunPod GPU type, Lambda instance type)")
	fl.StringVar(&r.Provider, "provider", "", "only this cloud")
	fl.StringVar(&r.Region, "region", "", "region as the cloud names it (RunPod: SECURE or COMMUNITY)")
	fl.StringVar(&kind, "kind", "any", "any, on-demand or spot (interruptible/bid)")
	fl.StringVar(&r.Filter.GPUModel, "gpu", "", `GPU model, e.g. "RTX 4090"`)
	fl.IntVar(&count, "count", 0, "exact GPU count")
	fl.Float64Var(&r.Filter.MinGPUMemGiB, "gpu-mem", 0, "at least this much memory per GPU, GiB")
	fl.Float64Var(&r.Filter.MaxPricePerGPUHour, "max-price", 0, "ceiling in USD per GPU-hour")
	fl.Float64Var(&r.Filter.MinReliability, "min-reliability", 0, "Vast hosts: reliability at least (0..1)")
	fl.BoolVar(&r.Filter.VerifiedOnly, "verified", false, "Vast hosts: verified only")
	fl.StringVar(&r.Node, "name", "", "node ID of the new node (default: <provider>-<gpu>-<request ID tail>)")
	fl.StringVar(&r.RequestID, "request-id", "", "idempotency key (default: derived from the arguments and a nonce, printed)")
	fl.StringVar(&r.Image, "image", "", "container/OS image (default: the cloud client's)")
	fl.IntVar(&r.DiskGiB, "disk", 0, "disk GiB (default: the cloud client's)")
	fl.StringVar(&r.SSHKeyName, "ssh-key", "", "SSH key name held by the cloud (Lambda requires one)")
	fl.StringVar(&r.Reason, "reason", "", "why, for the audit stream")
	fl.BoolVar(&yes, "yes", false, "create it (default: dry run)")
	fl.DurationVar(&wait, "wait", 10*time.Minute, "after --yes, wait this long for the node to be healthy (0: do not wait)")
	fl.DurationVar(&poll, "poll", 3*time.Second, "how often to ask while waiting")
	fl.DurationVar(&cloudTimeout, "cloud-timeout", api.DefaultOffersTimeout, "how long each cloud may take to list offers (max 25s)")
	return cmd
}

// deriveRequestID hashes the launch arguments with a fresh nonce: the same
// invocation retried by hand must pass --request-id, a new invocation gets
// a new ID.
func deriveRequestID(r api.LaunchRequest) (id, nonce string, err error) {
	nb := make([]byte, 4)
	if _, err := rand.Read(nb); err != nil {
		return "", "", fmt.Errorf("request ID nonce: %w", err)
	}
	nonce = hex.EncodeToString(nb)
	h := sha256.New()
	fmt.Fprintf(h, "%q|%q|%q|%v|%+v|%q|%q|%d|%q|%s", r.OfferID, r.Provider, r.Region, r.Interruptible, r.Filter, r.Node, r.Image, r.DiskGiB, r.SSHKeyName, nonce)
	return "launch-" + hex.EncodeToString(h.Sum(nil))[:12] + "-" + nonce, nonce, nil
}

// waitLaunch polls launch_status until the node is healthy, the instance
// is gone, or wait passes; it prints each new stage.
func (o *Options) waitLaunch(cmd *cobra.Command, id string, wait, poll time.Duration) (*api.LaunchStatus, error) {
	c, closeFn, err := o.client()
	if err != nil {
		return nil, err
	}
	defer closeFn()
	deadline := time.Now().Add(wait)
	var last *api.LaunchStatus
	lastStage := ""
	for {
		ctx, cancel := o.ctx()
		var st api.LaunchStatus
		err := c.Call(ctx, api.OpLaunchStatus, api.LaunchStatusRequest{RequestID: id}, &st)
		cancel()
		if err == nil {
			last = &st
			if st.Stage != lastStage && !o.JSON {
				line := fmt.Sprintf("%s  %s", time.Now().UTC().Format("15:04:05"), st.Stage)
				if st.InstanceState != "" {
					line += "  instance " + view.Clean(st.InstanceState)
				}
				if st.NodeState != "" {
					line += "  node " + view.Clean(st.NodeState)
				}
				if st.Detail != "" {
					line += "  (" + view.Clean(st.Detail) + ")"
				}
				fmt.Fprintln(o.out, line)
			}
			lastStage = st.Stage
			switch st.Stage {
			case api.LaunchStageHealthy:
				return last, nil
			case api.LaunchStageGone:
				return last, fmt.Errorf("launch %s: instance %s is %s", id, st.InstanceID, st.InstanceState)
			}
		}
		if time.Now().After(deadline) {
			if last == nil {
				return nil, fmt.Errorf("launch %s: no status within %s: %v", id, wait, err)
			}
			return last, fmt.Errorf("launch %s: stopped at %q after %s (instance %s %s, node %s %s)", id, last.Stage, wait,
				view.Clean(last.InstanceID), dash(view.Clean(last.InstanceState)), view.Clean(last.Node), dash(view.Clean(last.NodeState)))
		}
		select {
		case <-cmd.Context().Done():
			return last, cmd.Context().Err()
		case <-time.After(poll):
		}
	}
}

func printLaunch(o *Options, res api.Launch) {
	of := res.Offer
	kind := "on-demand"
	if of.Interruptible {
		kind = "spot"
	}
	gpus := view.Unknown
	if of.GPUCount != nil {
		gpus = fmt.Sprintf("%dx %s", *of.GPUCount, dash(view.Clean(of.GPUModel)))
	}
	verb := "would rent"
	if !res.DryRun {
		verb = "renting"
	}
	fmt.Fprintf(o.out, "%-11s %s offer %s  %s  %s  %s\n", verb+":", of.Provider, view.Clean(of.ID), gpus, dash(view.Clean(of.Region)), kind)
	if res.PerHour != nil {
		fmt.Fprintf(o.out, "%-11s %.4f %s/h  %.2f %s/day  (%s)\n", "price:", *res.PerHour, view.Clean(res.Currency), *res.PerDay, view.Clean(res.Currency), view.Clean(of.Price.Source))
	} else {
		fmt.Fprintf(o.out, "%-11s unknown\n", "price:")
	}
	fmt.Fprintf(o.out, "%-11s %s\n", "node:", view.Clean(res.Node))
	if res.RequestID != "" {
		fmt.Fprintf(o.out, "%-11s %s\n", "request:", view.Clean(res.RequestID))
	}
	for _, b := range res.Budget {
		verdict := "ok"
		if b.Over {
			verdict = "OVER"
		}
		fmt.Fprintf(o.out, "%-11s %s %s: spent %.2f + (%.4f/h + %.4f/h) x %.1f h = %.2f of cap %.2f  %s\n", "budget:", b.Scope, b.Currency,
			b.Spent, b.Burn, b.Added, b.HoursLeft, b.Projected, b.Cap, verdict)
	}
	if len(res.Budget) == 0 {
		fmt.Fprintf(o.out, "%-11s no cap in scope of this offer\n", "budget:")
	}
	if res.Script != "" {
		fmt.Fprintf(o.out, "%-11s %s\n", "script:", view.Clean(res.Script))
	}
	if res.Alternatives > 0 {
		fmt.Fprintf(o.out, "%-11s %d other matching offers (meshctl offers lists them)\n", "others:", res.Alternatives)
	}
	for _, m := range res.Missing {
		fmt.Fprintf(o.out, "missing: %s: %s\n", m.Provider, view.Clean(strings.TrimSpace(m.Reason)))
	}
}

// flagChanged reports whether the flag (own or inherited) was given.
func flagChanged(cmd *cobra.Command, name string) bool {
	f := cmd.Flag(name)
	return f != nil && f.Changed
}
