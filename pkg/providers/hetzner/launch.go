package hetzner

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// DefaultImage is the image a launch installs when the request names none.
const DefaultImage = "ubuntu-24.04"

var _ providers.Launcher = (*Provider)(nil)

// Launch creates a server (POST /v1/servers, hcloud-go Server.Create):
// name the node (Hetzner wants a hostname: letters, digits, '-'),
// server_type the offer ID, location the offer's region, image the
// request's or DefaultImage, labels ringmesh-request and ringmesh-node
// (read back by List), user_data the startup script with its env exported
// at the top, ssh_keys the request's SSH key ID (a number) when given. It
// returns the server as created ("initializing") without waiting for the
// create action; launch_status follows it. hcloud-go's retries are off.
func (p *Provider) Launch(ctx context.Context, req providers.LaunchRequest) (providers.Instance, error) {
	op := providers.OpLaunch
	if err := req.Validate(); err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Err: err}
	}
	image := req.Image
	if image == "" {
		image = DefaultImage
	}
	opts := hcloud.ServerCreateOpts{
		Name: req.Node, ServerType: &hcloud.ServerType{Name: req.Offer.ID}, Image: &hcloud.Image{Name: image},
		UserData: providers.ScriptWithEnv(req.Env, req.StartupScript),
		Labels:   map[string]string{providers.LabelRequestID: req.RequestID, providers.LabelNode: req.Node},
	}
	if req.Offer.Region != "" {
		opts.Location = &hcloud.Location{Name: req.Offer.Region}
	}
	if req.SSHKeyName != "" {
		id, err := strconv.ParseInt(req.SSHKeyName, 10, 64)
		if err != nil || id <= 0 {
			return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
				Err: fmt.Errorf("hetzner SSH key %q: want the key's numeric ID", req.SSHKeyName)}
		}
		opts.SSHKeys = []*hcloud.SSHKey{{ID: id}}
	}
	res, resp, err := p.client.Server.Create(ctx, opts)
	if err != nil {
		return providers.Instance{}, classify(ctx, op, err, resp)
	}
	if res.Server == nil || res.Server.ID == 0 {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindUnconfirmed,
			Err: fmt.Errorf("%w: answer has no server", providers.ErrUnconfirmed)}
	}
	out := toInstance(res.Server)
	if !out.Price.Known() {
		out.Price = req.Offer.Price
	}
	return out, nil
}
