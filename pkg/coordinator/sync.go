package coordinator

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/registry"
	meshsync "github.com/ringmesh/ringmesh/pkg/sync"
	"github.com/ringmesh/ringmesh/pkg/synctarget"
	"github.com/ringmesh/ringmesh/pkg/wire"
)

// routeInterval is how often the leader re-routes sync targets; unchanged
// assignments are re-sent every targetRefresh so a restarted agent gets them.
const (
	routeInterval = 5 * time.Second
	targetRefresh = 30 * time.Second
)

type sentTargets struct {
	json string
	at   time.Time
	boot string // the agent boot they were sent to: a restarted agent gets them again at once
}

// command publishes work for one agent on mesh.v1.cmd.<node>.<verb>.
func (c *Coordinator) command(ctx context.Context, node, verb string, args map[string]string, reason string) error {
	subj, err := bus.CommandSubject(node, verb)
	if err != nil {
		return err
	}
	body := events.Command{Verb: verb, Args: args, RequestedBy: "coordinator:" + c.cfg.Name, Reason: reason}
	raw, _ := json.Marshal(body)
	sum := sha256.Sum256(raw)
	// Unique per send: a re-sent command (a restarted agent needs its targets
	// again) must not be swallowed by de-duplication; agents apply them idempotently.
	id := fmt.Sprintf("cmd:%s:%s:%s:%d", node, verb, hex.EncodeToString(sum[:8]), c.cfg.Now().UnixNano())
	env, err := bus.NewEnvelope("command", id, c.cfg.Name, c.cfg.Now(), body)
	if err != nil {
		return err
	}
	data, _ := json.Marshal(env)
	_, err = c.js.Publish(ctx, subj, data, jetstream.WithMsgID(id))
	return err
}

// routingPolicy mirrors the inventory's sync_routing.
func (c *Coordinator) routingPolicy() meshsync.RoutingPolicy {
	var p meshsync.RoutingPolicy
	inv := c.cfg.Inventory
	if inv == nil {
		return p
	}
	sr := inv.SyncRouting
	p.MaxDiskUsagePercent, p.MinFreeDiskPercent, p.ReplicationTarget, p.PriorityHosts = sr.MaxDiskUsagePercent, sr.MinFreeDiskPercent, sr.ReplicationTarget, sr.PriorityHosts
	for _, x := range sr.ExcludedHosts {
		p.ExcludedHosts = append(p.ExcludedHosts, meshsync.ExcludedHost{Name: x.Name, ReceiveGames: x.ReceiveGames, ReceiveNPZ: x.ReceiveNPZ, ReceiveModels: x.ReceiveModels, Reason: x.Reason})
	}
	return p
}

func nodeInfo(rec registry.Record, skip bool) meshsync.NodeInfo {
	n := meshsync.NodeInfo{NodeID: rec.Node, Provider: rec.Provider, Ephemeral: rec.Ephemeral, Persistent: !rec.Ephemeral,
		Status: string(rec.State), Retired: rec.State == mesh.StateRetired, FilesystemIDs: rec.FilesystemIDs, SkipSyncReceive: skip,
		Unconfigured: !rec.Configured || rec.Quarantined}
	if h := rec.Health; h != nil && len(h.Disks) > 0 {
		d := h.Disks[0]
		if d.FreeBytes != nil && d.TotalBytes != nil {
			n.DiskFreeBytes, n.DiskTotalBytes = int64(*d.FreeBytes), int64(*d.TotalBytes)
			if d.UsedBytes != nil {
				n.DiskUsedBytes = int64(*d.UsedBytes) // usage as the heartbeat and the status view define it
			}
		}
	}
	if rec.RPO.UnsyncedBytes != nil {
		n.PendingBytes = *rec.RPO.UnsyncedBytes
	}
	return n
}

