package meshctl

import (
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/view"
)

// offerArgRe is what --gpu and --region may contain (model names such as
// "RTX 4090", regions such as "us-east-1" or "Texas, US").
var offerArgRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._,()-]{0,63}$`)

func offersCmd(o *Options) *cobra.Command {
	var (
		f            providers.OfferFilter
		count        int
		kind         string
		eurUSD       float64
		limit        int
		cloudTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "offers",
		Short: "What every configured cloud would rent now, ranked by price per GPU-hour",
		Long: `List offers from every configured cloud in one table, cheapest per GPU-hour first.
Prices are shown in the cloud's currency with their source; EUR is converted to USD
only with an explicit --eur-usd rate. A figure a cloud does not give is shown as ?.
Clouds that timed out, failed or have no offers API are listed as missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for flag, v := range map[string]string{"--gpu": f.GPUModel, "--region": f.Region} {
				if v != "" && !offerArgRe.MatchString(v) {
					return fmt.Errorf("%s %q: want letters, digits, spaces and . _ , ( ) - (at most 64)", flag, v)
				}
			}
			if count < 0 {
				return fmt.Errorf("--count %d: must be >= 0", count)
			}
			if count > 0 {
				f.MinGPUs, f.MaxGPUs = count, count
			}
			switch kind {
			case "", "any":
			case "spot", "interruptible":
				f.Interruptible = providers.Ptr(true)
			case "on-demand":
				f.Interruptible = providers.Ptr(false)
			default:
				return fmt.Errorf("--kind %q: want any, on-demand or spot", kind)
			}
			if err := f.Validate(); err != nil {
				return err
			}
			if eurUSD < 0 {
				return fmt.Errorf("--eur-usd %v: want a positive rate (USD per EUR)", eurUSD)
			}
			if cloudTimeout > api.MaxOffersTimeout {
				return fmt.Errorf("--cloud-timeout %s: at most %s", cloudTimeout, api.MaxOffersTimeout)
			}
			// Wait for the slowest cloud's deadline plus time to merge and answer.
			wait := cloudTimeout
			if wait <= 0 {
				wait = api.DefaultOffersTimeout
			}
			if need := wait + 5*time.Second; o.Timeout < need {
				o.Timeout = need
			}
			req := api.OffersRequest{Filter: f, EURUSD: eurUSD, Limit: limit, TimeoutSeconds: cloudTimeout.Seconds()}
			var res api.Offers
			if err := o.call(api.OpOffers, req, &res); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(res)
			}
			printOffers(o, res)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.GPUModel, "gpu", "", `GPU model, e.g. "RTX 4090", "H100" (normalised like instance GPUs)`)
	fl.IntVar(&count, "count", 0, "exact GPU count (sets --min-gpus and --max-gpus)")
	fl.IntVar(&f.MinGPUs, "min-gpus", 0, "at least this many GPUs")
	fl.IntVar(&f.MaxGPUs, "max-gpus", 0, "at most this many GPUs")
	fl.Float64Var(&f.MinGPUMemGiB, "gpu-mem", 0, "at least this much memory per GPU, GiB")
	fl.Float64Var(&f.MaxPricePerGPUHour, "max-price", 0, "ceiling in USD per GPU-hour (EUR offers pass only with --eur-usd)")
	fl.StringVar(&f.Region, "region", "", "region as the cloud names it")
	fl.StringVar(&kind, "kind", "any", "any, on-demand or spot (interruptible/bid)")
	fl.Float64Var(&f.MinReliability, "min-reliability", 0, "Vast hosts: reliability at least (0..1)")
	fl.BoolVar(&f.VerifiedOnly, "verified", false, "Vast hosts: verified only")
	fl.BoolVar(&f.IncludeCPU, "cpu", false, "also list offers without GPUs (Hetzner, Vultr CPU plans)")
	fl.Float64Var(&eurUSD, "eur-usd", 0, "convert EUR prices to USD at this explicit rate (USD per EUR) for ranking")
	fl.IntVar(&limit, "limit", 0, fmt.Sprintf("rows at most (default %d, max %d)", api.DefaultOffersLimit, api.MaxOffersLimit))
	fl.DurationVar(&cloudTimeout, "cloud-timeout", api.DefaultOffersTimeout, "how long each cloud may take to answer (max 25s)")
	return cmd
}

func fmtPtr(p *float64, format string) string {
	if p == nil {
		return view.Unknown
	}
	return fmt.Sprintf(format, *p)
}

func printOffers(o *Options, res api.Offers) {
	tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tOFFER\tGPU\tGPU MEM\tREGION\tKIND\t$/GPU-H\tPRICE/H\tSOURCE\tHOST")
	for _, of := range res.Offers {
		gpus := view.Unknown
		if of.GPUCount != nil {
			gpus = fmt.Sprintf("%dx %s", *of.GPUCount, dash(view.Clean(of.GPUModel)))
			if *of.GPUCount == 0 {
				gpus = "none"
			}
		}
		kind := "on-demand"
		if of.Interruptible {
			kind = "spot"
		}
		per := view.Unknown
		if of.PerGPUHour != nil {
			per = fmt.Sprintf("%.4f %s", *of.PerGPUHour, of.RankCurrency)
			if of.Conversion != "" {
				per += " *"
			}
		}
		price := view.Unknown
		if of.Price.Known() {
			price = fmt.Sprintf("%.4f %s", of.Price.PerHour, view.Clean(of.Price.Currency))
		}
		host := "-"
		if of.Marketplace {
			rel, ver := view.Unknown, view.Unknown
			if of.Reliability != nil {
				rel = fmt.Sprintf("%.3f", *of.Reliability)
			}
			if of.Verified != nil {
				ver = map[bool]string{true: "verified", false: "unverified"}[*of.Verified]
			}
			host = ver + " rel " + rel
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", of.Provider, view.Clean(of.ID), gpus, fmtPtr(of.GPUMemGiB, "%.0f GiB"),
			dash(view.Clean(of.Region)), kind, per, price, dash(view.Clean(of.Price.Source)), host)
	}
	tw.Flush()
	fmt.Fprintf(o.out, "\n%d offers", res.Total)
	if res.Truncated {
		fmt.Fprintf(o.out, " (%d shown; use --limit or narrower filters)", len(res.Offers))
	}
	fmt.Fprintln(o.out)
	if res.EURUSD > 0 {
		fmt.Fprintf(o.out, "* EUR prices converted at %g USD/EUR: %s\n", res.EURUSD, res.RateSource)
	} else {
		fmt.Fprintln(o.out, "EUR prices are shown as EUR and rank after USD ones (give --eur-usd RATE to convert)")
	}
	if res.Incomparable > 0 {
		fmt.Fprintf(o.out, "%d offers left out: their price cannot be compared with --max-price (EUR without --eur-usd, or unknown)\n", res.Incomparable)
	}
	for _, m := range res.Missing {
		fmt.Fprintf(o.out, "missing: %s: %s\n", m.Provider, view.Clean(strings.TrimSpace(m.Reason)))
	}
}
