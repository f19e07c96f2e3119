package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/internal/policy"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bootstrap"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// defaultLaunchClaimStale is how long, by default (Config.LaunchClaimStale),
// a claim of a launch request by a coordinator that never finished it (it
// died mid-call) blocks a retry. After it, a retry looks for the request ID
// at the cloud before it picks an offer or creates anything.
const defaultLaunchClaimStale = 5 * time.Minute

// errLaunchInFlight: another call (or coordinator) is applying the same launch request.
var errLaunchInFlight = errors.New("launch in flight")

// launchArgRe bounds the free-text fields of a launch (image, SSH key name).
var launchArgRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$`)

// launchRecord is what KV mesh_state holds under launch_<request ID>.
type launchRecord struct {
	State    string    `json:"state"` // "claimed", "outcome unknown", "done"
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Node     string    `json:"node"`
	Provider string    `json:"provider"`
	// Offer is the offer the claimant chose (absent in records written
	// before it was kept).
	Offer     *providers.Offer    `json:"offer,omitempty"`
	Instance  *providers.Instance `json:"instance,omitempty"`
	Result    *api.Launch         `json:"result,omitempty"`
	Error     string              `json:"error,omitempty"`
	CreatedAt time.Time           `json:"created_at"`
	// TokenHashes are the SHA-256 (hex) of the enrollment tokens the
	// startup scripts of this request's create calls carried, so a retry
	// that finds the instance binds the token it really has.
	TokenHashes []string `json:"token_hashes,omitempty"`
}

func launchKey(id string) string { return "launch_" + id }

func (c *Coordinator) apiLaunch(ctx context.Context, req []byte) (any, error) {
	var r api.LaunchRequest
	if err := json.Unmarshal(req, &r); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	return c.launch(ctx, r, actor(ctx, ""))
}

// validateLaunch checks a launch request's fields; errors name the field.
func validateLaunch(r api.LaunchRequest) error {
	if r.RequestID == "" && !r.DryRun {
		return errors.New("bad request: request_id is required to launch (it makes a retried launch create one instance)")
	}
	if r.RequestID != "" {
		if err := providers.ValidRequestID(r.RequestID); err != nil {
			return fmt.Errorf("bad request: %w", err)
		}
	}
	if r.Node != "" {
		if err := mesh.ValidateNodeID(r.Node); err != nil {
			return fmt.Errorf("bad request: node: %w", err)
		}
	}
	if r.Provider != "" && !mesh.KnownProvider(r.Provider) {
		return fmt.Errorf("bad request: unknown provider %q (want one of %s)", r.Provider, strings.Join(mesh.Providers, ", "))
	}
	if len(r.OfferID) > 128 || strings.ContainsAny(r.OfferID, "\t\r\n/\\?#%\"'") {
		return fmt.Errorf("bad request: offer_id %q is not an offer ID", r.OfferID)
	}
	if len(r.Region) > 64 || strings.ContainsAny(r.Region, "\r\n\"'\\") {
		return fmt.Errorf("bad request: region %q is not a region", r.Region)
	}
	for field, v := range map[string]string{"image": r.Image, "ssh_key_name": r.SSHKeyName} {
		if v != "" && !launchArgRe.MatchString(v) {
			return fmt.Errorf("bad request: %s %q: want letters, digits and . _ : / @ + - (at most 200)", field, v)
		}
	}
	if r.DiskGiB < 0 || r.DiskGiB > 100000 {
		return fmt.Errorf("bad request: disk_gib %d out of range", r.DiskGiB)
	}
	if math.IsNaN(r.TimeoutSeconds) || r.TimeoutSeconds < 0 {
		return errors.New("bad request: timeout_seconds must be >= 0")
	}
	if len(r.Reason) > 500 {
		return errors.New("bad request: reason is at most 500 characters")
	}
	return r.Filter.Validate()
}

// launch rents one offer for a new node behind every gate: request
// validation, the request-ID record (a request that made an instance
// answers with it, never makes a second), the budget caps, the startup
// script, the leader fence, then one create call through the resilient
// layer (which looks for the request ID at the cloud before creating).
// Every create and every refusal after the offer is chosen is audited.
func (c *Coordinator) launch(ctx context.Context, r api.LaunchRequest, who string) (api.Launch, error) {
	if err := validateLaunch(r); err != nil {
		return api.Launch{}, err
	}
	if c.cfg.Fleet == nil {
		return api.Launch{}, errors.New("no providers configured on this coordinator")
	}
	var kv jetstream.KeyValue
	var claimRev uint64
	var prevTokens []string // token hashes of earlier create calls of this request
	if !r.DryRun {
		var err error
		if kv, err = c.js.KeyValue(ctx, bus.BucketState); err != nil {
			return api.Launch{}, err
		}
		prev, rev, err := c.readLaunch(ctx, kv, r.RequestID)
		if err != nil {
			return api.Launch{}, err
		}
		if prev != nil && prev.State == "done" && prev.Result != nil {
			if prev.Instance != nil {
				c.reg.Admit(prev.Node, "launch:"+prev.Provider+"/"+prev.Instance.ID)
			}
			res := *prev.Result
			res.Stage, res.Message = "already created", "already created by request "+r.RequestID+": "+res.Message
			return res, nil
		}
		if prev != nil && prev.State == "claimed" && c.cfg.Now().Sub(prev.At) < c.cfg.LaunchClaimStale {
			return api.Launch{}, fmt.Errorf("launch request %s is being applied by coordinator %s since %s; not applying it twice (retry after %s): %w",
				r.RequestID, prev.By, prev.At.UTC().Format(time.RFC3339), c.cfg.LaunchClaimStale, errLaunchInFlight)
		}
		if prev != nil {
			// An unknown outcome or a stale claim: the earlier call may have
			// created the instance. Look for the request ID at the cloud
			// before choosing an offer (the offer it rented is gone from the
			// list); only when it is not there does the retry go ahead.
			if res, found, err := c.adoptLaunch(ctx, kv, r, who, prev, rev); err != nil || found {
				return res, err
			}
			claimRev = rev
			prevTokens = prev.TokenHashes
			if r.Node == "" {
				r.Node = prev.Node
			}
			if r.Provider == "" {
				r.Provider = prev.Provider
			}
		}
	}

	offer, alts, missing, err := c.pickOffer(ctx, r)
	if err != nil {
		return api.Launch{}, err
	}
	node := r.Node
	if node == "" {
		node = defaultLaunchNode(offer, r.RequestID)
	}
	if err := mesh.ValidateNodeID(node); err != nil {
		return api.Launch{}, fmt.Errorf("node name %q derived from the offer: %w (give --name)", node, err)
	}
	out := api.Launch{RequestID: r.RequestID, Node: node, Offer: offer, DryRun: r.DryRun, Alternatives: alts, Missing: missing}
	if offer.Price.Known() {
		ph, pd := offer.Price.PerHour, offer.Price.PerHour*24
		out.PerHour, out.PerDay, out.Currency = &ph, &pd, offer.Price.Currency
	}
	if rec, ok := c.reg.Get(node); ok && claimRev == 0 && (c.cfg.Inventory == nil || c.cfg.Inventory.Hosts[node] == nil || rec.InstanceID != "") {
		return out, fmt.Errorf("node %s already exists in the registry (%s, %s): give another --name", node, rec.Provider, rec.State)
	}

	// Budget: refuse when the new price would push a cap's projection over.
	if caps, _, hoursLeft, ok := c.budgetState(); ok {
		if !offer.Price.Known() {
			for _, cp := range caps {
				if cp.Scope == "all" || cp.Scope == offer.Provider {
					return out, c.refuseLaunch(ctx, r, who, out, "the offer's price is unknown, so it cannot be checked against the budget cap "+cp.Scope+" "+cp.Currency)
				}
			}
		}
		var over []string
		for _, ch := range policy.CheckLaunch(caps, offer.Provider, offer.Price.Currency, offer.Price.PerHour, hoursLeft) {
			out.Budget = append(out.Budget, api.BudgetCheck{Scope: ch.Cap.Scope, Currency: ch.Cap.Currency, Cap: ch.Cap.Cap, Spent: ch.Cap.Spent,
				Burn: ch.Cap.Burn, Added: ch.Added, HoursLeft: ch.HoursLeft, Projected: ch.Projected, Over: ch.Over})
			if ch.Over {
				over = append(over, fmt.Sprintf("%s %s: spent %.2f + (burn %.4f/h + this %.4f/h) x %.1f h left = %.2f projected > cap %.2f",
					ch.Cap.Scope, ch.Cap.Currency, ch.Cap.Spent, ch.Cap.Burn, ch.Added, ch.HoursLeft, ch.Projected, ch.Cap.Cap))
			}
		}
		if len(over) > 0 {
			return out, c.refuseLaunch(ctx, r, who, out, "over budget: "+strings.Join(over, "; "))
		}
	}

	scripter, err := c.startup()
	if err != nil {
		return out, err
	}
	if v, ok := scripter.(interface{ Variant() string }); ok {
		out.Script = v.Variant()
	}
	p, err := c.cfg.Fleet.Providers().Get(offer.Provider)
	if err != nil {
		return out, err
	}
	launcher, ok := providers.LauncherOf(p)
	if !ok {
		return out, fmt.Errorf("%s cannot launch: no create API in this client (%s)", offer.Provider, launchSupport)
	}
	if r.DryRun {
		out.Stage, out.Message = "dry-run", "would rent this offer (give --yes to create it)"
		return out, nil
	}
	script, env, err := scripter.Script(ctx, node, offer.Provider)
	if err != nil {
		return out, err
	}

	// Claim the request ID (create, or take over an unknown/stale one by revision).
	now := c.cfg.Now()
	tokenHashes := append([]string(nil), prevTokens...)
	if tok := env[EnvEnrollToken]; tok != "" {
		tokenHashes = append(tokenHashes, bootstrap.HashToken(tok))
	}
	claim, _ := json.Marshal(launchRecord{State: "claimed", By: c.cfg.Name, At: now, Node: node, Provider: offer.Provider, Offer: &offer, CreatedAt: now, TokenHashes: tokenHashes})
	if claimRev == 0 {
		_, err = kv.Create(ctx, launchKey(r.RequestID), claim)
	} else {
		_, err = kv.Update(ctx, launchKey(r.RequestID), claim, claimRev)
	}
	if err != nil {
		return out, fmt.Errorf("launch request %s was claimed by another coordinator at the same time; not applying it twice: %w", r.RequestID, err)
	}
	if !c.IsLeader() { // the fence: leadership may have moved while the offers were fetched
		_ = kv.Delete(context.WithoutCancel(ctx), launchKey(r.RequestID))
		return out, errors.New("this coordinator is no longer the leader; nothing was created")
	}
	lreq := providers.LaunchRequest{RequestID: r.RequestID, Node: node, Offer: offer, Image: r.Image, StartupScript: script, Env: env,
		DiskGiB: r.DiskGiB, SSHKeyName: r.SSHKeyName}
	inst, lerr := launcher.Launch(ctx, lreq)
	a := events.Audit{Kind: "provider_call", Node: node, Cause: r.Reason, Actor: strings.TrimSpace(who + " via coordinator:" + c.cfg.Name),
		Detail: map[string]string{"provider": offer.Provider, "op": providers.OpLaunch, "offer": offer.ID, "region": offer.Region,
			"request_id": r.RequestID, "price": priceText(offer.Price)}}
	rec := launchRecord{By: c.cfg.Name, At: c.cfg.Now(), Node: node, Provider: offer.Provider, Offer: &offer, CreatedAt: now, TokenHashes: tokenHashes}
	wctx := context.WithoutCancel(ctx)
	if lerr != nil {
		a.Detail["result"] = "error: " + lerr.Error()
		c.audit(ctx, "provider_call", "launch:"+r.RequestID+":"+c.cfg.Now().Format("20060102T150405.000"), a)
		if providers.LaunchNotApplied(lerr) {
			_ = kv.Delete(wctx, launchKey(r.RequestID)) // nothing was made: the request may be sent again
			return out, fmt.Errorf("%s did not create an instance: %w", offer.Provider, lerr)
		}
		rec.State, rec.Error = "outcome unknown", lerr.Error()
		b, _ := json.Marshal(rec)
		_, _ = kv.Put(wctx, launchKey(r.RequestID), b)
		return out, fmt.Errorf("%s launch outcome unknown (retry with --request-id %s: the retry looks for the instance first): %w", offer.Provider, r.RequestID, lerr)
	}
	a.Detail["instance"] = inst.ID
	a.Detail["result"] = "created"
	c.audit(ctx, "provider_call", "launch:"+r.RequestID, a)
	out.Instance = &inst
	out.Stage = "created"
	out.Message = fmt.Sprintf("created %s instance %s for node %s", offer.Provider, inst.ID, node)
	rec.State, rec.Instance, rec.Result = "done", &inst, &out
	b, _ := json.Marshal(rec)
	if _, err := kv.Put(wctx, launchKey(r.RequestID), b); err != nil {
		c.log.Error().Err(err).Str("request", r.RequestID).Msg("store launch result")
	}
	c.launched(wctx, &out, rec)
	return out, nil
}

// launched admits the node of a launch whose instance exists and binds the
// request's enrollment tokens to that instance: the coordinator made this
// instance for this node, so the node is admitted by name, as enrolment
// does (launch_status flags a node that then reports another instance ID).
// A retry that found an instance made by an earlier call binds that call's
// token. Binding failures are appended to out.Message.
func (c *Coordinator) launched(ctx context.Context, out *api.Launch, rec launchRecord) {
	inst := rec.Instance
	c.reg.Admit(rec.Node, "launch:"+rec.Provider+"/"+inst.ID)
	for _, h := range rec.TokenHashes {
		if err := c.bindToken(ctx, h, inst.ID); err != nil {
			c.log.Warn().Err(err).Str("node", rec.Node).Str("instance", inst.ID).Msg("binding a launch enrollment token")
			out.Message += "; binding an enrollment token to the instance failed: " + err.Error()
		}
	}
	c.log.Info().Str("node", rec.Node).Str("provider", rec.Provider).Str("instance", inst.ID).Str("request", out.RequestID).Msg("launched")
	c.refreshSoon()
}

// adoptLaunch looks at the cloud for the instance of a launch request whose
// earlier call left no outcome (prev: an unknown outcome or a stale claim,
// at KV revision rev). Found, it records the request as done with that
// instance (taking the record over by revision, so two coordinators cannot
// both adopt), audits it and answers as if the create had just returned.
// Not found, it returns found=false and the caller goes on to create. It
// returns an error, and creates nothing, when the cloud cannot be asked (a
// glitch there is no proof the instance does not exist) or the record
// moved meanwhile. Only the leader adopts.
func (c *Coordinator) adoptLaunch(ctx context.Context, kv jetstream.KeyValue, r api.LaunchRequest, who string, prev *launchRecord, rev uint64) (api.Launch, bool, error) {
	if !c.IsLeader() {
		return api.Launch{}, false, errors.New("this coordinator is not the leader; the launch is left to the leader")
	}
	p, err := c.cfg.Fleet.Providers().Get(prev.Provider)
	if err != nil {
		return api.Launch{}, false, fmt.Errorf("launch request %s was sent to %s: %w", r.RequestID, prev.Provider, err)
	}
	inst, found, err := providers.FindByRequestID(ctx, p, r.RequestID)
	if err != nil {
		return api.Launch{}, false, fmt.Errorf("launch request %s (%s): looking for its instance at %s before another create: %w (nothing created; retry)",
			r.RequestID, prev.State, prev.Provider, err)
	}
	if !found {
		return api.Launch{}, false, nil
	}
	out := api.Launch{RequestID: r.RequestID, Node: prev.Node, Offer: providers.Offer{Provider: prev.Provider}, Instance: &inst, Stage: "created",
		Message: fmt.Sprintf("created %s instance %s for node %s (found by request ID after an earlier call left no outcome)", prev.Provider, inst.ID, prev.Node)}
	if prev.Offer != nil {
		out.Offer = *prev.Offer
		if out.Offer.Price.Known() {
			ph, pd := out.Offer.Price.PerHour, out.Offer.Price.PerHour*24
			out.PerHour, out.PerDay, out.Currency = &ph, &pd, out.Offer.Price.Currency
		}
	}
	rec := *prev
	rec.State, rec.By, rec.At, rec.Instance, rec.Result, rec.Error = "done", c.cfg.Name, c.cfg.Now(), &inst, &out, ""
	b, _ := json.Marshal(rec)
	if _, err := kv.Update(ctx, launchKey(r.RequestID), b, rev); err != nil {
		return api.Launch{}, false, fmt.Errorf("launch request %s changed while its instance was looked for; not recording it twice: %w", r.RequestID, errLaunchInFlight)
	}
	wctx := context.WithoutCancel(ctx)
	c.audit(ctx, "provider_call", "launch:"+r.RequestID+":adopted", events.Audit{Kind: "provider_call", Node: prev.Node, Cause: r.Reason,
		Actor: strings.TrimSpace(who + " via coordinator:" + c.cfg.Name),
		Detail: map[string]string{"provider": prev.Provider, "op": providers.OpLaunch, "offer": out.Offer.ID, "request_id": r.RequestID,
			"price": priceText(out.Offer.Price), "instance": inst.ID, "result": "found: instance of an earlier call (" + prev.State + " by " + prev.By + ")"}})
	c.launched(wctx, &out, rec)
	return out, true, nil
}

// launchSupport says which clouds launch, for errors.
const launchSupport = "launch works on vast, runpod, lambda, vultr, hetzner and nebius (nebius needs its CLI installed, not the config inventory)"

// refuseLaunch audits a refused launch and returns the refusal.
func (c *Coordinator) refuseLaunch(ctx context.Context, r api.LaunchRequest, who string, out api.Launch, why string) error {
	if !r.DryRun {
		c.audit(ctx, "provider_call", "launch:"+r.RequestID+":refused:"+c.cfg.Now().Format("20060102T150405.000"), events.Audit{
			Kind: "provider_call", Node: out.Node, Cause: r.Reason, Actor: strings.TrimSpace(who + " via coordinator:" + c.cfg.Name),
			Detail: map[string]string{"provider": out.Offer.Provider, "op": providers.OpLaunch, "offer": out.Offer.ID,
				"request_id": r.RequestID, "price": priceText(out.Offer.Price), "result": "refused: " + why}})
	}
	return fmt.Errorf("launch refused (%s offer %s, %s, node %s): %s", out.Offer.Provider, out.Offer.ID, priceText(out.Offer.Price), out.Node, why)
}

func priceText(p providers.Price) string {
	if !p.Known() {
		return "unknown"
	}
	return fmt.Sprintf("%.4f %s/h (%s)", p.PerHour, p.Currency, p.Source)
}

// readLaunch returns the stored record of a launch request and its revision.
func (c *Coordinator) readLaunch(ctx context.Context, kv jetstream.KeyValue, id string) (*launchRecord, uint64, error) {
	e, err := kv.Get(ctx, launchKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("launch request %s: %w", id, err)
	}
	var rec launchRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("launch request %s: stored record unreadable: %w", id, err)
	}
	return &rec, e.Revision(), nil
}

// defaultLaunchNode derives a node ID: <provider>-<gpu>-<request ID tail>.
func defaultLaunchNode(o providers.Offer, requestID string) string {
	gpu := strings.ToLower(o.GPUModel)
	var b strings.Builder
	for _, r := range gpu {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	tail := requestID
	if i := strings.LastIndexAny(tail, "-_"); i >= 0 && i < len(tail)-1 {
		tail = tail[i+1:]
	}
	if len(tail) > 8 {
		tail = tail[len(tail)-8:]
	}
	parts := []string{o.Provider}
	if g := b.String(); g != "" {
		parts = append(parts, g)
	}
	if tail != "" {
		parts = append(parts, tail)
	}
	return strings.Join(parts, "-")
}

// pickOffer finds the offer a launch rents: the one named by OfferID (and
// Provider, Region, Interruptible), or the cheapest per GPU-hour matching
// the filter. It returns how many other offers matched and the clouds
// that did not answer.
func (c *Coordinator) pickOffer(ctx context.Context, r api.LaunchRequest) (providers.Offer, int, []providers.MissingCloud, error) {
	reg := c.cfg.Fleet.Providers()
	provs := reg.All()
	if r.Provider != "" {
		p, err := reg.Get(r.Provider)
		if err != nil {
			return providers.Offer{}, 0, nil, fmt.Errorf("provider %s: %w", r.Provider, err)
		}
		provs = []providers.Provider{p}
	}
	f := r.Filter
	if r.Region != "" {
		f.Region = r.Region
	}
	if r.Interruptible != nil {
		f.Interruptible = r.Interruptible
	}
	if r.OfferID != "" {
		f = providers.OfferFilter{Region: f.Region, Interruptible: f.Interruptible, IncludeCPU: true}
	}
	timeout := api.DefaultOffersTimeout
	if r.TimeoutSeconds > 0 {
		timeout = min(time.Duration(r.TimeoutSeconds*float64(time.Second)), api.MaxOffersTimeout)
	}
	offers, missing := providers.CollectOffers(ctx, provs, f, timeout)
	ranked, _ := providers.RankOffers(offers, f, 0)
	var match []providers.Offer
	for _, o := range ranked {
		if r.OfferID == "" || o.ID == r.OfferID {
			match = append(match, o)
		}
	}
	if len(match) == 0 {
		what := "no offer matches the request"
		if r.OfferID != "" {
			what = "offer " + r.OfferID + " is not offered now"
		}
		if len(missing) > 0 {
			var names []string
			for _, m := range missing {
				names = append(names, m.Provider+" ("+m.Reason+")")
			}
			what += "; clouds that did not answer: " + strings.Join(names, ", ")
		}
		return providers.Offer{}, 0, missing, errors.New(what)
	}
	if r.OfferID != "" && len(match) > 1 {
		var alts []string
		for _, o := range match {
			kind := "on-demand"
			if o.Interruptible {
				kind = "spot"
			}
			alts = append(alts, o.Provider+" "+o.Region+" "+kind)
		}
		same := true
		for _, o := range match[1:] {
			same = same && o.Provider == match[0].Provider && o.Region == match[0].Region && o.Interruptible == match[0].Interruptible
		}
		if !same {
			return providers.Offer{}, 0, missing, fmt.Errorf("offer %s is ambiguous (%s): give --provider, --region and/or --kind", r.OfferID, strings.Join(alts, "; "))
		}
	}
	if r.OfferID == "" && f.MaxPricePerGPUHour == 0 && !match[0].Price.Known() {
		return providers.Offer{}, 0, missing, errors.New("the cheapest matching offer has no known price; name it with --offer if you mean it")
	}
	return match[0], len(match) - 1, missing, nil
}

// apiLaunchStatus answers api.OpLaunchStatus from the launch record, the
// provider's view of the instance and the registry's view of the node.
func (c *Coordinator) apiLaunchStatus(ctx context.Context, req []byte) (any, error) {
	var r api.LaunchStatusRequest
	if err := json.Unmarshal(req, &r); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if err := providers.ValidRequestID(r.RequestID); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	kv, err := c.js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		return nil, err
	}
	rec, _, err := c.readLaunch(ctx, kv, r.RequestID)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("no launch with request ID %s", r.RequestID)
	}
	out := api.LaunchStatus{RequestID: r.RequestID, Node: rec.Node, Provider: rec.Provider, CreatedAt: rec.CreatedAt, Stage: api.LaunchStageCreated}
	if rec.State != "done" || rec.Instance == nil {
		out.Detail = "launch " + rec.State
		if rec.Error != "" {
			out.Detail += ": " + rec.Error
		}
		return out, nil
	}
	out.InstanceID = rec.Instance.ID
	if c.cfg.Fleet != nil {
		if p, err := c.cfg.Fleet.Providers().Get(rec.Provider); err == nil {
			inst, gerr := p.Get(ctx, rec.Instance.ID)
			switch {
			case gerr != nil:
				out.Detail = "instance state unknown: " + gerr.Error()
			default:
				out.InstanceState = string(inst.State)
				switch inst.State {
				case providers.StatePending, providers.StateStarting:
					out.Stage = api.LaunchStageBooting
				case providers.StateRunning:
					out.Stage = api.LaunchStageAgentNotSeen
				case providers.StateTerminated, providers.StatePreempted, providers.StateError, providers.StateStopped:
					out.Stage = api.LaunchStageGone
				}
			}
		}
	}
	if nr, ok := c.reg.Get(rec.Node); ok && !nr.LastSeen.IsZero() {
		out.NodeState = string(nr.State)
		switch {
		case nr.InstanceID != "" && nr.InstanceID != rec.Instance.ID:
			out.Stage, out.Detail = api.LaunchStageUnhealthy, fmt.Sprintf("node %s reports instance %s, not the launched %s", rec.Node, nr.InstanceID, rec.Instance.ID)
		case nr.State == mesh.StateHealthy && !nr.Quarantined:
			out.Stage = api.LaunchStageHealthy
		case out.Stage != api.LaunchStageGone:
			out.Stage = api.LaunchStageUnhealthy
			if nr.Quarantined {
				out.Detail = "the node reports but is quarantined (not yet linked to the instance)"
			}
		}
	}
	return out, nil
}
