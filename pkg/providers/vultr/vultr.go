// Package vultr implements providers.Provider for Vultr (API v2,
// https://api.vultr.com/v2) with github.com/vultr/govultr/v3.
//
// Operations (docs/provider-apis.md §4):
//
//	List       GET    /v2/instances?per_page=&cursor=   all pages, following meta.links.next
//	Get        GET    /v2/instances/{id}                404 -> providers.ErrNotFound
//	Start      POST   /v2/instances/{id}/start          skipped when already running (Vultr would reboot it)
//	Stop       POST   /v2/instances/{id}/halt           skipped when already halted
//	Terminate  DELETE /v2/instances/{id}                404 -> success
//	Launch     POST /v2/instances                     create an instance (launch.go)
//	prices     GET    /v2/plans                         hourly_cost, else monthly_cost/730 (USD/hour)
//
// Auth is "Authorization: Bearer <API key>", added by an http.RoundTripper; the
// key never appears in logs or errors. govultr's built-in retries
// (hashicorp/go-retryablehttp, 3 by default) are switched off: they would repeat
// a POST /halt after a 5xx whose outcome is unknown. Retries, backoff and the
// circuit breaker belong to the caller (providers resilience layer); every
// error is a *providers.Error whose Kind tells what may be retried.
//
// Billing facts: Vultr bills hourly (minimum 1 h) and halted instances keep
// billing until destroyed, so Capabilities().BillsWhileStopped is true.
// SSH is direct: root@main_ip:22.
package vultr

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/vultr/govultr/v3"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Name is the registry key of this provider.
const Name = "vultr"

// DefaultBaseURL is Vultr's API host; govultr appends the "/v2/..." paths.
const DefaultBaseURL = "https://api.vultr.com"

// Options configures a Provider.
type Options struct {
	// APIKey is the Vultr API key (Bearer token). Required. Resolve it with
	// providers.ResolveCredential("vultr", ...); it is never logged.
	APIKey string
	// BaseURL overrides DefaultBaseURL (a vultrfake.Server's URL() in tests).
	BaseURL string
	// HTTPClient supplies the transport and overall request timeout. Default:
	// a client with a 30 s timeout (the original system's HTTP timeout).
	HTTPClient *http.Client
	// PerPage is the list page size, 1..500 (API default 100). Default 100.
	PerPage int
	// PlanCacheTTL is how long the plan catalogue (prices) is reused, seconds
	// granularity. Default 1 h. Prices change rarely; instance state is never cached.
	PlanCacheTTL time.Duration
	// Logger receives warnings (e.g. plan catalogue unavailable). Default: disabled.
	Logger *zerolog.Logger
}

// Provider is a Vultr account. It is safe for concurrent use.
type Provider struct {
	client  *govultr.Client
	perPage int
	ttl     time.Duration
	log     zerolog.Logger

	mu       sync.Mutex
	plans    map[string]plan
	plansAt  time.Time
	plansErr error
	now      func() time.Time
}

var _ providers.Provider = (*Provider)(nil)

// New builds a Provider. It does no I/O.
func New(opts Options) (*Provider, error) {
	if strings.TrimSpace(opts.APIKey) == "" {
		return nil, fmt.Errorf("vultr: %w: API key is empty", providers.ErrNotConfigured)
	}
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("vultr: invalid base URL %q", base)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	authed := *hc
	authed.Transport = &bearerTransport{key: strings.TrimSpace(opts.APIKey), base: rt, timeout: hc.Timeout}
	authed.Timeout = 0 // applied by bearerTransport (see there why)

	c := govultr.NewClient(&authed)
	if err := c.SetBaseURL(strings.TrimRight(base, "/")); err != nil {
		return nil, fmt.Errorf("vultr: invalid base URL %q: %v", base, err)
	}
	c.SetRetryLimit(0)
	c.SetUserAgent("ringmesh")

	p := &Provider{
		client:  c,
		perPage: opts.PerPage,
		ttl:     opts.PlanCacheTTL,
		log:     zerolog.Nop(),
		now:     time.Now,
	}
	if opts.Logger != nil {
		p.log = opts.Logger.With().Str("provider", Name).Logger()
	}
	if p.perPage <= 0 {
		p.perPage = 100
	}
	if p.perPage > 500 {
		p.perPage = 500
	}
	if p.ttl <= 0 {
		p.ttl = time.Hour
	}
	return p, nil
}

// Name returns "vultr".
func (p *Provider) Name() string { return Name }

// Capabilities: stop (halt) and start are supported; halted instances keep
// billing (docs.vultr.com billing page); instances are not ephemeral.
func (p *Provider) Capabilities() providers.Capabilities {
	return providers.Capabilities{CanStop: true, CanStart: true, BillsWhileStopped: true, Ephemeral: mesh.Facts(mesh.ProviderVultr).Ephemeral, NoticeSeconds: mesh.Facts(mesh.ProviderVultr).NoticeSeconds()}
}

