package vultr

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/vultr/govultr/v3"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// DefaultOSID is the os_id a launch installs when the request names no
// image: Ubuntu 24.04 LTS x64 in GET /v2/os (check it there; give
// --image <os_id> for another).
const DefaultOSID = 2284

var _ providers.Launcher = (*Provider)(nil)

// Launch creates an instance (POST /v2/instances, govultr
// Instance.Create): region and plan from the offer (plan id, location),
// os_id from the request's image (a number) or DefaultOSID, label and
// hostname the node, tags "ringmesh-request=<id>" and "ringmesh-node=<node>"
// (read back into Labels by List), user_data the startup script (base64),
// sshkey_id the request's SSH key ID when given. 202 answers the pending
// instance (main_ip 0.0.0.0 until assigned). govultr's retries are off.
func (p *Provider) Launch(ctx context.Context, req providers.LaunchRequest) (providers.Instance, error) {
	op := providers.OpLaunch
	if err := req.Validate(); err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Err: err}
	}
	if req.Offer.Region == "" {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("vultr launch needs a region (the offer's location)")}
	}
	osID := DefaultOSID
	if req.Image != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.Image, "os:"))
		if err != nil || n <= 0 {
			return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
				Err: fmt.Errorf("vultr image %q: want an os_id number from GET /v2/os", req.Image)}
		}
		osID = n
	}
	cr := &govultr.InstanceCreateReq{
		Region: req.Offer.Region, Plan: req.Offer.ID, Label: req.Node, Hostname: req.Node, OsID: osID,
		Tags:     []string{providers.LabelRequestID + "=" + req.RequestID, providers.LabelNode + "=" + req.Node},
		UserData: base64.StdEncoding.EncodeToString([]byte(providers.ScriptWithEnv(req.Env, req.StartupScript))),
	}
	if req.SSHKeyName != "" {
		cr.SSHKeys = []string{req.SSHKeyName}
	}
	cctx, rec := withRecord(ctx)
	in, _, err := p.client.Instance.Create(cctx, cr)
	if err := classify(cctx, op, err, rec); err != nil {
		return providers.Instance{}, err
	}
	if in == nil || in.ID == "" {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindUnconfirmed,
			Err: fmt.Errorf("%w: answer has no instance id", providers.ErrUnconfirmed)}
	}
	out := toInstance(*in, p.planCatalogue(ctx))
	if !out.Price.Known() {
		out.Price = req.Offer.Price
	}
	return out, nil
}