// RouteSync assigns sync targets to every live ephemeral node and sends
// them as sync_targets commands (leader only). It returns the plan by node.
//
// Trust: only configured persistent hosts of the inventory receive. A
// target's address comes from the provider API or the inventory (never an
// endpoint the node reported), its incoming directory from the inventory's
// layout of that host, and its host key from the key the registry pinned at
// the configured host's first report (a later, different report is not
// taken). Quarantined nodes are neither sources nor targets.
func (c *Coordinator) RouteSync(ctx context.Context) map[string][]meshsync.Choice {
	c.routeMu.Lock()
	defer c.routeMu.Unlock()
	recs := c.reg.Trusted()
	var rep fleet.Report
	if c.cfg.Fleet != nil {
		rep = c.cfg.Fleet.Report(recs)
	}
	entries := map[string]fleet.SSHEntry{}
	for _, e := range fleet.SSHEntries(c.cfg.Inventory, recs, rep) {
		entries[e.Node] = e
	}
	infos := make([]meshsync.NodeInfo, 0, len(recs))
	byNode := map[string]registry.Record{}
	for _, r := range recs {
		skip := false
		if c.cfg.Inventory != nil {
			if h := c.cfg.Inventory.Hosts[r.Node]; h != nil {
				skip = h.SkipSyncReceive
			}
		}
		infos = append(infos, nodeInfo(r, skip))
		byNode[r.Node] = r
	}
	pol := c.routingPolicy()
	setUp, setUpErr := c.syncTargetRecords()
	if setUpErr != nil {
		c.log.Warn().Err(setUpErr).Msg("sync target records unreadable: no target set up with meshctl target setup is used")
	}
	plans := map[string][]meshsync.Choice{}
	chosen := map[string]map[string]bool{}
	for _, src := range recs {
		if !src.Ephemeral || (src.State != mesh.StateHealthy && src.State != mesh.StateDegraded) {
			continue
		}
		choices := meshsync.Route(nodeInfo(src, false), infos, pol)
		plans[src.Node] = choices
		var specs []events.TargetSpec
		for i := range choices {
			ch := choices[i]
			if !ch.Selected {
				continue
			}
			spec, why := c.targetSpec(src, byNode[ch.NodeID], entries, setUp, setUpErr)
			if why != "" {
				// Cannot be reached safely: say so in the plan, never silently.
				c.log.Debug().Str("node", src.Node).Str("target", ch.NodeID).Str("reason", why).Msg("target skipped")
				choices[i].Selected, choices[i].Rank = false, 0
				choices[i].Reason = "chosen by the router but not usable: " + why
				continue
			}
			for _, cl := range ch.Classes {
				spec.Classes = append(spec.Classes, string(cl))
			}
			specs = append(specs, spec)
		}
		if specs == nil {
			specs = []events.TargetSpec{}
		}
		set := map[string]bool{}
		for _, s := range specs {
			set[s.Node] = true
		}
		chosen[src.Node] = set
		b, _ := json.Marshal(specs)
		prev := c.sentTargets[src.Node]
		if prev.json == string(b) && prev.boot == src.Boot && c.cfg.Now().Sub(prev.at) < targetRefresh {
			continue
		}
		args := map[string]string{"targets": string(b)}
		if len(specs) == 0 {
			args["why"] = noTargetWhy(choices)
		}
		if err := c.command(ctx, src.Node, "sync_targets", args, "sync routing"); err != nil {
			c.log.Warn().Err(err).Str("node", src.Node).Msg("send sync targets")
			continue
		}
		c.sentTargets[src.Node] = sentTargets{json: string(b), at: c.cfg.Now(), boot: src.Boot}
		ev := c.log.Info().Str("node", src.Node).Int("targets", len(specs))
		if len(specs) == 0 {
			var why []string
			for _, ch := range choices {
				why = append(why, ch.NodeID+": "+ch.Reason)
			}
			ev = ev.Strs("rejected", why)
		}
		ev.Msg("sync targets sent")
	}
	c.chosenTargets.Store(&chosen)
	return plans
}

