package lambda

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

var _ providers.Launcher = (*Client)(nil)

// Launch creates one instance (POST /instance-operations/launch,
// docs/provider-apis.md §3): {"region_name":offer region,
// "instance_type_name":offer id,"ssh_key_names":[key] (Lambda requires
// exactly one),"name":node,"user_data":script,"tags":[{"key":
// "ringmesh-request","value":id},{"key":"ringmesh-node","value":node}],
// "quantity":1}; Lambda has no instance environment, so req.Env is
// exported at the top of user_data. The answer {"data":{"instance_ids":[id]}} gives the ID;
// the instance is returned pending (booting). Lambda has no idempotency
// key: the tags are what a retry looks for.
func (c *Client) Launch(ctx context.Context, req providers.LaunchRequest) (providers.Instance, error) {
	op := providers.OpLaunch
	if err := req.Validate(); err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Err: err}
	}
	if req.SSHKeyName == "" {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("lambda needs exactly one SSH key name for a launch (meshctl launch --ssh-key NAME)")}
	}
	if req.Offer.Region == "" {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("lambda launch needs a region (the offer's region with capacity)")}
	}
	body := map[string]any{
		"region_name": req.Offer.Region, "instance_type_name": req.Offer.ID, "ssh_key_names": []string{req.SSHKeyName},
		"name": req.Node, "user_data": providers.ScriptWithEnv(req.Env, req.StartupScript), "quantity": 1,
		"tags": []map[string]string{{"key": providers.LabelRequestID, "value": req.RequestID}, {"key": providers.LabelNode, "value": req.Node}},
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: op, Method: http.MethodPost, Path: "/instance-operations/launch", Body: body})
	if err != nil {
		return providers.Instance{}, err
	}
	var ans struct {
		Data *struct {
			IDs []json.RawMessage `json:"instance_ids"`
		} `json:"data"`
	}
	if err := c.api.Decode(op, resp, &ans); err != nil {
		return providers.Instance{}, err
	}
	var id string
	if ans.Data != nil && len(ans.Data.IDs) == 1 {
		_ = json.Unmarshal(ans.Data.IDs[0], &id)
	}
	if checkID(op, id) != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindUnconfirmed, Status: resp.Status,
			Err: fmt.Errorf("%w: answer does not hold exactly one instance id", providers.ErrUnconfirmed)}
	}
	return providers.Instance{
		ID: id, Provider: Name, Name: req.Node, State: providers.StatePending, RawState: "booting",
		GPUModel: req.Offer.GPUModel, Region: req.Offer.Region, Price: req.Offer.Price,
		Labels: map[string]string{providers.LabelRequestID: req.RequestID, providers.LabelNode: req.Node},
	}, nil
}
