// Package hetzner implements providers.Provider for Hetzner Cloud
// (https://api.hetzner.cloud/v1) with github.com/hetznercloud/hcloud-go/v2.
//
// Operations (docs/provider-apis.md §5):
//
//	List       GET /servers?page=&per_page=50, all pages (meta.pagination.next_page)
//	Get        GET /servers/{id}                       404 -> providers.ErrNotFound
//	Start      POST /servers/{id}/actions/poweron      then wait for the action
//	Stop       POST /servers/{id}/actions/shutdown     (ACPI) then wait until status "off";
//	           after ShutdownTimeout: POST …/poweroff  (hard) and wait for that action
//	Terminate  DELETE /servers/{id}                    then wait for the delete action; 404 -> success
//	Launch     POST /servers                           create a server (launch.go)
//
// Hetzner nodes are the cluster's CPU voters. Stop and Terminate refuse a
// server in the configured VoterGuard unless the context carries
// WithOverride(ctx, reason); the refusal is a *providers.Error wrapping
// ErrProtected, sent before any mutating API call.
//
// hcloud-go's own retries are switched off (a retried POST could duplicate an
// action); retries and circuit breaking belong to the caller. Every error is a
// *providers.Error. Prices are EUR, gross (incl. VAT), from
// server_type.prices[location].price_hourly.gross. Stopped ("off") servers keep
// billing until deleted, so Capabilities().BillsWhileStopped is true.
// SSH is direct: root@<public IPv4>:22.
package hetzner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Name is the registry key of this provider.
const Name = "hetzner"

// DefaultEndpoint is the Hetzner Cloud API endpoint.
const DefaultEndpoint = "https://api.hetzner.cloud/v1"

// PriceSource is written into providers.Price.Source.
const PriceSource = "hetzner:server_type.prices.price_hourly.gross"

// LabelServerType is the Instance.Labels key carrying the server type name ("cx22").
const LabelServerType = "hetzner.server_type"

// Options configures a Provider.
type Options struct {
	// Token is the project API token (Bearer). Required; never logged.
	Token string
	// Endpoint overrides DefaultEndpoint (hetznerfake.Server.URL() in tests).
	Endpoint string
	// HTTPClient supplies transport and per-request timeout. Default: 30 s timeout.
	HTTPClient *http.Client
	// PollInterval is how often actions and server status are polled. Default 1 s.
	PollInterval time.Duration
	// ActionTimeout bounds the wait for one action to finish. Default 5 min.
	ActionTimeout time.Duration
	// ShutdownTimeout is how long Stop waits for the guest to power off after
	// the ACPI shutdown before it falls back to a hard poweroff. Default 2 min.
	// When the context has a deadline, at most half of the remaining time is
	// spent waiting, so the fallback still fits.
	ShutdownTimeout time.Duration
	// Guard lists the voter servers that Stop/Terminate refuse without an
	// override. nil protects nothing.
	Guard *VoterGuard
	// Logger receives warnings (fallback poweroff, overrides). Default: disabled.
	Logger *zerolog.Logger
}

// Provider is one Hetzner Cloud project. Safe for concurrent use.
type Provider struct {
	client          *hcloud.Client
	poll            time.Duration
	actionTimeout   time.Duration
	shutdownTimeout time.Duration
	guard           *VoterGuard
	log             zerolog.Logger
}

var _ providers.Provider = (*Provider)(nil)

// New builds a Provider. It does no I/O.
func New(opts Options) (*Provider, error) {
	tok := strings.TrimSpace(opts.Token)
	if tok == "" {
		return nil, fmt.Errorf("hetzner: %w: API token is empty", providers.ErrNotConfigured)
	}
	ep := opts.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	p := &Provider{
		poll:            opts.PollInterval,
		actionTimeout:   opts.ActionTimeout,
		shutdownTimeout: opts.ShutdownTimeout,
		guard:           opts.Guard,
		log:             zerolog.Nop(),
	}
	if p.poll <= 0 {
		p.poll = time.Second
	}
	if p.actionTimeout <= 0 {
		p.actionTimeout = 5 * time.Minute
	}
	if p.shutdownTimeout <= 0 {
		p.shutdownTimeout = 2 * time.Minute
	}
	if opts.Logger != nil {
		p.log = opts.Logger.With().Str("provider", Name).Logger()
	}
	p.client = hcloud.NewClient(
		hcloud.WithToken(tok),
		hcloud.WithEndpoint(strings.TrimRight(ep, "/")),
		hcloud.WithHTTPClient(hc),
		hcloud.WithApplication("ringmesh", ""),
		hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(p.poll)}),
		hcloud.WithRetryOpts(hcloud.RetryOpts{BackoffFunc: hcloud.ConstantBackoff(0), MaxRetries: 0}),
	)
	return p, nil
}