// targetSpec builds the target of a selected node from trusted sources
// only, or says why it cannot.
//
// A target set up with `meshctl target setup` (a Record in the issuer
// store) is reached as its sync account, in the directory inside its
// chroot, verified against the host key pinned at setup, with a short-lived
// certificate for the source node's own sync key.
func (c *Coordinator) targetSpec(src, tr registry.Record, entries map[string]fleet.SSHEntry, setUp map[string]synctarget.Record, setUpErr error) (events.TargetSpec, string) {
	if !tr.Configured || tr.Quarantined {
		return events.TargetSpec{}, "not a configured host"
	}
	e, ok := entries[tr.Node]
	if !ok || strings.HasPrefix(e.Source, "agent:") {
		return events.TargetSpec{}, "no SSH endpoint from the inventory or the provider"
	}
	if !events.ValidHost(e.Host) || !events.Match("user", e.User) || e.Port < 1 || e.Port > 65535 {
		return events.TargetSpec{}, fmt.Sprintf("SSH endpoint %q port %d user %q fails its pattern", events.StripControl(e.Host), e.Port, events.StripControl(e.User))
	}
	if setUpErr != nil {
		return events.TargetSpec{}, "sync target records unreadable: " + setUpErr.Error()
	}
	if st, ok := setUp[tr.Node]; ok {
		cert, why := c.syncCertFor(src, st.Account)
		if why != "" {
			return events.TargetSpec{}, why
		}
		return events.TargetSpec{Node: tr.Node, Host: e.Host, Port: e.Port, User: st.Account, RemoteDir: st.RemoteDir, Fingerprint: st.Fingerprint, Cert: cert}, ""
	}
	// Not set up: only the inventory's host key, never the node's own report.
	var fp string
	if c.cfg.Inventory != nil && c.cfg.Inventory.Hosts[tr.Node] != nil {
		fp = c.cfg.Inventory.Hosts[tr.Node].SSHHostKey
	}
	if !events.ValidFingerprint(fp) {
		why := "no trusted host key: run `meshctl target setup " + tr.Node + "` or set ssh_host_key in the inventory"
		if events.ValidFingerprint(tr.HostKey) {
			why += " (the node reports " + tr.HostKey + "; check it out of band, a node's own report is not trusted)"
		}
		return events.TargetSpec{}, why
	}
	lay, ok := c.inventoryLayout(tr.Node)
	if !ok {
		return events.TargetSpec{}, "no inventory layout"
	}
	dir := remoteDir(lay.Data[paths.SyncIncoming])
	if err := wire.CheckRemoteDir(dir, ""); err != nil {
		return events.TargetSpec{}, err.Error()
	}
	return events.TargetSpec{Node: tr.Node, Host: e.Host, Port: e.Port, User: e.User, RemoteDir: dir, Fingerprint: fp}, ""
}

// syncCert is a source node's cached sync certificate.
type syncCert struct {
	key, account, line string
	validAfter         time.Time
	validBefore        time.Time
}

// syncTargetRecords reads the targets set up with `meshctl target setup`
// from the issuer store (none without one).
func (c *Coordinator) syncTargetRecords() (map[string]synctarget.Record, error) {
	if c.cfg.Auth == nil {
		return nil, nil
	}
	return synctarget.LoadRecords(c.cfg.Auth.Dir())
}

// syncCertFor returns src's certificate for account, signing a new one when
// there is none for its current key or less than half of its validity is
// left; or why there can be none. Call with routeMu held.
func (c *Coordinator) syncCertFor(src registry.Record, account string) (string, string) {
	if c.cfg.Auth == nil {
		return "", "no issuer store on this coordinator to sign sync certificates"
	}
	if src.SyncKey == "" {
		return "", "the agent of " + src.Node + " reports no sync key (upgrade it)"
	}
	now := c.cfg.Now()
	if cc, ok := c.syncCerts[src.Node]; ok && cc.key == src.SyncKey && cc.account == account && now.Before(cc.validAfter.Add(cc.validBefore.Sub(cc.validAfter)/2)) {
		return cc.line, ""
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(src.SyncKey))
	if err != nil {
		return "", "the sync key of " + src.Node + " does not parse: " + err.Error()
	}
	cert, err := c.cfg.Auth.SignSyncCert(auth.SyncCertRequest{Node: src.Node, Key: key, Principal: account, Now: now})
	if err != nil {
		delete(c.syncCerts, src.Node)
		return "", err.Error()
	}
	cc := syncCert{key: src.SyncKey, account: account, line: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))),
		validAfter: now, validBefore: time.Unix(int64(cert.ValidBefore), 0)}
	c.syncCerts[src.Node] = cc
	return cc.line, ""
}

