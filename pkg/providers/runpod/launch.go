package runpod

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

// DefaultImage is the container image a launch uses when the request names none.
const DefaultImage = "runpod/base:0.6.2-cuda12.4.1"

// DefaultDiskGiB is the container disk a launch asks for when the request names none.
const DefaultDiskGiB = 50

var _ providers.Launcher = (*Client)(nil)

// Launch creates a pod (POST /v2/pods, docs/provider-apis.md §2b):
// {"name":node,"image","gpu":{"id":offer id,"count"},"disk","ports":["22/tcp"],
// "env":{…},"cloud":SECURE|COMMUNITY (the offer's region),"interruptible",
// "dockerStartCmd":["bash","-c",script],"startSsh":true}. The request ID and
// node travel as env RINGMESH_REQUEST_ID / RINGMESH_NODE; List reads them
// back from the pod's env into Labels. The 201 answer is the Pod.
func (c *Client) Launch(ctx context.Context, req providers.LaunchRequest) (providers.Instance, error) {
	op := providers.OpLaunch
	if err := req.Validate(); err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Err: err}
	}
	cloud := req.Offer.Region
	if cloud == "" {
		cloud = "SECURE"
	}
	if cloud != "SECURE" && cloud != "COMMUNITY" {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("region %q: RunPod offers name the cloud, SECURE or COMMUNITY", cloud)}
	}
	count := 1
	if req.Offer.GPUCount != nil && *req.Offer.GPUCount > 0 {
		count = *req.Offer.GPUCount
	}
	env := map[string]string{providers.EnvRequestID: req.RequestID, providers.EnvNode: req.Node}
	for k, v := range req.Env {
		env[k] = v
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
		"name": req.Node, "image": image, "gpu": map[string]any{"id": req.Offer.ID, "count": count},
		"disk": disk, "ports": []string{"22/tcp"}, "env": env, "cloud": cloud,
		"interruptible": req.Offer.Interruptible, "startSsh": true,
	}
	if req.StartupScript != "" {
		body["dockerStartCmd"] = []string{"bash", "-c", req.StartupScript}
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: op, Method: http.MethodPost, Path: "/v2/pods", Body: body})
	if err != nil {
		return providers.Instance{}, err
	}
	inst, err := parsePod(resp.Body)
	if err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindUnconfirmed, Status: resp.Status,
			Err: fmt.Errorf("%w: the answer is not a pod: %v", providers.ErrUnconfirmed, err)}
	}
	if !inst.Price.Known() || inst.Price.PerHour == 0 {
		inst.Price = req.Offer.Price
	}
	return inst, nil
}

// envLabels reads the pod's env for the ringmesh markers.
func envLabels(raw json.RawMessage, into map[string]string) map[string]string {
	var env map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &env) != nil {
		return into
	}
	for envKey, label := range map[string]string{providers.EnvRequestID: providers.LabelRequestID, providers.EnvNode: providers.LabelNode} {
		v, ok := env[envKey].(string)
		if !ok || providers.ValidRequestID(v) != nil {
			continue
		}
		if into == nil {
			into = map[string]string{}
		}
		into[label] = v
	}
	return into
}
