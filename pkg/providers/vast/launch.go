package vast

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

// DefaultImage is the container image a launch uses when the request names none.
const DefaultImage = "vastai/base-image:@vastai-automatic-tag"

// DefaultDiskGiB is the disk a launch asks for when the request names none.
const DefaultDiskGiB = 40

// envValueRe is what a value passed as a "-e K=V" option may hold: Vast
// splits the env options on spaces, so no space or quote.
var envValueRe = regexp.MustCompile(`^[A-Za-z0-9._:/+=@,-]*$`)

var _ providers.Launcher = (*Client)(nil)

// Launch rents the ask req.Offer.ID: PUT /api/v0/asks/{id}/ with
// {"client_id":"me","image","disk","label":node,"env":{"-e K=V":"1"},
// "onstart":script,"runtype":"ssh_direct ssh_proxy"} and, for an
// interruptible offer, "price" (the bid, the offer's price). The request ID
// and node travel as env RINGMESH_REQUEST_ID / RINGMESH_NODE; List reads
// them back from extra_env into Labels. The answer
// {"success":true,"new_contract":id} gives the instance ID; the instance is
// returned pending.
func (c *Client) Launch(ctx context.Context, req providers.LaunchRequest) (providers.Instance, error) {
	op := providers.OpLaunch
	if err := req.Validate(); err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Err: err}
	}
	if err := checkID(op, req.Offer.ID); err != nil {
		return providers.Instance{}, err
	}
	env := map[string]string{providers.EnvRequestID: req.RequestID, providers.EnvNode: req.Node}
	for k, v := range req.Env {
		env[k] = v
	}
	opts := map[string]string{}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envValueRe.MatchString(env[k]) {
			return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
				Err: fmt.Errorf("env %s: value has characters Vast's \"-e K=V\" options cannot carry (spaces, quotes)", k)}
		}
		opts["-e "+k+"="+env[k]] = "1"
	}
	image := req.Image
	if image == "" {
		image = DefaultImage
	}
	disk := req.DiskGiB
	if disk == 0 {
		disk = DefaultDiskGiB
	}
	body := map[string]any{
		"client_id": "me", "image": image, "disk": disk, "label": req.Node, "env": opts,
		"onstart": req.StartupScript, "runtype": "ssh_direct ssh_proxy", "target_state": "running",
	}
	if req.Offer.Interruptible {
		if !req.Offer.Price.Known() || req.Offer.Price.PerHour <= 0 {
			return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
				Err: fmt.Errorf("interruptible offer %s has no known bid price", req.Offer.ID)}
		}
		body["price"] = req.Offer.Price.PerHour
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: op, Method: http.MethodPut, Path: "/api/v0/asks/" + url.PathEscape(req.Offer.ID) + "/", Body: body})
	if err != nil {
		return providers.Instance{}, err
	}
	if err := c.checkMutation(op, resp); err != nil {
		return providers.Instance{}, err
	}
	var ans struct {
		NewContract *int64 `json:"new_contract"`
	}
	if err := c.api.Decode(op, resp, &ans); err != nil {
		return providers.Instance{}, err
	}
	if ans.NewContract == nil || *ans.NewContract <= 0 {
		// Accepted, yet no contract id: the instance may exist.
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindUnconfirmed, Status: resp.Status,
			Err: fmt.Errorf("%w: answer has no new_contract", providers.ErrUnconfirmed)}
	}
	return providers.Instance{
		ID: strconv.FormatInt(*ans.NewContract, 10), Provider: Name, Name: req.Node, State: providers.StatePending,
		GPUModel: req.Offer.GPUModel, GPUCount: derefInt(req.Offer.GPUCount), Region: req.Offer.Region,
		Price: req.Offer.Price, Interruptible: req.Offer.Interruptible, CreatedAt: time.Now().UTC(),
		Labels: map[string]string{providers.LabelRequestID: req.RequestID, providers.LabelNode: req.Node},
	}, nil
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// envLabels reads extra_env ([[name, value], ...]) for the ringmesh markers.
func envLabels(raw json.RawMessage) map[string]string {
	var pairs [][]string
	if len(raw) == 0 || json.Unmarshal(raw, &pairs) != nil {
		return nil
	}
	var out map[string]string
	for _, p := range pairs {
		if len(p) != 2 {
			continue
		}
		var key string
		switch p[0] {
		case providers.EnvRequestID:
			key = providers.LabelRequestID
		case providers.EnvNode:
			key = providers.LabelNode
		default:
			continue
		}
		if providers.ValidRequestID(p[1]) != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[key] = p[1]
	}
	return out
}