// noTargetWhy summarizes, for the source's agent, why no candidate became
// a target (at most 600 bytes).
func noTargetWhy(choices []meshsync.Choice) string {
	if len(choices) == 0 {
		return "no candidate receivers are known"
	}
	var parts []string
	for _, ch := range choices {
		parts = append(parts, ch.NodeID+": "+ch.Reason)
	}
	s := strings.Join(parts, " | ")
	if len(s) > 600 {
		s = s[:597] + "..."
	}
	return s
}

// remoteDir makes a host path usable over SFTP: "~/x" is relative to the login's home.
func remoteDir(p string) string {
	if strings.HasPrefix(p, "~/") {
		return p[2:]
	}
	return p
}

func (c *Coordinator) routeLoop(ctx context.Context) {
	t := time.NewTicker(routeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.IsLeader() {
				rctx, cancel := context.WithTimeout(ctx, routeInterval)
				c.RouteSync(rctx)
				cancel()
			}
		}
	}
}

// NotifyPreempt tells the registry that node is about to be terminated
// (on its behalf: source is the provider signal) and asks its agent to
// flush at once. id de-duplicates across coordinators and retries.
func (c *Coordinator) NotifyPreempt(ctx context.Context, node, source, id string, notice time.Duration) error {
	subj, err := bus.EventSubject(node, bus.KindPreempt)
	if err != nil {
		return err
	}
	deadline := c.cfg.Now().Add(notice)
	boot := "coord-" + sanitize(id)
	env, err := bus.NewEnvelope(bus.KindPreempt, bus.MessageID(node, boot, 1), node, c.cfg.Now(), events.Preempt{Source: source, Deadline: deadline, NoticeSeconds: notice.Seconds()})
	if err != nil {
		return err
	}
	data, _ := json.Marshal(env)
	if _, err := c.js.Publish(ctx, subj, data, jetstream.WithMsgID(env.ID)); err != nil {
		return err
	}
	c.log.Warn().Str("node", node).Str("source", source).Time("deadline", deadline).Msg("termination notice: asking the agent to flush")
	return c.command(ctx, node, "flush", map[string]string{"deadline": deadline.UTC().Format(time.RFC3339Nano)}, source)
}

var unsafeToken = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func sanitize(s string) string {
	s = unsafeToken.ReplaceAllString(s, "-")
	if len(s) > 40 {
		sum := sha256.Sum256([]byte(s))
		s = s[:20] + hex.EncodeToString(sum[:6])
	}
	return s
}

// providerPreemptions turns provider-reported preemptions (Vast outbid/
// stopped, Lambda preempted, Nebius preemptible stop) into notices, once per instance state.
func (c *Coordinator) providerPreemptions(ctx context.Context, rep fleet.Report) {
	for _, iv := range rep.Instances {
		if iv.Node == "" || iv.Stale || !(iv.State == "preempted" || iv.Interrupted) {
			continue
		}
		rec, ok := c.reg.Get(iv.Node)
		if !ok {
			continue
		}
		switch rec.State {
		case mesh.StateHealthy, mesh.StateDegraded, mesh.StateSuspect, mesh.StateBusPartitioned, mesh.StateJoining:
		default:
			continue
		}
		id := fmt.Sprintf("%s-api-%s-%s", iv.Provider, iv.ID, iv.RawState)
		if err := c.NotifyPreempt(ctx, iv.Node, iv.Provider+":api", id, mesh.PreemptNotice(iv.Provider)); err != nil {
			c.log.Warn().Err(err).Str("node", iv.Node).Msg("provider preemption notice")
		}
	}
}

// Vast webhook (docs/provider-apis.md §1, "Preemption"): headers
// X-Vast-Event-Id, X-Vast-Timestamp, X-Vast-Signature-256: sha256=<hex
// HMAC-SHA256(secret, timestamp + "." + body)>; body {event_id, user_id,
// notif_type, subject, message, timestamp}.
const webhookReplayWindow = 5 * time.Minute