// List returns every instance of the account, following meta.links.next
// cursors until it is empty. A failure on any page fails the whole call
// (a partial list would look like vanished instances). When the plan catalogue
// cannot be fetched, instances are still returned with unknown prices.
func (p *Provider) List(ctx context.Context) ([]providers.Instance, error) {
	var all []govultr.Instance
	opts := &govultr.ListOptions{PerPage: p.perPage}
	seen := map[string]bool{}
	for {
		cctx, rec := withRecord(ctx)
		page, meta, _, err := p.client.Instance.List(cctx, opts)
		if err != nil {
			return nil, classify(cctx, "list", err, rec)
		}
		all = append(all, page...)
		if meta == nil || meta.Links == nil || meta.Links.Next == "" {
			break
		}
		if seen[meta.Links.Next] {
			return nil, &providers.Error{Provider: Name, Op: "list", Kind: providers.KindInvalid,
				Err: fmt.Errorf("pagination cursor %q repeats", meta.Links.Next)}
		}
		seen[meta.Links.Next] = true
		opts.Cursor = meta.Links.Next
	}
	plans := p.planCatalogue(ctx)
	out := make([]providers.Instance, 0, len(all))
	for _, in := range all {
		out = append(out, toInstance(in, plans))
	}
	return out, nil
}

// Get returns one instance; a *providers.Error of KindNotFound (matching
// providers.ErrNotFound) when Vultr answers 404.
func (p *Provider) Get(ctx context.Context, id string) (providers.Instance, error) {
	in, err := p.get(ctx, "get", id)
	if err != nil {
		return providers.Instance{}, err
	}
	return toInstance(*in, p.planCatalogue(ctx)), nil
}

func (p *Provider) get(ctx context.Context, op, id string) (*govultr.Instance, error) {
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	cctx, rec := withRecord(ctx)
	in, _, err := p.client.Instance.Get(cctx, id)
	if err != nil {
		return nil, classify(cctx, op, err, rec)
	}
	if in == nil || in.ID == "" {
		return nil, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("response has no \"instance\" object for %s", id)}
	}
	return in, nil
}

// Start powers a halted instance on (POST /instances/{id}/start). Vultr's start
// reboots an instance that is already running, so Start first reads the
// instance and does nothing when it is running, starting or pending.
func (p *Provider) Start(ctx context.Context, id string) error {
	in, err := p.get(ctx, "start", id)
	if err != nil {
		return err
	}
	switch mapState(in.Status, in.PowerStatus, in.ServerStatus) {
	case providers.StateRunning, providers.StateStarting, providers.StatePending:
		return nil
	}
	cctx, rec := withRecord(ctx)
	return classify(cctx, "start", p.client.Instance.Start(cctx, id), rec)
}

// Stop halts an instance (POST /instances/{id}/halt): power off without
// destroying it. The instance keeps billing. An instance that is already
// halted is left alone (no API call).
func (p *Provider) Stop(ctx context.Context, id string) error {
	in, err := p.get(ctx, "stop", id)
	if err != nil {
		return err
	}
	if strings.EqualFold(in.PowerStatus, "stopped") {
		return nil
	}
	cctx, rec := withRecord(ctx)
	return classify(cctx, "stop", p.client.Instance.Halt(cctx, id), rec)
}

// Terminate destroys an instance (DELETE /instances/{id}). An instance that is
// already gone (404) counts as terminated.
func (p *Provider) Terminate(ctx context.Context, id string) error {
	if err := checkID("terminate", id); err != nil {
		return err
	}
	cctx, rec := withRecord(ctx)
	err := classify(cctx, "terminate", p.client.Instance.Delete(cctx, id), rec)
	if providers.KindOf(err) == providers.KindNotFound {
		return nil
	}
	return err
}

// checkID rejects IDs that would change the request path.
func checkID(op, id string) error {
	if id == "" || strings.ContainsAny(id, "/?#% \t\n") {
		return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("invalid instance id %q", id)}
	}
	return nil
}

// planCatalogue returns the cached plan map, refreshing it after the TTL. On a
// refresh failure the previous catalogue (possibly nil) is kept and a warning
// logged; prices then stay unknown rather than 0.
func (p *Provider) planCatalogue(ctx context.Context) map[string]plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plans != nil && p.now().Sub(p.plansAt) < p.ttl {
		return p.plans
	}
	// Back off a failed refresh for a minute so a broken /plans does not double
	// every reconcile's API calls.
	if p.plansErr != nil && p.now().Sub(p.plansAt) < time.Minute {
		return p.plans
	}
	plans, err := p.fetchPlans(ctx)
	p.plansAt = p.now()
	p.plansErr = err
	if err != nil {
		p.log.Warn().Err(err).Msg("vultr plan catalogue unavailable; prices unknown")
		return p.plans
	}
	p.plans = plans
	return plans
}

// fetchPlans reads GET /v2/plans (all types, all pages) through govultr's
// request plumbing but decodes into plan, which keeps hourly_cost and gpu_count.
func (p *Provider) fetchPlans(ctx context.Context) (map[string]plan, error) {
	out := map[string]plan{}
	const perPage = 500
	cursor := ""
	seen := map[string]bool{}
	for {
		cctx, rec := withRecord(ctx)
		req, err := p.client.NewRequest(cctx, http.MethodGet, "/v2/plans", nil)
		if err != nil {
			return nil, err
		}
		q := url.Values{}
		q.Set("per_page", strconv.Itoa(perPage))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		req.URL.RawQuery = q.Encode()
		var body plansResponse
		if _, err := p.client.DoWithContext(cctx, req, &body); err != nil {
			return nil, classify(cctx, "plans", err, rec)
		}
		for _, pl := range body.Plans {
			if pl.ID != "" {
				out[pl.ID] = pl
			}
		}
		if body.Meta == nil || body.Meta.Links == nil || body.Meta.Links.Next == "" || seen[body.Meta.Links.Next] {
			return out, nil
		}
		seen[body.Meta.Links.Next] = true
		cursor = body.Meta.Links.Next
	}
}