// Name returns "hetzner".
func (p *Provider) Name() string { return Name }

// Guard returns the voter guard (nil when none was configured).
func (p *Provider) Guard() *VoterGuard { return p.guard }

// Capabilities: power on/off supported; powered-off servers keep billing
// (Hetzner bills until deletion); servers are not ephemeral.
func (p *Provider) Capabilities() providers.Capabilities {
	return providers.Capabilities{CanStop: true, CanStart: true, BillsWhileStopped: true, Ephemeral: mesh.Facts(mesh.ProviderHetzner).Ephemeral, NoticeSeconds: mesh.Facts(mesh.ProviderHetzner).NoticeSeconds()}
}

// List returns every server of the project, all pages (50 per page). Any page
// failing fails the call.
func (p *Provider) List(ctx context.Context) ([]providers.Instance, error) {
	var out []providers.Instance
	opts := hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{Page: 1, PerPage: 50}}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			return nil, &providers.Error{Provider: Name, Op: "list", Kind: providers.KindInvalid, Err: errors.New("pagination does not end")}
		}
		servers, resp, err := p.client.Server.List(ctx, opts)
		if err != nil {
			return nil, classify(ctx, "list", err, resp)
		}
		for _, s := range servers {
			if s != nil {
				out = append(out, toInstance(s))
			}
		}
		if resp == nil || resp.Meta.Pagination == nil || resp.Meta.Pagination.NextPage == 0 ||
			resp.Meta.Pagination.NextPage <= opts.Page {
			return out, nil
		}
		opts.Page = resp.Meta.Pagination.NextPage
	}
}

// Get returns one server; KindNotFound (errors.Is providers.ErrNotFound) when
// it does not exist. A non-numeric id is KindInvalid.
func (p *Provider) Get(ctx context.Context, id string) (providers.Instance, error) {
	s, err := p.get(ctx, "get", id)
	if err != nil {
		return providers.Instance{}, err
	}
	return toInstance(s), nil
}

func (p *Provider) get(ctx context.Context, op, id string) (*hcloud.Server, error) {
	n, err := parseID(op, id)
	if err != nil {
		return nil, err
	}
	s, resp, err := p.client.Server.GetByID(ctx, n)
	if err != nil {
		return nil, classify(ctx, op, err, resp)
	}
	if s == nil { // hcloud-go maps 404 not_found to (nil, resp, nil)
		return nil, &providers.Error{Provider: Name, Op: op, Kind: providers.KindNotFound, Status: http.StatusNotFound,
			Code: "not_found", Err: fmt.Errorf("server %d: %w", n, providers.ErrNotFound)}
	}
	return s, nil
}

// Start powers a server on and waits for the poweron action. A server that is
// running or starting is left alone.
func (p *Provider) Start(ctx context.Context, id string) error {
	s, err := p.get(ctx, "start", id)
	if err != nil {
		return err
	}
	switch s.Status {
	case hcloud.ServerStatusRunning, hcloud.ServerStatusStarting, hcloud.ServerStatusInitializing:
		return nil
	}
	a, resp, err := p.client.Server.Poweron(ctx, s)
	if err != nil {
		return classify(ctx, "start", err, resp)
	}
	return p.wait(ctx, "start", a)
}

// Stop shuts a server down gracefully and falls back to a hard poweroff.
//
//  1. A protected voter is refused (ErrProtected) unless ctx has WithOverride.
//  2. A server already "off" is left alone; one "stopping" is waited for.
//  3. POST …/shutdown (ACPI) and wait for the action (= the signal was sent).
//  4. Poll the status every PollInterval until "off", for at most
//     ShutdownTimeout (or half the context's remaining time, if shorter).
//  5. Still not off: POST …/poweroff (like pulling the plug) and wait for it.
//
// The server keeps billing while off.
func (p *Provider) Stop(ctx context.Context, id string) error {
	if err := p.checkGuard(ctx, "stop", id, ""); err != nil {
		return err
	}
	s, err := p.get(ctx, "stop", id)
	if err != nil {
		return err
	}
	if err := p.checkServer(ctx, "stop", id, s); err != nil {
		return err
	}
	if s.Status == hcloud.ServerStatusOff {
		return nil
	}
	waitFor := p.shutdownTimeout
	if dl, ok := ctx.Deadline(); ok {
		if half := time.Until(dl) / 2; half < waitFor {
			waitFor = half
		}
	}
	if s.Status != hcloud.ServerStatusStopping {
		a, resp, err := p.client.Server.Shutdown(ctx, s)
		if err != nil {
			return classify(ctx, "stop", err, resp)
		}
		if err := p.wait(ctx, "stop", a); err != nil {
			return err
		}
	}
	off, err := p.waitOff(ctx, s.ID, waitFor)
	if err != nil {
		return err
	}
	if off {
		return nil
	}
	p.log.Warn().Int64("server", s.ID).Str("name", s.Name).Dur("waited", waitFor).
		Msg("hetzner server did not power off after ACPI shutdown; forcing poweroff")
	a, resp, err := p.client.Server.Poweroff(ctx, s)
	if err != nil {
		return classify(ctx, "stop", err, resp)
	}
	return p.wait(ctx, "stop", a)
}