type vastWebhook struct {
	EventID   string `json:"event_id"`
	NotifType string `json:"notif_type"`
	Subject   string `json:"subject"`
	Message   string `json:"message"`
}

var digits = regexp.MustCompile(`\d+`)

// webhookMaxBody is the largest webhook body accepted (413 above it).
const webhookMaxBody = 64 << 10

// webhookSeen remembers the event IDs accepted within the replay window.
type webhookSeen struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

// maxWebhookIDs bounds the replay memory; beyond it the oldest are forgotten
// only once they left the window, else the webhook answers 503 (Vast retries).
const maxWebhookIDs = 100000

// claim records id at now; false when it was seen within the window.
func (s *webhookSeen) claim(id string, now time.Time) (fresh, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]time.Time{}
	}
	if at, ok := s.ids[id]; ok && now.Sub(at) <= 2*webhookReplayWindow {
		return false, false
	}
	if len(s.ids) >= maxWebhookIDs {
		for k, at := range s.ids {
			if now.Sub(at) > 2*webhookReplayWindow {
				delete(s.ids, k)
			}
		}
		if len(s.ids) >= maxWebhookIDs {
			return false, true
		}
	}
	s.ids[id] = now
	return true, false
}

// webhookTime parses X-Vast-Timestamp (Unix seconds, possibly fractional,
// or RFC 3339) and checks it lies within the replay window of now, using
// whole seconds only (no time.Duration arithmetic that could overflow).
func webhookTime(ts string, now time.Time) error {
	if len(ts) == 0 || len(ts) > 40 {
		return errors.New("missing or oversized timestamp")
	}
	var sec int64
	if t, err := time.Parse(time.RFC3339, ts); err == nil {
		sec = t.Unix()
	} else {
		whole := ts
		if i := strings.IndexByte(ts, '.'); i >= 0 {
			whole = ts[:i]
			if strings.Trim(ts[i+1:], "0123456789") != "" {
				return errors.New("timestamp is not a number")
			}
		}
		n, err := strconv.ParseInt(whole, 10, 64)
		if err != nil {
			return errors.New("timestamp is not Unix seconds or RFC 3339")
		}
		sec = n
	}
	win := int64(webhookReplayWindow / time.Second)
	if d := now.Unix() - sec; d > win || d < -win {
		return fmt.Errorf("timestamp %s is outside the %s replay window", ts, webhookReplayWindow)
	}
	return nil
}

func (c *Coordinator) vastWebhook(w http.ResponseWriter, r *http.Request) {
	secret := c.cfg.VastWebhookSecret
	if secret == "" {
		http.Error(w, "vast webhook not configured", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhookMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.m.webhooks.WithLabelValues("too_large").Inc()
			http.Error(w, fmt.Sprintf("body over %d bytes", webhookMaxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	ts := r.Header.Get("X-Vast-Timestamp")
	sig := strings.TrimPrefix(r.Header.Get("X-Vast-Signature-256"), "sha256=")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := mac.Sum(nil)
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, want) {
		c.m.webhooks.WithLabelValues("bad_signature").Inc()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if err := webhookTime(ts, c.cfg.Now()); err != nil {
		c.m.webhooks.WithLabelValues("replay").Inc()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev vastWebhook
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "bad body: "+err.Error(), http.StatusBadRequest)
		return
	}
	// The event ID must be signed: it is taken from the (signed) body only;
	// an unsigned header that disagrees is refused.
	if ev.EventID == "" || len(ev.EventID) > 128 || !events.Match("token", ev.EventID) {
		c.m.webhooks.WithLabelValues("no_event_id").Inc()
		http.Error(w, "body needs a signed event_id ([A-Za-z0-9._:+/@=-], at most 128)", http.StatusBadRequest)
		return
	}
	if h := r.Header.Get("X-Vast-Event-Id"); h != "" && h != ev.EventID {
		c.m.webhooks.WithLabelValues("bad_event_id").Inc()
		http.Error(w, "X-Vast-Event-Id differs from the signed event_id", http.StatusBadRequest)
		return
	}
	fresh, full := c.webhookIDs.claim(ev.EventID, c.cfg.Now())
	if full {
		c.m.webhooks.WithLabelValues("replay_memory_full").Inc()
		http.Error(w, "too many recent events; retry later", http.StatusServiceUnavailable)
		return
	}
	if !fresh {
		c.m.webhooks.WithLabelValues("replay").Inc()
		http.Error(w, "event "+ev.EventID+" already received", http.StatusConflict)
		return
	}
	if ev.NotifType != "outbid" && ev.NotifType != "client:outbid" {
		c.m.webhooks.WithLabelValues("ignored").Inc()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	node := c.nodeForVastText(ev.Subject + " " + ev.Message)
	if node == "" {
		c.m.webhooks.WithLabelValues("unknown_instance").Inc()
		c.log.Warn().Str("event", ev.EventID).Msg("vast outbid webhook names no known instance")
		w.WriteHeader(http.StatusAccepted)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := c.NotifyPreempt(ctx, node, "vast:webhook", "vastwh-"+ev.EventID, mesh.PreemptNotice(mesh.ProviderVast)); err != nil {
		c.webhookIDs.forget(ev.EventID) // Vast retries: let the retry through
		http.Error(w, "bus: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	c.m.webhooks.WithLabelValues("preempt").Inc()
	w.WriteHeader(http.StatusAccepted)
}

func (s *webhookSeen) forget(id string) {
	s.mu.Lock()
	delete(s.ids, id)
	s.mu.Unlock()
}

// nodeForVastText finds the node whose Vast instance ID appears in text.
func (c *Coordinator) nodeForVastText(text string) string {
	ids := map[string]bool{}
	for _, d := range digits.FindAllString(text, -1) {
		ids[d] = true
	}
	for _, r := range c.reg.Trusted() {
		if r.Provider == mesh.ProviderVast && r.InstanceID != "" && ids[r.InstanceID] {
			return r.Node
		}
	}
	return ""
}

func (c *Coordinator) apiSync(ctx context.Context, req []byte) (any, error) {
	var r api.SyncRequest
	if err := json.Unmarshal(req, &r); err != nil || r.Node == "" || r.RequestID == "" {
		return nil, errors.New(`bad request: want {"node": ..., "request_id": ...}`)
	}
	rec, ok := c.reg.Get(r.Node)
	if !ok {
		return nil, fmt.Errorf("unknown node %q", r.Node)
	}
	if rec.Quarantined {
		return nil, fmt.Errorf("node %s is quarantined: not commanding it", r.Node)
	}
	if rec.State != mesh.StateHealthy && rec.State != mesh.StateDegraded && rec.State != mesh.StatePreempting {
		return nil, fmt.Errorf("node %s has no live agent (state %s)", r.Node, rec.State)
	}
	if !rec.SyncEnabled {
		return nil, fmt.Errorf("node %s does not run data protection (its agent has --sync off)", r.Node)
	}
	if err := c.command(ctx, r.Node, "sync_now", map[string]string{"request_id": r.RequestID}, "meshctl sync by "+actor(ctx, "")); err != nil {
		return nil, err
	}
	return api.SyncAccepted{Node: r.Node, Trigger: "command:" + r.RequestID}, nil
}

func (c *Coordinator) apiSafe(ctx context.Context, req []byte) (any, error) {
	var r api.NodeRequest
	if err := json.Unmarshal(req, &r); err != nil || r.Node == "" {
		return nil, errors.New(`bad request: want {"node": ...}`)
	}
	safe, why, _, _ := c.safeToTerminate(ctx, r.Node)
	return api.Safe{Node: r.Node, Safe: safe, Reason: why}, nil
}

func (c *Coordinator) apiRoutes(ctx context.Context, _ []byte) (any, error) {
	plans := c.RouteSync(ctx)
	out := api.Routes{Plans: map[string][]meshsync.Choice{}}
	for k, v := range plans {
		out.Plans[k] = v
	}
	return out, nil
}