// waitOff polls until the server is off (true), gone (true), or d passes (false).
func (p *Provider) waitOff(ctx context.Context, id int64, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	t := time.NewTicker(p.poll)
	defer t.Stop()
	for {
		s, resp, err := p.client.Server.GetByID(ctx, id)
		if err != nil {
			return false, classify(ctx, "stop", err, resp)
		}
		if s == nil || s.Status == hcloud.ServerStatusOff {
			return true, nil
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, &providers.Error{Provider: Name, Op: "stop", Kind: providers.KindTransient, Err: ctx.Err()}
		case <-t.C:
		}
	}
}

// Terminate deletes a server and waits for the delete action. A server that is
// already gone, or already "deleting", counts as terminated. A protected voter
// is refused unless ctx has WithOverride. Hetzner's own delete protection
// answers "protected" (KindInvalid, Code "protected").
func (p *Provider) Terminate(ctx context.Context, id string) error {
	if err := p.checkGuard(ctx, "terminate", id, ""); err != nil {
		return err
	}
	s, err := p.get(ctx, "terminate", id)
	if providers.KindOf(err) == providers.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if err := p.checkServer(ctx, "terminate", id, s); err != nil {
		return err
	}
	if s.Status == hcloud.ServerStatusDeleting {
		return nil
	}
	res, resp, err := p.client.Server.DeleteWithResult(ctx, s)
	if err != nil {
		err = classify(ctx, "terminate", err, resp)
		if providers.KindOf(err) == providers.KindNotFound {
			return nil
		}
		return err
	}
	if res == nil {
		return nil
	}
	return p.wait(ctx, "terminate", res.Action)
}

// checkServer refuses to stop or terminate a server that is protected, unless
// ctx carries WithOverride: one in the VoterGuard (by ID or name), one whose
// Hetzner labels mark it a voter (IsVoterLabelled), and one with Hetzner's own
// delete or rebuild protection set (protection.delete / protection.rebuild).
// The last is refused with Code "protected", as Hetzner itself answers a
// DELETE of such a server; the others with Code "voter_protected". Both wrap
// ErrProtected.
func (p *Provider) checkServer(ctx context.Context, op, id string, s *hcloud.Server) error {
	if err := p.checkGuard(ctx, op, id, s.Name); err != nil {
		return err
	}
	code, why := "", ""
	switch {
	case IsVoterLabelled(s.Labels):
		code, why = "voter_protected", "its Hetzner labels mark it a voter ("+VoterLabel+"="+VoterLabelValue+")"
	case s.Protection.Delete || s.Protection.Rebuild:
		code, why = "protected", "Hetzner delete/rebuild protection is set on it"
	default:
		return nil
	}
	if reason, ok := OverrideReason(ctx); ok {
		p.log.Warn().Str("op", op).Str("server", id).Str("name", s.Name).Str("reason", reason).Str("protection", why).
			Msg("server protection overridden")
		return nil
	}
	return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Code: code,
		Err: fmt.Errorf("refusing to %s server %s (%s): %s: %w; pass hetzner.WithOverride(ctx, reason) to force", op, id, s.Name, why, ErrProtected)}
}

func (p *Provider) checkGuard(ctx context.Context, op, id, name string) error {
	if !p.guard.Protected(id, name) {
		return nil
	}
	if reason, ok := OverrideReason(ctx); ok {
		p.log.Warn().Str("op", op).Str("server", id).Str("name", name).Str("reason", reason).
			Msg("voter protection overridden")
		return nil
	}
	who := id
	if name != "" {
		who = fmt.Sprintf("%s (%s)", id, name)
	}
	return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Code: "voter_protected",
		Err: fmt.Errorf("refusing to %s server %s: %w; pass hetzner.WithOverride(ctx, reason) to force", op, who, ErrProtected)}
}

// wait blocks until the action finished (bounded by ActionTimeout).
func (p *Provider) wait(ctx context.Context, op string, a *hcloud.Action) error {
	if a == nil || a.ID == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, p.actionTimeout)
	defer cancel()
	if err := p.client.Action.WaitFor(wctx, a); err != nil {
		return classify(wctx, op, err, nil)
	}
	return nil
}

func parseID(op, id string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
	if err != nil || n <= 0 {
		return 0, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("invalid server id %q: Hetzner server IDs are positive integers", id)}
	}
	return n, nil
}

// classify wraps an hcloud-go error into a *providers.Error. The API error
// code decides first (error codes from the Hetzner Cloud API docs / hcloud
// ErrorCode*), then the HTTP status, then the transport error.
//
//	rate_limit_exceeded                                     -> KindRateLimited (RetryAfter from RateLimit-Reset)
//	unauthorized, forbidden, token_readonly                 -> KindAuth
//	not_found                                               -> KindNotFound
//	locked, conflict, server_not_stopped, resource_locked   -> KindConflict
//	server_error, bad_gateway, timeout, service_error,
//	  unknown_error, maintenance, resource_unavailable,
//	  robot_unavailable                                      -> KindTransient
//	other codes (invalid_input, protected, json_error, …)   -> KindInvalid
//	no code: 429/401/403/404/409/423/5xx/4xx as above; 2xx + error or a JSON decode error -> KindInvalid
//	failed action (hcloud.ActionError)                      -> KindTransient, Code = action error code
//	dial/DNS failure -> KindNotSent; timeout, reset, context -> KindTransient
func classify(ctx context.Context, op string, err error, resp *hcloud.Response) error {
	if err == nil {
		return nil
	}
	var existing *providers.Error
	if errors.As(err, &existing) {
		return err
	}
	pe := &providers.Error{Provider: Name, Op: op, Err: err}
	var herr hcloud.Error
	if errors.As(err, &herr) {
		pe.Code = string(herr.Code)
		if r := herr.Response(); r != nil {
			resp = r
		}
	}
	if resp != nil && resp.Response != nil {
		pe.Status = resp.StatusCode
	}
	var aerr hcloud.ActionError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case pe.Code != "":
		pe.Kind = kindForCode(hcloud.ErrorCode(pe.Code), pe.Status)
	case errors.As(err, &aerr):
		pe.Kind = providers.KindTransient
		pe.Code = aerr.Code
	case pe.Status == http.StatusTooManyRequests:
		pe.Kind = providers.KindRateLimited
	case pe.Status == http.StatusUnauthorized || pe.Status == http.StatusForbidden:
		pe.Kind = providers.KindAuth
	case pe.Status == http.StatusNotFound:
		pe.Kind = providers.KindNotFound
	case pe.Status == http.StatusConflict || pe.Status == http.StatusLocked:
		pe.Kind = providers.KindConflict
	case pe.Status >= 500:
		pe.Kind = providers.KindTransient
	case pe.Status >= 400:
		pe.Kind = providers.KindInvalid
	case pe.Status >= 200 && pe.Status < 300, errors.As(err, &syn), errors.As(err, &typ):
		pe.Kind = providers.KindInvalid
		pe.Err = fmt.Errorf("malformed response body: %w", err)
	case isDialError(err):
		pe.Kind = providers.KindNotSent
	default:
		pe.Kind = providers.KindTransient
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			pe.Err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}
	if pe.Kind == providers.KindRateLimited && resp != nil && resp.Response != nil {
		pe.RetryAfter = retryAfter(resp.Header, time.Now())
	}
	return pe
}

func kindForCode(code hcloud.ErrorCode, status int) providers.ErrorKind {
	switch code {
	case hcloud.ErrorCodeRateLimitExceeded:
		return providers.KindRateLimited
	case hcloud.ErrorCodeUnauthorized, hcloud.ErrorCodeForbidden, "token_readonly":
		return providers.KindAuth
	case hcloud.ErrorCodeNotFound:
		return providers.KindNotFound
	case hcloud.ErrorCodeLocked, hcloud.ErrorCodeConflict, hcloud.ErrorCodeServerNotStopped, hcloud.ErrorCodeResourceLocked:
		return providers.KindConflict
	case hcloud.ErrorCodeServerError, hcloud.ErrorCodeBadGateway, hcloud.ErrorCodeTimeout, hcloud.ErrorCodeServiceError,
		hcloud.ErrorCodeUnknownError, hcloud.ErrorCodeMaintenance, hcloud.ErrorCodeResourceUnavailable,
		hcloud.ErrorCodeRobotUnavailable:
		return providers.KindTransient
	}
	if status >= 500 {
		return providers.KindTransient
	}
	return providers.KindInvalid
}

// retryAfter derives a wait from Retry-After or RateLimit-Reset (unix seconds).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second
		}
	}
	if v := strings.TrimSpace(h.Get("RateLimit-Reset")); v != "" {
		if u, err := strconv.ParseInt(v, 10, 64); err == nil {
			if d := time.Unix(u, 0).Sub(now); d > 0 {
				return d
			}
		}
	}
	return 0
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
